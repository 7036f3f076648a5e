//! The v1 routes' success paths and auth.

use crate::{code, send, torrent_in, world, world_with};
use odseed_lab::{wait_until, AgentOptions};
use odseed_proto::wire::DaemonState;
use std::time::{Duration, Instant};

#[test]
fn health_is_open_and_every_other_route_needs_the_token() {
    let w = world("auth");
    let agent = w.agent("a", &AgentOptions::default());
    let (status, body) = send(&format!("{}/v1/health", agent.url), "GET", None, None);
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (health["status"].as_str(), health["daemon"].as_str(), health["torrents"].as_u64()),
        (Some("ok"), Some("stopped"), Some(0))
    );

    let hash = "0123456789abcdef0123456789abcdef01234567";
    for (method, path) in [
        ("GET", "/v1/torrents".to_string()),
        ("GET", format!("/v1/torrents/{hash}")),
        ("PUT", format!("/v1/torrents/{hash}")),
        ("DELETE", format!("/v1/torrents/{hash}")),
        ("GET", "/metrics".into()),
        ("GET", "/nowhere".into()),
    ] {
        for token in [None, Some("wrong-token-wrong-token"), Some(&agent.token[1..])] {
            let (status, body) = send(&format!("{}{path}", agent.url), method, token, None);
            assert_eq!((status, code(&body).as_str()), (401, "unauthorized"), "{method} {path} with {token:?}");
        }
    }
    assert!(!agent.log().contains(&agent.token), "the token leaked into the log");
}

each_daemon! {
fn put_get_list_delete_and_put_is_idempotent(d: Daemon) {
    let w = world_with("routes", d);
    let agent = w.agent("a", &AgentOptions::default());
    let t = torrent_in(&agent.data_dir, "one.bin", 100_000);
    let c = agent.client();
    let hash = t.meta.info_hash;

    let (torrent, new) = c.put(&hash, &t.bytes).unwrap();
    assert!(new, "first PUT is 201");
    assert_eq!((torrent.info_hash, torrent.name.as_str()), (hash, "one.bin"));
    let (_, new) = c.put(&hash, &t.bytes).unwrap();
    assert!(!new, "second PUT is 200");

    let seeding = crate::seeding(&c, &hash);
    assert_eq!(seeding.percent_done, 1.0);
    let list = c.list().unwrap();
    assert_eq!(list.iter().map(|t| t.info_hash).collect::<Vec<_>>(), vec![hash]);
    let health = c.health().unwrap();
    assert_eq!((health.daemon, health.torrents), (DaemonState::Running, 1));
    let version = health.daemon_version.unwrap_or_default();
    assert!(version.starts_with(&format!("{}.", d.major())), "the daemon that runs is {version:?}");

    assert!(c.delete(&hash).unwrap(), "first DELETE is 204");
    assert!(!c.delete(&hash).unwrap(), "second DELETE is 404");
    assert_eq!(c.get(&hash).unwrap(), None);
    assert!(c.list().unwrap().is_empty());
    assert!(agent.data_dir.join("one.bin").exists(), "content stays on disk");
    assert!(!agent.state_dir.join(format!("torrents/{hash}.torrent")).exists(), "desired state forgot it");
}
}

each_daemon! {
fn metrics_report_torrents_daemon_and_requests(d: Daemon) {
    let w = world_with("metrics", d);
    let agent = w.agent("a", &AgentOptions::default());
    let t = torrent_in(&agent.data_dir, "m.bin", 50_000);
    let c = agent.client();
    c.put(&t.meta.info_hash, &t.bytes).unwrap();
    crate::seeding(&c, &t.meta.info_hash);
    send(&format!("{}/v1/torrents", agent.url), "GET", None, None);
    let (status, text) = send(&format!("{}/metrics", agent.url), "GET", Some(&agent.token), None);
    assert_eq!(status, 200);
    for line in [
        "odseed_agent_torrents{state=\"seeding\"} 1",
        "odseed_agent_daemon_up 1",
        "odseed_agent_daemon_restarts_total 0",
        "odseed_agent_requests_total{status=\"201\"} 1",
        "odseed_agent_requests_total{status=\"401\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}
}

each_daemon! {
fn idle_daemon_is_stopped_and_started_again_on_demand(d: Daemon) {
    let w = world_with("idle", d);
    let agent = w.agent("a", &AgentOptions { idle_stop_secs: 1, ..AgentOptions::default() });
    let t = torrent_in(&agent.data_dir, "i.bin", 40_000);
    let c = agent.client();
    c.put(&t.meta.info_hash, &t.bytes).unwrap();
    let pid = wait_until(Duration::from_secs(30), "the daemon to run", || agent.daemon_pid()).unwrap();
    c.delete(&t.meta.info_hash).unwrap();
    wait_until(Duration::from_secs(30), "the idle daemon to stop", || {
        (c.health().ok()?.daemon == DaemonState::Stopped).then_some(())
    })
    .unwrap();
    wait_until(Duration::from_secs(10), "the daemon process to be gone", || {
        (!odseed_lab::process::alive(pid)).then_some(())
    })
    .unwrap();
    c.put(&t.meta.info_hash, &t.bytes).unwrap();
    crate::seeding(&c, &t.meta.info_hash);
}
}

each_daemon! {
fn the_controllers_upload_cap_reaches_the_daemon_and_outlives_restarts(d: Daemon) {
    let w = world_with("limits", d);
    let mut agent = w.agent("a", &AgentOptions { upload_kbps: 700, ..AgentOptions::default() });
    let c = agent.client();
    let url = format!("{}/v1/limits", agent.url);
    let get = |agent: &odseed_lab::Agent| {
        let (status, body) = send(&format!("{}/v1/limits", agent.url), "GET", Some(&agent.token), None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["upload_kbps"].as_u64().unwrap()
    };
    assert_eq!(get(&agent), 700, "the config's cap, until the controller sets one");
    // Bad bodies change nothing.
    for bad in [&b"{\"upload_kbps\": -1}"[..], b"{\"upload_kbps\": 10000001}", b"{\"upload_kbps\": 1, \"download_kbps\": 10000001}", b"{\"upload\": 5}", b"[]", &[b' '; 2000]] {
        let (status, body) = send(&url, "PUT", Some(&agent.token), Some(bad));
        assert!(status == 400 || status == 413, "{status} {body}");
    }
    assert_eq!(get(&agent), 700);
    // With the daemon running: taken at once (its settings say so when it stops).
    let t = torrent_in(&agent.data_dir, "payload.bin", 1 << 20);
    c.put(&t.meta.info_hash, &t.bytes).unwrap();
    crate::seeding(&c, &t.meta.info_hash);
    let set = c.set_limits(&odseed_proto::wire::Limits { upload_kbps: 123, download_kbps: 45 }).unwrap();
    assert_eq!((set.upload_kbps, set.download_kbps, get(&agent)), (123, 45, 123));
    let settings = agent.state_dir.join("transmission/settings.json");
    agent.terminate(Duration::from_secs(60)).expect("the agent stops");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!((saved["speed-limit-up"].as_u64(), saved["speed-limit-up-enabled"].as_bool()), (Some(123), Some(true)));
    let down = (saved["speed-limit-down"].as_u64(), saved["speed-limit-down-enabled"].as_bool());
    assert_eq!(down, (Some(45), Some(true)), "the download cap too");
    // An agent restart keeps it, and starts its daemon with it.
    std::fs::remove_file(&settings).unwrap();
    agent.launch().unwrap();
    assert_eq!(get(&agent), 123);
    crate::seeding(&agent.client(), &t.meta.info_hash);
    let launched: serde_json::Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(launched["speed-limit-up"].as_u64(), Some(123), "{launched}");
    // 0: no cap.
    agent.client().set_limits(&odseed_proto::wire::Limits { upload_kbps: 0, download_kbps: 0 }).unwrap();
    assert_eq!(get(&agent), 0);
}
}

each_daemon! {
fn three_large_torrents_put_at_once_are_all_taken(d: Daemon) {
    use odseed_proto::bencode::Owned;
    let w = world_with("largeputs", d);
    let o = AgentOptions { max_torrent_bytes: 12 << 20, idle_stop_secs: 300, ..AgentOptions::default() };
    // Their content (8.6 GB each) must fit the data dir's quota and file system.
    let _disk = odseed_lab::testing::LargeDisk::mount(&w.dir.path().join("a/data"), 1 << 40).unwrap();
    let o = AgentOptions { max_content_bytes: Some(1 << 40), ..o };
    let mut agent = w.agent("a", &o);
    let (base, token) = (agent.url.clone(), agent.token.clone());
    // Three .torrents of 10 MiB each (their pieces' hashes), for content that is not there: the
    // daemon takes them and waits for peers.
    let made: Vec<(odseed_proto::InfoHash, Vec<u8>)> = (0..3u8)
        .map(|k| {
            let pieces: Vec<u8> = (0..(10u32 << 20)).map(|i| (i as u8).wrapping_mul(31).wrapping_add(k)).collect();
            let info = Owned::dict([
                ("length", Owned::Int(i64::from(10u32 << 20) / 20 * (1 << 14))),
                ("name", Owned::str(&format!("large{k}.bin"))),
                ("piece length", Owned::Int(1 << 14)),
                ("pieces", Owned::Bytes(pieces)),
            ]);
            crate::raw_torrent(info)
        })
        .collect();
    let before = hwm_kib(agent.proc().unwrap().pid());
    let started = Instant::now();
    let answers: Vec<u16> = std::thread::scope(|s| {
        let puts: Vec<_> = made
            .iter()
            .map(|(hash, bytes)| {
                let (url, token) = (format!("{base}/v1/torrents/{hash}"), token.as_str());
                s.spawn(move || send(&url, "PUT", Some(token), Some(bytes)).0)
            })
            .collect();
        puts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    assert_eq!(answers, [201, 201, 201]);
    let c = agent.client();
    wait_until(Duration::from_secs(120), "the daemon to have all three", || {
        let list = c.list().ok()?;
        (list.len() == 3 && list.iter().all(|t| t.error.is_none())).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", c.list(), agent.log()));
    // The daemon read each from the agent's own copy: none went through the RPC as base64.
    wait_until(Duration::from_secs(60), "the daemon to read all three from their files", || {
        (agent.log().matches("read from its .torrent file").count() == 3).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let after = hwm_kib(agent.proc().unwrap().pid());
    eprintln!("three 10 MiB PUTs at once: agent peak RSS {before} KiB before, {after} KiB after, {:?}", started.elapsed());
}
}

/// A process's peak resident memory (VmHWM), in KiB.
fn hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
