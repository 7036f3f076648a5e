//! Clients that attack the API (most without the token): none can stop the agent, freeze it, make
//! it exit or grow it without bound, while an honest client on another address keeps being answered.

use crate::world;
use odseed_lab::testing::hostile::{self, Seen, Watch};
use odseed_lab::{wait_until, Agent, AgentOptions};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The honest client's address; attacks come from 127.0.0.1.
const HONEST: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

struct Siege {
    agent: Agent,
    /// Where attacks connect (their source address is 127.0.0.1).
    hostile: SocketAddr,
    /// Where the probes connect (source 10.99.0.1).
    honest: SocketAddr,
    pid: u32,
    // Last: the namespace outlives the agent.
    _w: crate::World,
}

fn siege(name: &str) -> Siege {
    let w = world(name);
    w.ns.add_host(HONEST).expect("honest address");
    let mut agent = w.agent("a", &AgentOptions { listen: Ipv4Addr::UNSPECIFIED, ..AgentOptions::default() });
    let port: u16 = agent.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in url");
    let pid = agent.proc().expect("agent process").pid();
    Siege {
        agent,
        hostile: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        honest: SocketAddr::from((HONEST, port)),
        pid,
        _w: w,
    }
}

impl Siege {
    fn watch(&self) -> Watch {
        Watch::start(self.honest, self.pid)
    }

    fn token_header(&self) -> String {
        format!("Authorization: Bearer {}\r\n", self.agent.token)
    }
}

fn assert_held(what: &str, seen: &Seen) {
    assert!(seen.healthy(), "{what}: the honest client was not always answered within 1 s: {seen:?}");
}

#[test]
fn bad_versions_and_idle_connections_cannot_close_the_listener() {
    let s = siege("badversion");
    let watch = s.watch();
    let versions = hostile::http2_lines(s.hostile, 600);
    let idle = hostile::idle(s.hostile, 300);
    let seen = watch.finish();
    assert_held("600 HTTP/2.0 lines and 300 idle connections", &seen);
    // Over the per-address cap connections are closed at once: descriptors stay near the cap.
    assert!(seen.fds_max <= 2 * 8 + 40, "descriptors grew with the attack: {seen:?}");
    drop((versions, idle));
    let answer = wait_until(Duration::from_secs(30), "a 505 once the attack is over", || {
        Some(hostile::exchange(s.hostile, b"GET /v1/health HTTP/2.0\r\n\r\n")).filter(|a| !a.is_empty())
    })
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 505"), "{answer}");
    assert!(answer.contains("\"http_version\""), "{answer}");
}

#[test]
fn oversized_heads_are_refused_before_they_cost_memory() {
    let s = siege("bighead");
    let watch = s.watch();
    let (sent, answer) = hostile::header_flood(s.hostile, 64 << 20);
    assert!(answer.starts_with("HTTP/1.1 431"), "header lines: {answer}");
    assert!(sent < 16 << 20, "the agent kept reading header lines: {sent} bytes");
    let (sent, answer) = hostile::long_url(s.hostile, 64 << 20);
    assert!(answer.starts_with("HTTP/1.1 431"), "long URL: {answer}");
    assert!(sent < 16 << 20, "the agent kept reading the URL: {sent} bytes");
    let seen = watch.finish();
    assert_held("64 MiB heads", &seen);
    assert!(seen.rss_max_kib < 16 * 1024, "RSS grew: {seen:?}");
}

#[test]
fn bodies_announced_but_never_sent_hold_up_nobody_not_even_sigterm() {
    let mut s = siege("nobody");
    let watch = s.watch();
    let held = hostile::unsent_bodies(s.hostile, 100, 5000);
    let with_token = format!(
        "PUT /v1/torrents/{} HTTP/1.1\r\nHost: x\r\n{}Content-Length: 5000\r\n\r\n",
        "ab".repeat(20),
        s.token_header()
    );
    let held_too = hostile::send_and_hold(s.hostile, 4, with_token.as_bytes());
    let seen = watch.finish();
    assert_held("100 bodies never sent", &seen);
    let asked = Instant::now();
    let status = s.agent.terminate(Duration::from_secs(10)).expect("exits on SIGTERM within stop_grace_secs");
    assert!(status.success(), "{status}");
    assert!(asked.elapsed() < Duration::from_secs(10));
    drop((held, held_too));
}

#[test]
fn declared_giant_bodies_never_stop_the_agent() {
    let s = siege("giant");
    let watch = s.watch();
    let put = |auth: &str, len: &str| {
        format!("PUT /v1/torrents/{} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {len}\r\n\r\n", "ab".repeat(20))
    };
    let mut answers = Vec::new();
    for i in 0..300 {
        let len = ["67108865", "1000000000000", "18446744073709551615", "99999999999999999999999"][i % 4];
        answers.push(hostile::exchange(s.hostile, put("", len).as_bytes()));
    }
    let with_token = hostile::exchange(s.hostile, put(&s.token_header(), "67108865").as_bytes());
    let seen = watch.finish();
    assert_held("300 giant declared bodies", &seen);
    assert!(answers.iter().all(|a| a.starts_with("HTTP/1.1 401")), "{:?}", answers.first());
    assert!(with_token.starts_with("HTTP/1.1 413") && with_token.contains("too_large"), "{with_token}");
}

#[test]
fn ambiguous_framing_is_refused_and_nothing_is_smuggled() {
    let s = siege("framing");
    let hash = "ab".repeat(20);
    // A chunked body after a Content-Length: one 400, and the "body" is never read as a request.
    let smuggle = format!(
        "PUT /v1/torrents/{hash} HTTP/1.1\r\nHost: x\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let answer = hostile::exchange(s.hostile, smuggle.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "a second answer: {answer}");
    for (what, head) in [
        ("non-numeric length", "Content-Length: 12abc\r\n"),
        ("two lengths", "Content-Length: 3\r\nContent-Length: 3\r\n"),
        ("negative length", "Content-Length: -3\r\n"),
    ] {
        let answer = hostile::exchange(
            s.hostile,
            format!("PUT /v1/torrents/{hash} HTTP/1.1\r\nHost: x\r\n{head}\r\nabc").as_bytes(),
        );
        assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("bad_request"), "{what}: {answer}");
    }
    let chunked = hostile::exchange(
        s.hostile,
        format!("PUT /v1/torrents/{hash} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            .as_bytes(),
    );
    assert!(chunked.starts_with("HTTP/1.1 411"), "{chunked}");
    let http10 = hostile::exchange(s.hostile, b"GET /v1/health HTTP/1.0\r\n\r\n");
    assert!(http10.starts_with("HTTP/1.1 200") && http10.contains("\"status\":\"ok\""), "{http10}");
}

#[test]
fn client_text_is_escaped_in_the_log_and_bad_tokens_are_summarised() {
    let s = siege("logs");
    // A C1 control (CSI) in the path, with the token: logged with the 404, escaped.
    let forged = format!("GET /v1/\u{9b}2J\u{9b}31mforged HTTP/1.1\r\nHost: x\r\n{}\r\n", s.token_header());
    let answer = hostile::exchange(s.hostile, forged.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    for _ in 0..40 {
        let answer = hostile::exchange(s.hostile, b"GET /v1/torrents HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    let log = s.agent.log();
    assert!(!log.contains('\u{9b}'), "a raw control character reached the log");
    assert!(log.contains("\\u{9b}2J"), "the path is logged escaped: {log}");
    // (Not just "401": debug lines carry client ports, and 40123 holds it too.)
    let refusals = log.lines().filter(|l| l.contains(": 401 unauthorized:")).count();
    assert_eq!(refusals, 1, "40 bad tokens are one line a minute: {log}");
    assert!(!log.contains(&s.agent.token), "the token leaked into the log");
}

#[test]
fn silent_connections_from_many_addresses_do_not_keep_the_controller_out() {
    let s = siege("manyaddresses");
    // 16 addresses, 8 silent connections each (the per-address cap): 128 for the 64 slots, each
    // opened again as soon as the agent closes it.
    let sources: Vec<Ipv4Addr> = (1..=16).map(|i| Ipv4Addr::new(10, 98, 0, i)).collect();
    for ip in &sources {
        s._w.ns.add_host(*ip).unwrap();
    }
    let target = s.honest;
    let mut held: Vec<(Ipv4Addr, Option<std::net::TcpStream>)> =
        sources.iter().flat_map(|ip| (0..8).map(move |_| (*ip, None))).collect();
    let watch = s.watch();
    let (started, mut reopened) = (Instant::now(), 0u64);
    while started.elapsed() < Duration::from_secs(10) {
        for (ip, conn) in held.iter_mut() {
            if conn.as_ref().is_none_or(hostile::closed) {
                *conn = hostile::silent_from(*ip, target);
                reopened += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = watch.finish();
    let open = held.iter().filter(|(_, c)| c.as_ref().is_some_and(|c| !hostile::closed(c))).count();
    eprintln!("silent connections from 16 addresses: {reopened} opened, {open} open at the end; health: {seen:?}");
    assert!(open >= 48, "the attack held most slots: {open} open");
    assert_held("128 silent connections from 16 addresses, reopened as closed", &seen);
}
