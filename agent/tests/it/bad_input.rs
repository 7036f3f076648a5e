//! Every bad request gets its status and a JSON error naming the problem; the agent keeps serving.

use crate::{code, raw_torrent, send, torrent_in, world};
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
