//! Controller benchmark: prints figures, asserts nothing.
//!   - one scrape round over 1,000 torrents on one opentracker, over HTTP and over UDP: time and
//!     requests;
//!   - RSS of `odseed run` while it polls a swarm every second.
//!
//! Run: `cargo bench -p odseed` (root, or under `unshare --user --map-root-user --net`).

use odseed::tracker::{http, udp, Scraper};
use odseed_lab::{wait_until, Netns, Proc, TempDir, Tracker};
use odseed_proto::bencode::Owned;
use odseed_proto::InfoHash;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

const TORRENTS: usize = 1000;
const ROUNDS: usize = 5;

fn kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn main() {
    let _ns = Netns::enter().unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("bench-scrape").unwrap();
    let ip = Ipv4Addr::new(10, 77, 0, 1);
    _ns.add_host(ip).unwrap();
    let hashes: Vec<InfoHash> = (0..TORRENTS)
        .map(|i| InfoHash::from_bytes(sha1_smol::Sha1::from(format!("torrent {i}")).digest().bytes()))
        .collect();
    // One more torrent, with 20 leechers, for the `odseed run` part.
    let announce = format!("http://{ip}:6969/announce");
    let info = Owned::dict([
        ("name", Owned::str("b.bin")),
        ("length", Owned::Int(1000)),
        ("piece length", Owned::Int(16384)),
        ("pieces", Owned::Bytes(vec![0; 20])),
    ]);
    let torrent = Owned::dict([("announce", Owned::str(&announce)), ("info", info)]).encode();
    let busy = odseed_proto::metainfo::parse(&torrent).unwrap().info_hash;
    let whitelist: Vec<InfoHash> = hashes.iter().copied().chain([busy]).collect();
    let tracker = Tracker::start(&dir.path().join("tracker"), ip, 6969, &whitelist).unwrap();
    // Peers on 20 of the 1,000 (so answers carry numbers) and 20 leechers on the busy one.
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
    for (i, h) in hashes.iter().take(20).chain(std::iter::repeat_n(&busy, 20)).enumerate() {
        let hash: String = h.as_bytes().iter().map(|b| format!("%{b:02X}")).collect();
        let url = format!("{announce}?info_hash={hash}&peer_id=-OD0001-{i:012}&port={}&uploaded=0&downloaded=0&left=1000&event=started&compact=1", 10000 + i);
        let body = agent.get(&url).call().expect("announce").body_mut().read_to_string().unwrap_or_default();
        assert!(!body.contains("failure"), "announce refused: {body}");
    }

    println!("odseed scrape benchmark: {TORRENTS} torrents on one opentracker, {ROUNDS} rounds each");
    println!("  (opentracker's HTTP scrape leaves out torrents without peers; UDP answers zeros for them)");
    let scraper = Scraper { timeout: Duration::from_secs(5), retries: 0 };
    for (label, url, per_request, datagrams_per_request) in [
        ("HTTP (BEP 48)", tracker.announce_url(), http::MAX_PER_REQUEST, 1),
        ("UDP (BEP 15)", tracker.udp_url(), udp::MAX_PER_REQUEST, 2),
    ] {
        let mut times = Vec::new();
        let mut known = 0;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let counts = scraper.scrape(&url, &hashes).expect("scrape");
            times.push(start.elapsed());
            known = counts.len();
        }
        times.sort();
        let requests = TORRENTS.div_ceil(per_request);
        println!(
            "  {label:<14} {requests} requests ({} exchanges), {known} torrents answered, median {:.1} ms, min {:.1} ms",
            requests * datagrams_per_request,
            times[ROUNDS / 2].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3
        );
    }

    // odseed run polling every second a swarm with 20 leechers and no helper to give it.
    let torrent_path = dir.path().join("b.torrent");
    std::fs::write(&torrent_path, &torrent).unwrap();
    let cfg = dir.path().join("odseed.toml");
    std::fs::write(&cfg, "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_odseed"));
    cmd.args([
        "run",
        torrent_path.to_str().unwrap(),
        "1",
        "--interval",
        "1",
        "--min-size",
        "0",
        "--max-time",
        "20",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    cmd.env("XDG_STATE_HOME", dir.path().join("state"));
    let mut run = Proc::spawn("odseed", cmd, &dir.path().join("run.log")).unwrap();
    let pid = run.pid();
    let (mut max_rss, mut samples) = (0u64, 0);
    let sampled = wait_until(Duration::from_secs(40), "the run to end", || {
        max_rss = max_rss.max(kib(pid, "VmRSS:"));
        samples += 1;
        run.exited()
    });
    let polls = run.log_text().lines().filter(|l| l.contains("\"event\":\"poll\"")).count();
    println!(
        "  odseed run, {polls} rounds at 1/s over 20 s: RSS max {:.2} MiB ({samples} samples; exit {sampled:?})",
        max_rss as f64 / 1024.0
    );
}
