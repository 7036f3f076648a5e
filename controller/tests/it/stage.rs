//! `odseed stage` against a real swarm: empty boards download the torrent, capped, and each is
//! released as soon as it holds it whole; a second stage finds nothing to do.

use crate::{named, world};
use odseed_lab::swarm::Spec;
use serde_json::Value;

#[test]
fn stage_fills_empty_boards_within_the_cap_and_releases_each_once_whole() {
    let w = world("stage");
    let size: u64 = 4 << 20;
    // No leecher yet, an uncapped origin, two empty boards.
    let spec = Spec { size, leechers: 0, boards: 2, empty_boards: 2, origin_kbps: 0, ..crate::end_to_end_spec() };
    let (swarm, cfg) = w.swarm(&spec);
    let hash = swarm.torrent().meta.info_hash;
    let (torrent, cfg) = (swarm.torrent_file().to_str().unwrap().to_string(), cfg.to_str().unwrap().to_string());
    let stage = |extra: &[&str]| {
        let mut args = vec!["stage", torrent.as_str(), "--interval", "1", "--json", "--config", cfg.as_str()];
        args.extend_from_slice(extra);
        let o = w.odseed(&args);
        let (out, err) =
            (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
        assert!(o.status.success(), "{out}\n{err}");
        let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (lines, err)
    };
    let cap_kbps = 300;
    let (lines, err) = stage(&["--down-kbps", &cap_kbps.to_string()]);
    let names = |event: &str| -> Vec<String> {
        let mut v: Vec<String> =
            named(&lines, event).iter().filter_map(|e| e["helper"].as_str().map(str::to_string)).collect();
        v.sort();
        v
    };
    assert_eq!(names("engage"), ["board0", "board1"], "{lines:?}\n{err}");
    assert_eq!(names("staged"), ["board0", "board1"], "{lines:?}");
    assert_eq!(names("release"), ["board0", "board1"], "{lines:?}");
    assert_eq!(named(&lines, "exit")[0]["reason"], "staged");
    for (i, b) in swarm.boards.iter().enumerate() {
        let c = b.client();
        assert!(c.list().unwrap().is_empty(), "board{i} released");
        let held = c.content().unwrap().torrents.into_iter().find(|t| t.info_hash == hash).expect("held");
        assert!(held.complete() && !held.seeding, "board{i}: {held:?}");
        assert_eq!(c.limits().unwrap().download_kbps, 0, "board{i}'s cap lifted");
        let data = std::fs::read(b.data_dir.join(odseed_lab::swarm::content_name(0))).unwrap();
        assert!(data == std::fs::read(swarm.origin.data_dir().join(odseed_lab::swarm::content_name(0))).unwrap());
    }
    let ledger = std::fs::read_to_string(w.ledger()).unwrap();
    assert!(ledger.contains("\"helpers\": []"), "{ledger}");
    // The cap held: a board at 300 kB/s cannot hold 4 MiB sooner than 14 s (the origin, uncapped,
    // sends it in well under a second on loopback). Some slack for the daemon's first second.
    let least = size as f64 / (cap_kbps as f64 * 1000.0) * 0.7;
    for s in named(&lines, "staged") {
        assert!(s["seconds"].as_f64().unwrap() >= least, "faster than the cap allows: {s}");
    }
    let (origin_sent, _) = (swarm.origin.upload(&hash).1, ());
    eprintln!("origin sent {:.2} copies to stage 2 boards", origin_sent as f64 / size as f64);

    // `status` says who holds it.
    let o = w.odseed(&["status", "--json", "--config", cfg.as_str()]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let held = &report["held"][0];
    assert_eq!(
        (held["info_hash"].as_str(), &held["whole"]),
        (Some(hash.to_string().as_str()), &serde_json::json!(["board0", "board1"])),
        "{report}"
    );

    // Again: both hold it whole, nothing is engaged.
    let (lines, err) = stage(&[]);
    assert!(named(&lines, "engage").is_empty(), "{lines:?}");
    assert_eq!(named(&lines, "exit")[0]["reason"], "staged");
    assert!(err.contains("already holds"), "{err}");
}

#[test]
fn watch_stages_while_quiet_and_stops_staging_when_a_crowd_comes() {
    use crate::events;
    use odseed_lab::wait_until;
    use std::time::Duration;
    let w = world("wstage");
    // Two empty boards, an origin at 200 kB/s, and no leecher until the crowd comes.
    let spec =
        Spec { size: 2 << 20, leechers: 3, boards: 2, empty_boards: 2, origin_kbps: 200, ..crate::end_to_end_spec() };
    let mut swarm =
        odseed_lab::swarm::Swarm::start(&w.ns, w.dir.path(), &spec, &odseed_lab::testing::agent_bin()).unwrap();
    let hash = swarm.torrent().meta.info_hash;
    let config = |stage: u32, cap: u32| {
        let text = format!(
            "[policy]\nmin_size = 0\ncooldown = 0\n[watch]\ndir = \"{}\"\nratio = 0.5\nstage = {stage}\nstage_down_kbps = {cap}\n{}",
            swarm.torrents_dir().display(),
            swarm.controller_config()
        );
        w.write_config(&text).to_str().unwrap().to_string()
    };
    let watch = |name: &str, cfg: &str| w.spawn(name, &["watch", "--interval", "1", "--json", "--config", cfg]);
    let wait = |p: &odseed_lab::process::Proc, what: &str, f: &dyn Fn(&[Value]) -> bool| {
        wait_until(Duration::from_secs(120), what, || f(&events(p)).then_some(()))
            .unwrap_or_else(|e| panic!("{e}\n{}", p.log_text()));
    };
    let helpers = |ev: &[Value], event: &str| -> Vec<String> {
        named(ev, event).iter().filter_map(|e| e["helper"].as_str().map(str::to_string)).collect()
    };
    let whole = |i: usize| {
        let c = swarm.boards[i].client().content().unwrap();
        c.torrents.iter().any(|t| t.info_hash == hash && t.complete())
    };

    // stage = 1 while nobody downloads: one board gets it whole, and is released.
    let mut p = watch("watch1", &config(1, 0));
    wait(&p, "a board staged and released", &|ev| {
        let staged = helpers(ev, "staged");
        staged.len() == 1 && helpers(ev, "release") == staged
    });
    let ev = events(&p);
    let staged = helpers(&ev, "staged")[0].clone();
    assert_eq!(helpers(&ev, "stage"), std::slice::from_ref(&staged), "one board staged, not both: {ev:?}");
    let (full, empty) = if staged == "board0" { (0, 1) } else { (1, 0) };
    assert!(whole(full) && !whole(empty));
    assert!(swarm.boards[full].client().list().unwrap().is_empty(), "released once whole");
    p.signal(libc::SIGTERM);
    p.wait_exit(Duration::from_secs(60)).expect("watch ends");

    // stage = 2, capped at 10 kB/s: the other board stages slowly; then a crowd comes.
    let mut p = watch("watch2", &config(2, 10));
    let other = format!("board{empty}");
    wait(&p, "the other board engaged to stage", &|ev| {
        helpers(ev, "stage") == [other.clone()] && helpers(ev, "engage") == [other.clone()]
    });
    assert_eq!(swarm.boards[empty].client().limits().unwrap().download_kbps, 10, "capped while it stages");
    swarm.start_leechers(&spec).unwrap();
    wait(&p, "staging stopped for the crowd", &|ev| helpers(ev, "stage_stopped") == [other.clone()]);
    let ev = events(&p);
    let stopped = named(&ev, "stage_stopped")[0];
    assert!(stopped["reason"].as_str().unwrap().contains("needs helpers"), "{stopped}");
    assert_eq!(swarm.boards[empty].client().limits().unwrap().download_kbps, 0, "its cap lifted");
    // The crowd gets the board that holds it whole.
    wait(&p, "the full board engaged for the crowd", &|ev| helpers(ev, "engage").contains(&format!("board{full}")));
    assert!(named(&ev, "staged").is_empty(), "{ev:?}");
    p.signal(libc::SIGTERM);
    p.wait_exit(Duration::from_secs(60)).expect("watch ends");
    for b in &swarm.boards {
        assert!(b.client().list().unwrap().is_empty(), "everything released at the end");
        assert_eq!(b.client().limits().unwrap().download_kbps, 0);
    }
}
