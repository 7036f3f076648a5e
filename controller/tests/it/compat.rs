//! Torrents and daemons of other versions: a hybrid v1+v2 torrent (made by libtorrent) goes only to
//! helpers whose transmission-daemon opens it, and a helper on which it fails all the same is a
//! fault: released and replaced, never held for the whole run.

use crate::{events, named, world};
use odseed_lab::content::{libtorrent_torrent, write_file, Flavour};
use odseed_lab::testing::{agent_bin, Daemon};
use odseed_lab::{Agent, AgentOptions};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[test]
fn a_hybrid_torrent_goes_only_to_helpers_that_can_seed_it() {
    let w = world("hybrid");
    // "hidden" runs 3.00 but its version cannot be read (as with an agent from before it was), so
    // it takes the torrent and its daemon fails on it; "old" runs 3.00; "new" runs 4.x.
    let hidden = w.dir.path().join("transmission-daemon-hidden");
    std::fs::write(&hidden, "#!/bin/sh\n[ \"$1\" = --version ] && exit 1\nexec transmission-daemon \"$@\"\n").unwrap();
    std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o755)).unwrap();
    let boards: Vec<(&str, Agent)> = [("hidden", hidden), ("old", Daemon::T3.program()), ("new", Daemon::T4.program())]
        .into_iter()
        .map(|(name, program)| {
            let o = AgentOptions { program, ..AgentOptions::default() };
            (name, Agent::start(&agent_bin(), &w.dir.path().join(name), &o).unwrap())
        })
        .collect();
    let cfg: String = boards
        .iter()
        .map(|(name, a)| {
            format!(
                "[[board]]\nname = \"{name}\"\nurl = \"{}\"\ntoken_file = \"{}\"\n",
                a.url,
                a.root.join("token").display()
            )
        })
        .collect();
    // The boards start empty and there is no seeder: engaged all the same, for what this tests.
    let cfg = w.write_config(&format!("[policy]\nempty_helpers = \"always\"\n{cfg}"));
    let content = w.dir.path().join("hybrid.bin");
    write_file(&content, 200_000, 3).unwrap();
    // Its tracker is an address with nothing behind it: after the first round the swarm is unseen.
    let torrent = w.dir.path().join("hybrid.torrent");
    let bytes = libtorrent_torrent(&content, &["http://10.77.0.1:6969/announce".into()], Flavour::Hybrid).unwrap();
    std::fs::write(&torrent, &bytes).unwrap();

    let (torrent, cfg) = (torrent.to_str().unwrap(), cfg.to_str().unwrap());
    // 0 seeders and 5 leechers in the first round: every board that can is wanted.
    let args = ["run", torrent, "1", "0", "5", "--interval", "1", "--min-size", "0", "--max-time", "20"];
    let mut run = w.spawn("run", &[&args[..], &["--json", "--config", cfg]].concat());
    let status = run.wait_exit(Duration::from_secs(120)).unwrap_or_else(|| panic!("no end\n{}", run.log_text()));
    let log = run.log_text();
    assert!(status.success(), "{status}\n{log}");
    let ev = events(&run);
    let helper = |e: &&serde_json::Value| e["helper"].as_str().unwrap_or_default().to_string();
    let engaged: Vec<String> = named(&ev, "engage").iter().map(helper).collect();
    assert_eq!(engaged, ["hidden", "new"], "3.00 known is never engaged\n{log}");
    assert!(
        log.contains("Boards that can: new (4.") && log.contains("cannot (not used): old (3.00"),
        "says once which boards can seed it\n{log}"
    );
    let faults: Vec<String> =
        named(&ev, "fault").iter().filter_map(|e| e["message"].as_str().map(String::from)).collect();
    assert!(
        faults.iter().any(|f| f.contains("board hidden") && f.contains("cannot seed this torrent")),
        "the failure on hidden is a fault: {faults:?}\n{log}"
    );
    let released: Vec<String> = named(&ev, "release").iter().map(helper).collect();
    assert_eq!(released.first().map(String::as_str), Some("hidden"), "hidden released first, mid-run\n{log}");
    assert!(released.contains(&"new".to_string()), "{log}");
    for (name, a) in &boards {
        assert!(a.client().list().unwrap().is_empty(), "{name} still holds the torrent");
    }
}
