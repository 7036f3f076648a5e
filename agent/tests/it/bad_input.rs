//! Every bad request gets its status and a JSON error naming the problem; the agent keeps serving.

use crate::{code, raw_torrent, seeding, send, torrent_in, world, world_with};
use odseed_lab::AgentOptions;
use odseed_proto::bencode::Owned;

#[test]
fn bad_requests_get_clear_errors_and_the_agent_keeps_serving() {
    let w = world("badinput");
    let agent = w.agent("a", &AgentOptions { max_torrent_bytes: 64 * 1024, ..AgentOptions::default() });
    let good = torrent_in(&agent.data_dir, "g.bin", 70_000);
    let hash = good.meta.info_hash.to_string();
    let url = |p: &str| format!("{}{p}", agent.url);
    let tok = Some(agent.token.as_str());
    let put = |h: &str, body: &[u8]| send(&url(&format!("/v1/torrents/{h}")), "PUT", tok, Some(body));

    let (escape_hash, escape) = raw_torrent(Owned::dict([
        ("name", Owned::str("ok")),
        (
            "files",
            Owned::List(vec![Owned::dict([
                ("length", Owned::Int(5)),
                ("path", Owned::List(vec![Owned::str(".."), Owned::str("etc"), Owned::str("passwd")])),
            ])]),
        ),
        ("piece length", Owned::Int(16384)),
        ("pieces", Owned::Bytes(vec![0; 20])),
    ]));
    let (abs_hash, absolute) = raw_torrent(Owned::dict([
        ("name", Owned::str("/etc/passwd")),
        ("length", Owned::Int(5)),
        ("piece length", Owned::Int(16384)),
        ("pieces", Owned::Bytes(vec![0; 20])),
    ]));
    let other = torrent_in(&agent.data_dir, "other.bin", 1000);

    let cases: Vec<(&str, (u16, String), u16, &str)> = vec![
        ("garbage body", put(&hash, b"this is not bencode"), 400, "bad_torrent"),
        ("empty body", put(&hash, b""), 400, "bad_torrent"),
        ("truncated torrent", put(&hash, &good.bytes[..good.bytes.len() / 2]), 400, "bad_torrent"),
        ("bencode but no info", put(&hash, b"d3:fooi1ee"), 400, "bad_torrent"),
        ("hash mismatch", put(&hash, &other.bytes), 400, "hash_mismatch"),
        ("`..` in a path", put(&escape_hash.to_string(), &escape), 400, "unsafe_path"),
        ("absolute name", put(&abs_hash.to_string(), &absolute), 400, "unsafe_path"),
        ("oversized body", put(&hash, &vec![b'x'; 200 * 1024]), 413, "too_large"),
        ("uppercase hash", put(&hash.to_uppercase(), &good.bytes), 400, "bad_info_hash"),
        ("short hash", send(&url("/v1/torrents/abc"), "GET", tok, None), 400, "bad_info_hash"),
        ("unknown route", send(&url("/v2/torrents"), "GET", tok, None), 404, "not_found"),
        ("unknown torrent", send(&url(&format!("/v1/torrents/{hash}")), "GET", tok, None), 404, "not_found"),
        ("wrong method", send(&url("/v1/torrents"), "POST", tok, Some(b"{}")), 405, "method_not_allowed"),
        ("wrong method on health", send(&url("/v1/health"), "POST", None, None), 405, "method_not_allowed"),
        ("wrong method, bad hash", send(&url("/v1/torrents/zz"), "POST", tok, Some(b"{}")), 405, "method_not_allowed"),
        ("empty hash", send(&url("/v1/torrents/"), "GET", tok, None), 404, "not_found"),
    ];
    for (what, (status, body), want_status, want_code) in cases {
        assert_eq!((status, code(&body).as_str()), (want_status, want_code), "{what}: {body}");
    }

    // Nothing was recorded, the agent still answers, and each refusal was logged in one line.
    let c = agent.client();
    assert!(c.list().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(agent.state_dir.join("torrents")).unwrap().count(), 0);
    assert!(c.put(&good.meta.info_hash, &good.bytes).unwrap().1, "a good PUT still works");
    let log = agent.log();
    assert!(log.lines().any(|l| l.contains("400 unsafe_path")), "{log}");
    assert!(log.lines().any(|l| l.contains("413 too_large")), "{log}");
}

#[test]
fn head_is_answered_like_get_without_a_body() {
    let w = world("head");
    let agent = w.agent("a", &AgentOptions::default());
    let addr = agent.url.trim_start_matches("http://").to_string();
    let answer = raw(&addr, b"HEAD /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "no body: {answer:?}");
}

/// Raw bytes to the agent; what it answers first (status line and body).
fn raw(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

each_daemon! {
/// Piece lengths at the edges of what transmission-daemon 3.00 can hold: the largest the agent
/// accepts (2^29) is seeded without the daemon dying; past it (where 3.00 divides by zero: 2^30 is
/// 65,536 blocks, one more than its 16-bit count; a multiple of 2^32 is truncated to 0) the agent
/// refuses with 400 before anything reaches the daemon.
fn piece_lengths_the_daemon_cannot_hold_are_refused(d: Daemon) {
    let w = world_with("piecelen", d);
    let one_piece = |dir: &std::path::Path, name: &str, len: u64| {
        std::fs::write(dir.join(name), b"12345").unwrap();
        raw_torrent(Owned::dict([
            ("length", Owned::Int(5)),
            ("name", Owned::str(name)),
            ("piece length", Owned::Int(len as i64)),
            ("pieces", Owned::Bytes(sha1_smol::Sha1::from(b"12345").digest().bytes().to_vec())),
        ]))
    };
    let refusing = w.agent("refusing", &AgentOptions::default());
    for (i, len) in
        [(1u64 << 29) + 16384, 1 << 30, 1 << 31, 1 << 32, (1 << 32) + 16384, 1 << 33].into_iter().enumerate()
    {
        let (hash, bytes) = one_piece(&refusing.data_dir, &format!("p{i}"), len);
        let (status, body) =
            send(&format!("{}/v1/torrents/{hash}", refusing.url), "PUT", Some(&refusing.token), Some(&bytes));
        assert_eq!((status, code(&body).as_str()), (400, "bad_torrent"), "{len}: {body}");
        assert!(body.contains("piece length"), "{body}");
    }
    assert_eq!(refusing.daemon_pid(), None, "nothing reached a daemon");

    let agent = w.agent("a", &AgentOptions::default());
    let (hash, bytes) = one_piece(&agent.data_dir, "largest", 1 << 29);
    let c = agent.client();
    assert!(c.put(&hash, &bytes).unwrap().1);
    seeding(&c, &hash);
    let (_, metrics) = send(&format!("{}/metrics", agent.url), "GET", Some(&agent.token), None);
    assert!(metrics.lines().any(|l| l == "odseed_agent_daemon_restarts_total 0"), "{metrics}");
}
}

each_daemon! {
/// What the agent holds is bounded (torrents, metainfo bytes, and the metainfo stays on disk), and
/// what a torrent writes stays in data_dir: no symbolic link out of it, no file shared with another.
fn state_is_bounded_and_content_stays_in_data_dir(d: Daemon) {
    let w = world_with("bounds", d);
    // The large torrents below have 7.7 GB of content each: a data dir and quota that can hold them.
    let _disk = odseed_lab::testing::LargeDisk::mount(&w.dir.path().join("a/data"), 1 << 40).unwrap();
    let o = AgentOptions {
        max_torrents: 3,
        max_torrent_bytes: 10 << 20,
        max_content_bytes: Some(1 << 40),
        ..AgentOptions::default()
    };
    let mut agent = w.agent("a", &o);
    let c = agent.client();
    let small: Vec<_> = (0..4).map(|i| torrent_in(&agent.data_dir, &format!("s{i}.bin"), 1000 + i)).collect();
    for t in &small[..3] {
        assert!(c.put(&t.meta.info_hash, &t.bytes).unwrap().1);
    }
    let url = |t: &odseed_lab::content::Made| format!("{}/v1/torrents/{}", agent.url, t.meta.info_hash);
    let (status, body) = send(&url(&small[3]), "PUT", Some(&agent.token), Some(&small[3].bytes));
    assert_eq!((status, code(&body).as_str()), (507, "too_many_torrents"), "{body}");
    assert!(!c.put(&small[0].meta.info_hash, &small[0].bytes).unwrap().1, "a torrent already seeded is still 200");
    c.delete(&small[0].meta.info_hash).unwrap();
    assert!(c.put(&small[3].meta.info_hash, &small[3].bytes).unwrap().1, "room again after a DELETE");

    // Same name, other content: the daemon would write into the other torrent's file.
    c.delete(&small[2].meta.info_hash).unwrap();
    let elsewhere = w.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let twin = torrent_in(&elsewhere, "s1.bin", 5000);
    let (status, body) = send(&url(&twin), "PUT", Some(&agent.token), Some(&twin.bytes));
    assert_eq!((status, code(&body).as_str()), (409, "files_overlap"), "{body}");
    assert!(body.contains(&small[1].meta.info_hash.to_string()), "names the other torrent: {body}");

    // A symbolic link already in data_dir where the torrent's files would go.
    let outside = w.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let linked = torrent_in(&outside, "linked.bin", 3000);
    std::os::unix::fs::symlink(outside.join("linked.bin"), agent.data_dir.join("linked.bin")).unwrap();
    let (status, body) = send(&url(&linked), "PUT", Some(&agent.token), Some(&linked.bytes));
    assert_eq!((status, code(&body).as_str()), (400, "unsafe_path"), "{body}");
    assert!(body.contains("symbolic link"), "{body}");

    // Metainfo is kept on disk: three 9 MiB torrents leave the agent small; a fourth is over 32 MiB.
    for t in &small[1..4] {
        c.delete(&t.meta.info_hash).unwrap();
    }
    let pid = agent.proc().unwrap().pid();
    let big = |i: u8| {
        raw_torrent(Owned::dict([
            ("length", Owned::Int(16384 * 471_000)),
            ("name", Owned::str(&format!("big{i}"))),
            ("piece length", Owned::Int(16384)),
            ("pieces", Owned::Bytes(vec![i; 20 * 471_000])),
        ]))
    };
    let mut statuses = Vec::new();
    for i in 0..4 {
        let (hash, bytes) = big(i);
        statuses.push(send(&format!("{}/v1/torrents/{hash}", agent.url), "PUT", Some(&agent.token), Some(&bytes)).0);
    }
    assert_eq!(statuses, [201, 201, 201, 507]);
    odseed_lab::wait_until(std::time::Duration::from_secs(60), "the daemon to hold all three", || {
        let list = c.list().ok()?;
        (list.len() == 3 && list.iter().all(|t| t.state != odseed_proto::wire::TorrentState::Queued)).then_some(())
    })
    .unwrap();
    // What a PUT allocated is returned once the daemon has the torrent (metainfo is not kept).
    let mut anon = 0;
    let settled = odseed_lab::wait_until(std::time::Duration::from_secs(30), "the agent's memory to settle", || {
        anon = odseed_lab::testing::hostile::Sample::of(pid)?.anon_kib;
        (anon < 12 * 1024).then_some(())
    });
    assert!(settled.is_ok(), "the agent holds metainfo in memory: {anon} KiB anonymous RSS");
}
}

each_daemon! {
/// Torrents made by libtorrent 2.0 (software nobody here wrote): a hybrid v1+v2 one is seeded by
/// Transmission 4 and refused up front on 3.00 (which would call it corrupt); a v2-only one is
/// refused by both, with a message that says why.
fn what_the_daemon_cannot_open_is_refused_up_front(d: Daemon) {
    use odseed_lab::content::{libtorrent_torrent, write_file, Flavour};
    let w = world_with("v2", d);
    let agent = w.agent("a", &AgentOptions::default());
    let path = agent.data_dir.join("lt.bin");
    write_file(&path, 300_000, 9).unwrap();
    let trackers = ["http://10.77.0.1:6969/announce".to_string()];
    let put = |bytes: &[u8]| {
        // The path names the SHA-1 of the info dict (a v2-only torrent has no v1 hash of its own).
        let info = odseed_proto::bencode::decode(bytes).unwrap().get("info").unwrap().raw_dict().unwrap().to_vec();
        let hash = sha1_smol::Sha1::from(&info).digest().to_string();
        let (status, body) = send(&format!("{}/v1/torrents/{hash}", agent.url), "PUT", Some(&agent.token), Some(bytes));
        (status, body, hash)
    };

    let v2 = libtorrent_torrent(&path, &trackers, Flavour::V2Only).unwrap();
    let (status, body, _) = put(&v2);
    assert_eq!((status, code(&body).as_str()), (400, "unsupported_torrent"), "{body}");
    assert!(body.contains("v2-only"), "{body}");

    let hybrid = libtorrent_torrent(&path, &trackers, Flavour::Hybrid).unwrap();
    let (status, body, hash) = put(&hybrid);
    if d.major() < 4 {
        assert_eq!((status, code(&body).as_str()), (400, "unsupported_torrent"), "{body}");
        assert!(body.contains("hybrid") && body.contains("3.00"), "{body}");
        assert!(agent.client().list().unwrap().is_empty(), "nothing was recorded");
    } else {
        assert_eq!(status, 201, "{body}");
        let hash = odseed_proto::InfoHash::from_hex_any_case(&hash).unwrap();
        let t = seeding(&agent.client(), &hash);
        assert_eq!(t.percent_done, 1.0);
    }
}
}
