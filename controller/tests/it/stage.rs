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
        assert!(data == std::fs::read(swarm.origin.data_dir.join(odseed_lab::swarm::content_name(0))).unwrap());
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
