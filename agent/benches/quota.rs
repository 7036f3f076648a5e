//! Quota benchmark: prints figures, asserts nothing. An agent with `max_content_bytes` of 64 MiB is
//! fed ten torrents of 16 MiB in turn, each downloaded from a seeder, held whole, then released
//! (`DELETE`): after each, what its data dir takes on disk, what it lists (`GET /v1/content`), and
//! whether the torrent it seeds was ever evicted.
//!
//! Run: `scripts/bench quota` (or `cargo bench -p odseed-agent --bench quota`, root, or under
//! `unshare --user --map-root-user --net`). BENCH_QUOTA_MIB, BENCH_QUOTA_TORRENT_MIB and
//! BENCH_QUOTA_TORRENTS change the three figures (defaults 64, 16, 10).

use odseed_lab::{content, wait_until, AgentOptions, Netns, Peer, TempDir, Tracker};
use odseed_proto::InfoHash;
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the files under `dir` take on disk, in bytes.
fn du(dir: &Path) -> u64 {
    let mut sum = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        sum += if p.is_dir() { du(&p) } else { odseed_proto::fsutil::disk_bytes(&p) };
    }
    sum
}

fn main() {
    const MIB: u64 = 1 << 20;
    let (quota, size, n) = (
        env_num("BENCH_QUOTA_MIB", 64) * MIB,
        env_num("BENCH_QUOTA_TORRENT_MIB", 16) * MIB,
        env_num("BENCH_QUOTA_TORRENTS", 10),
    );
    let ns = Netns::enter().unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("bench-quota").expect("temp dir");
    let (tracker_ip, agent_ip, seeder_ip) =
        (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 3));
    for ip in [tracker_ip, agent_ip, seeder_ip] {
        ns.add_host(ip).expect("address");
    }
    let o = AgentOptions {
        host: agent_ip,
        max_content_bytes: Some(quota),
        min_free_bytes: Some(0),
        ..AgentOptions::default()
    };
    let agent = odseed_lab::Agent::start(Path::new(env!("CARGO_BIN_EXE_odseed-agent")), &dir.path().join("agent"), &o)
        .unwrap_or_else(|e| panic!("{e}"));
    let c = agent.client();
    let seeder = Peer::start(dir.path(), "seeder", seeder_ip, json!({})).expect("seeder");
    let announce = format!("http://{tracker_ip}:6969/announce");
    let made: Vec<_> = (0..n)
        .map(|i| content::make(&seeder.data_dir, &format!("t{i}"), size, i, std::slice::from_ref(&announce)).unwrap())
        .collect();
    let hashes: Vec<InfoHash> = made.iter().map(|t| t.meta.info_hash).collect();
    let _tracker = Tracker::start(&dir.path().join("tracker"), tracker_ip, 6969, &hashes).expect("tracker");
    for t in &made {
        seeder.add(&t.bytes).expect("seeded");
    }
    println!("quota benchmark: max_content_bytes {} MiB, {n} torrents of {} MiB in turn", quota / MIB, size / MIB);
    println!("{:>8} {:>10} {:>12} {:>8} {:>14}", "torrent", "whole in s", "on disk MiB", "listed", "seeded intact");
    let (mut most, mut intact) = (0, true);
    for (i, t) in made.iter().enumerate() {
        let start = Instant::now();
        if let Err(e) = c.put(&t.meta.info_hash, &t.bytes) {
            println!("{i:>8} refused: {e}");
            continue;
        }
        let whole = wait_until(Duration::from_secs(600), "the torrent held whole", || {
            let listed = c.content().ok()?;
            listed.torrents.iter().any(|h| h.info_hash == t.meta.info_hash && h.complete()).then_some(())
        });
        let took = start.elapsed().as_secs_f64();
        let on_disk = du(&agent.data_dir);
        let listed = c.content().map(|l| l.torrents.len()).unwrap_or(0);
        // The one seeded is on disk whole while it is seeded.
        let seeded = std::fs::metadata(agent.data_dir.join(&t.meta.name)).map(|m| m.len() == size).unwrap_or(false);
        intact &= seeded && whole.is_ok();
        most = most.max(on_disk);
        println!("{i:>8} {took:>10.1} {:>12.1} {listed:>8} {seeded:>14}", on_disk as f64 / MIB as f64);
        let _ = c.delete(&t.meta.info_hash);
    }
    println!(
        "most on disk {:.1} MiB of a {} MiB quota; the seeded torrent was {}",
        most as f64 / MIB as f64,
        quota / MIB,
        if intact { "never evicted" } else { "NOT always whole" }
    );
}
