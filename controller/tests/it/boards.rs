//! End to end on boards: a swarm that needs help gets it, and is released when it no longer does.

use crate::{events, named, wait_engaged, world};
use odseed_lab::swarm::Spec;
use odseed_lab::wait_until;
use std::time::Duration;

#[test]
fn a_run_engages_boards_while_needed_and_releases_them_all() {
    let w = world("e2e");
    let spec = crate::end_to_end_spec();
    let (swarm, cfg) = w.swarm(&spec);
    let mut run = w.spawn_run("run", swarm.torrent_file(), &cfg);

    // Ratio 1 with one seeder and three leechers: both boards are engaged at once.
    wait_engaged(&run, 2);
    // The tracker counts them: more seeders than the origin alone.
    wait_until(Duration::from_secs(60), "the tracker to count the helpers", || {
        named(&events(&run), "poll")
            .iter()
            .any(|p| p["seeders"].as_u64() >= Some(3) && p["helpers"].as_u64() == Some(2))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log_text()));

    let status =
        run.wait_exit(Duration::from_secs(400)).unwrap_or_else(|| panic!("the run did not end\n{}", run.log_text()));
    assert!(status.success(), "{status}\n{}", run.log_text());
    let ev = events(&run);
    let exit = named(&ev, "exit");
    assert_eq!(exit.len(), 1);
    assert!(exit[0]["reason"] == "ratio_met", "{exit:?}");
    let released: Vec<&str> = named(&ev, "release").iter().filter_map(|e| e["helper"].as_str()).collect();
    assert_eq!(released.len(), 2, "both released: {released:?}");
    for b in &swarm.boards {
        assert!(b.client().list().unwrap().is_empty(), "an agent still seeds");
    }
    let ledger = std::fs::read_to_string(w.ledger()).unwrap();
    assert!(ledger.contains("\"helpers\": []"), "{ledger}");
    // ratio_met means natural seeders alone covered the leechers left (ratio 1) in the last round.
    let last = named(&ev, "poll").last().copied().cloned().unwrap();
    assert!(last["natural"].as_u64() >= last["leechers"].as_u64(), "{last}");
    assert_eq!(last["helpers"].as_u64(), Some(2), "the helpers were counted apart: {last}");
}

#[test]
fn dry_run_engages_nothing_and_max_time_releases_everything() {
    let w = world("maxtime");
    let spec = Spec {
        size: 2 << 20,
        leechers: 2,
        boards: 1,
        origin_kbps: 10,
        helper_kbps: 10,
        leecher_kbps: 10,
        leecher_up_kbps: 0,
        daemon: None,
        board_tls: None,
        torrents: 1,
        leecher_clients: Vec::new(),
        piece_size: None,
        empty_boards: 0,
        webseed_kbps: None,
        origin_client: Default::default(),
        origin_program: None,
    };
    let (swarm, cfg) = w.swarm(&spec);
    let (torrent, cfg) = (swarm.torrent_file().to_str().unwrap().to_string(), cfg.to_str().unwrap().to_string());
    let hash = swarm.torrent().meta.info_hash;

    let o = w.odseed(&["run", &torrent, "1", "--dry-run", "--once", "--min-size", "0", "--json", "--config", &cfg]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("\"action\":\"engage 1\"") && out.contains("\"dry_run\":true"), "{out}");
    assert!(!out.contains("\"event\":\"engage\""), "a dry run engages nothing: {out}");
    assert_eq!(swarm.boards[0].client().get(&hash).unwrap(), None);

    let o = w.odseed(&[
        "run",
        &torrent,
        "1",
        "--interval",
        "1",
        "--max-time",
        "3",
        "--min-size",
        "0",
        "--json",
        "--config",
        &cfg,
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for want in ["\"event\":\"engage\"", "\"event\":\"release\"", "\"reason\":\"max_time\""] {
        assert!(out.contains(want), "{want} in {out}");
    }
    assert_eq!(swarm.boards[0].client().get(&hash).unwrap(), None, "released at max_time");
}

#[test]
fn a_board_that_holds_the_torrent_is_engaged_and_an_empty_one_not_while_the_origin_alone_seeds() {
    let w = world("holders");
    // Two boards: board0 was given a copy of the content, board1 starts empty.
    let spec = Spec { empty_boards: 1, ..crate::end_to_end_spec() };
    let (swarm, cfg) = w.swarm(&spec);
    let hash = swarm.torrent().meta.info_hash;
    let held = |i: usize| swarm.boards[i].client().content().unwrap().torrents.iter().any(|t| t.info_hash == hash);
    assert!(held(0) && !held(1), "board0 holds it, board1 does not");
    let (torrent, cfg_s) = (swarm.torrent_file().to_str().unwrap().to_string(), cfg.to_str().unwrap().to_string());
    let once = |cfg: &str| {
        let o = w.odseed(&["run", &torrent, "1", "--once", "--min-size", "0", "--json", "--config", cfg]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (lines, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    // Three leechers and only the origin: two helpers wanted, only the one that holds it engaged.
    let (lines, log) = once(&cfg_s);
    let engaged: Vec<&str> = named(&lines, "engage").iter().filter_map(|e| e["helper"].as_str()).collect();
    assert_eq!(engaged, ["board0"], "{lines:?}");
    let poll = named(&lines, "poll")[0];
    assert_eq!((poll["held"].as_u64(), poll["seeders"].as_u64()), (Some(1), Some(1)), "{poll}");
    assert!(log.contains("do(es) not hold it whole"), "the user is told why: {log}");
    // `always`: the empty one too.
    let always = w.write_config(&format!("[policy]\nempty_helpers = \"always\"\n{}", swarm.controller_config()));
    let (lines, _) = once(always.to_str().unwrap());
    let mut engaged: Vec<&str> = named(&lines, "engage").iter().filter_map(|e| e["helper"].as_str()).collect();
    engaged.sort();
    assert_eq!(engaged, ["board0", "board1"], "{lines:?}");
}
