//! With `[transmission]`: the torrent found by name or info hash in the publisher's own client, and
//! "no connected peers" judged there.

use crate::world;
use odseed_lab::swarm::{Spec, Swarm};
use odseed_lab::testing::agent_bin;
use serde_json::Value;
use std::time::Duration;

each_daemon! {
/// The publisher's Transmission 3.00 or 4.x (and the swarm's other peers and agents alike).
fn the_publishers_client_finds_the_torrent_and_tells_when_nobody_is_connected(d: Daemon) {
    let w = world("publisher");
    let spec = Spec {
        size: 1 << 20,
        leechers: 0,
        boards: 1,
        origin_kbps: 0,
        helper_kbps: 0,
        leecher_kbps: 0,
        leecher_up_kbps: 0,
        daemon: Some(d.program()),
        board_tls: None,
        torrents: 1,
        leecher_clients: Vec::new(),
        piece_size: None,
        empty_boards: 0,
        webseed_kbps: None,
    };
    let swarm = Swarm::start(&w.ns, w.dir.path(), &spec, &agent_bin()).unwrap();
    swarm.wait_announced(Duration::from_secs(60)).unwrap();
    let cfg = format!("{}{}", swarm.origin.as_publisher(w.dir.path()).unwrap(), swarm.controller_config());
    let cfg = w.write_config(&cfg);
    let cfg = cfg.to_str().unwrap();
    let hash = swarm.torrent().meta.info_hash.to_string();

    // By name and by info hash (upper case as a person might paste it): the origin has no peer.
    for torrent in ["payload.bin", &hash, &hash.to_uppercase()] {
        let o = w.odseed(&["run", torrent, "0.5", "--min-size", "0", "--json", "--config", cfg]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{torrent}: {}", String::from_utf8_lossy(&o.stderr));
        let exit: Vec<Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "exit")
            .collect();
        assert_eq!(exit[0]["reason"], "no_peers", "{torrent}: {out}");
    }
    let o = w.odseed(&["run", "no-such-torrent", "0.5", "--config", cfg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no torrent named \"no-such-torrent\""));

    // Too small is judged before anything else (the default --min-size is 50 MiB).
    let o = w.odseed(&["run", "payload.bin", "0.5", "--json", "--config", cfg]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"reason\":\"too_small\""));

    // status: the board is reachable, seeds nothing, and the ledger is empty.
    let o = w.odseed(&["status", "--json", "--config", cfg]);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["boards"][0]["name"].as_str(), v["boards"][0]["reachable"].as_bool()), (Some("board0"), Some(true)));
    assert_eq!(v["boards"][0]["torrents"].as_array().map(Vec::len), Some(0));
    let version = v["boards"][0]["daemon_version"].as_str().unwrap_or_default();
    assert!(version.starts_with(&format!("{}.", d.major())), "status shows the board's daemon: {version:?}");
    assert_eq!(v["ledger"].as_array().map(Vec::len), Some(0));
    let o = w.odseed(&["status", "--config", cfg]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.lines().any(|l| l.starts_with("board0") && l.contains("yes")), "{table}");

    // watch: the catalogue is what the publisher seeds, or what has the label.
    swarm.origin.client().call("torrent-set", serde_json::json!({"ids": [hash], "labels": ["odseed"]})).unwrap();
    let base = std::fs::read_to_string(cfg).unwrap();
    for (label, seen) in [(None, 1), (Some("odseed"), 1), (Some("other"), 0)] {
        let watch = label.map(|l| format!("[watch]\nlabel = \"{l}\"\n")).unwrap_or_default();
        let cfg = w.write_config(&format!("{base}{watch}[policy]\nmin_size = 0\n"));
        let o = w.odseed(&["watch", "--once", "--json", "--config", cfg.to_str().unwrap()]);
        assert!(o.status.success(), "{label:?}: {}", String::from_utf8_lossy(&o.stderr));
        let events: Vec<Value> =
            String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let round = events.iter().find(|e| e["event"] == "round").expect("a round");
        // Nobody is connected to the origin: no torrent needs help.
        assert_eq!((round["torrents"].as_u64(), round["needing_help"].as_u64()), (Some(seen), Some(0)), "{label:?}");
        assert_eq!(events.last().unwrap()["reason"], "once");
    }
}
}
