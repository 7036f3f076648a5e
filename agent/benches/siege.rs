//! Siege: every known attack on the agent's API, one after another, against a real agent in a
//! network namespace, while an honest client on another address probes `/v1/health` every 100 ms.
//! Prints, per attack: probes answered within 1 s, the slowest, the agent's RSS, threads and
//! descriptors at most, and whether it exited. Asserts nothing (the tests in `tests/it/hostile.rs`
//! do); run it with `scripts/siege`.

use odseed_lab::testing::hostile::{self, Held, Seen, Watch};
use odseed_lab::{Agent, AgentOptions, Netns, TempDir};
use odseed_proto::agent_client::AgentClient;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HONEST: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// How long an attack's connections are held open while the probes go on.
const HOLD: Duration = Duration::from_secs(3);

struct Target {
    agent: Agent,
    hostile: SocketAddr,
    honest: SocketAddr,
    pid: u32,
}

impl Target {
    fn put(&self, auth: bool, length: &str) -> Vec<u8> {
        let auth = if auth { format!("Authorization: Bearer {}\r\n", self.agent.token) } else { String::new() };
        format!("PUT /v1/torrents/{} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {length}\r\n\r\n", "ab".repeat(20))
            .into_bytes()
    }
}

fn row(name: &str, seen: &Seen, note: &str) {
    println!(
        "{name:<44} {:>5}/{:<5} {:>6} ms {:>8.2} MiB {:>7} {:>5}  {:<6} {note}",
        seen.probes - seen.failed,
        seen.probes,
        seen.slowest_ms,
        seen.rss_max_kib as f64 / 1024.0,
        seen.threads_max,
        seen.fds_max,
        if seen.exited { "EXITED" } else { "no" },
    );
}

/// Runs `attack` under a watch, holds what it returns for [`HOLD`], prints the row.
fn attack<T>(t: &Target, name: &str, run: impl FnOnce(&Target) -> (T, String)) -> T {
    let watch = Watch::start(t.honest, t.pid);
    let (held, note) = run(t);
    std::thread::sleep(HOLD);
    row(name, &watch.finish(), &note);
    held
}

/// A torrent of `pieces` pieces of `piece_length` (content absent: the agent would download it).
fn torrent(name: &str, piece_length: u64, pieces: usize) -> (String, Vec<u8>) {
    use odseed_proto::bencode::Owned;
    let info = Owned::dict([
        ("length", Owned::Int((piece_length * pieces as u64) as i64)),
        ("name", Owned::str(name)),
        ("piece length", Owned::Int(piece_length as i64)),
        ("pieces", Owned::Bytes(vec![7; 20 * pieces])),
    ]);
    let hash = sha1_smol::Sha1::from(info.encode()).digest().to_string();
    (hash, Owned::dict([("info", info)]).encode())
}

fn put_torrent(t: &Target, hash: &str, bytes: &[u8]) -> String {
    let mut req = format!(
        "PUT /v1/torrents/{hash} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        t.agent.token,
        bytes.len()
    )
    .into_bytes();
    req.extend_from_slice(bytes);
    hostile::exchange(t.hostile, &req)
}

fn first_line(answer: &str) -> String {
    answer.lines().next().unwrap_or("(no answer)").to_string()
}

fn main() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_odseed-agent"));
    let ns = Netns::enter().unwrap_or_else(|e| panic!("{e}"));
    ns.add_host(HONEST).expect("honest address");
    let dir = TempDir::new("siege").expect("temp dir");
    let o = AgentOptions { listen: Ipv4Addr::UNSPECIFIED, max_torrent_bytes: 10 << 20, ..AgentOptions::default() };
    let mut agent = Agent::start(bin, dir.path(), &o).expect("agent");
    let port: u16 = agent.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let pid = agent.proc().expect("agent process").pid();
    let t = Target {
        agent,
        hostile: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        honest: SocketAddr::from((HONEST, port)),
        pid,
    };
    println!("odseed-agent siege ({}), attacks from 127.0.0.1, probes from {HONEST}", bin.display());
    println!(
        "{:<44} {:>11} {:>9} {:>12} {:>7} {:>5}  {:<6} note",
        "attack", "health ok", "slowest", "RSS max", "threads", "fds", "exit"
    );
    attack(&t, "nothing (baseline)", |_| ((), String::new()));
    let held = attack(&t, "600 HTTP/2.0 request lines, held", |t| {
        let held = hostile::http2_lines(t.hostile, 600);
        (held, String::new())
    });
    drop(held);
    let held = attack(&t, "600 idle connections, held", |t| (hostile::idle(t.hostile, 600), String::new()));
    drop(held);
    attack(&t, "64 MiB of header lines", |t| {
        let (sent, answer) = hostile::header_flood(t.hostile, 64 << 20);
        ((), format!("{} after {} KiB", first_line(&answer), sent / 1024))
    });
    attack(&t, "256 MiB URL", |t| {
        let (sent, answer) = hostile::long_url(t.hostile, 256 << 20);
        ((), format!("{} after {} KiB", first_line(&answer), sent / 1024))
    });
    let held = attack(&t, "100 bodies declared, never sent (no token)", |t| {
        (hostile::unsent_bodies(t.hostile, 100, 5000), String::new())
    });
    drop(held);
    attack(&t, "256 x Content-Length: 67108865 (no token)", |t| {
        let answers: Vec<String> = (0..256).map(|_| hostile::exchange(t.hostile, &t.put(false, "67108865"))).collect();
        ((), first_line(answers.last().map(String::as_str).unwrap_or_default()))
    });
    attack(&t, "256 x Content-Length: 67108865 (token)", |t| {
        let answers: Vec<String> = (0..256).map(|_| hostile::exchange(t.hostile, &t.put(true, "67108865"))).collect();
        ((), first_line(answers.last().map(String::as_str).unwrap_or_default()))
    });
    attack(&t, "Content-Length + chunked, body smuggling", |t| {
        let mut req = t.put(false, "48");
        req.splice(req.len() - 2..req.len() - 2, b"Transfer-Encoding: chunked\r\n".iter().copied());
        req.extend_from_slice(b"0\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
        let answer = hostile::exchange(t.hostile, &req);
        ((), format!("{} ({} answer(s))", first_line(&answer), answer.matches("HTTP/1.1 ").count()))
    });
    attack(&t, "1000 wrong tokens, escape codes in the URL", |t| {
        let before = t.agent.log().lines().filter(|l| l.contains(" 401 ")).count();
        for _ in 0..1000 {
            hostile::exchange(t.hostile, "GET /v1/\u{9b}2J HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n".as_bytes());
        }
        let lines = t.agent.log().lines().filter(|l| l.contains(" 401 ")).count() - before;
        ((), format!("{lines} log line(s)"))
    });
    attack(&t, "PUT, piece length 2^32 (token)", |t| {
        let (hash, bytes) = torrent("p", 1 << 32, 1);
        ((), first_line(&put_torrent(t, &hash, &bytes)))
    });
    attack(&t, "40 PUTs of 9 MiB torrents (token)", |t| {
        let mut statuses = std::collections::BTreeMap::<String, u32>::new();
        for i in 0..40u32 {
            let (hash, bytes) = torrent(&format!("big{i}"), 16384, 471_000);
            let answer = put_torrent(t, &hash, &bytes);
            *statuses.entry(answer.get(9..12).unwrap_or("---").to_string()).or_default() += 1;
        }
        ((), format!("{statuses:?}"))
    });
    honest_load_under_siege(&t);

    let mut agent = t.agent;
    let held = hostile::unsent_bodies(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), 100, 5000);
    let asked = Instant::now();
    let status = agent.terminate(Duration::from_secs(30));
    println!(
        "SIGTERM with 100 bodies pending: {} after {:.2} s",
        status.map(|s| s.to_string()).unwrap_or("did not exit".into()),
        asked.elapsed().as_secs_f64()
    );
    drop(held);
}

/// 200 requests/s from an honest client (keep-alive, the token, `GET /v1/torrents`) while 500
/// hostile connections are held open.
fn honest_load_under_siege(t: &Target) {
    let secs = 10;
    let (stop, ok, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let client = AgentClient::new(&format!("http://{}", t.honest), &t.agent.token, Duration::from_secs(5));
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                match client.list() {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                next += Duration::from_millis(5);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    };
    let watch = Watch::start(t.honest, t.pid);
    let mut held: Held = hostile::idle(t.hostile, 250);
    held.extend(hostile::unsent_bodies(t.hostile, 250, 5000));
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::SeqCst);
    let _ = load.join();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    row(
        "200 req/s honest + 500 hostile connections",
        &watch.finish(),
        &format!("honest: {ok} answered, {failed} failed, {:.0}/s", ok as f64 / secs as f64),
    );
    drop(held);
}
