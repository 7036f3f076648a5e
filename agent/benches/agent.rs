//! Agent benchmark: prints figures, asserts nothing (targets are judged by a person, not a test).
//!
//!   RSS of the agent idle (daemon stopped) and while serving 200 requests/s to /v1/torrents;
//!   time from PUT to state `seeding` for a 64 MiB torrent whose content is present.
//!
//!   Then the idle footprint of other builds of the agent, to compare: BENCH_AGENT_BUILDS, a
//!   space-separated list of binaries (`scripts/bench agent` passes a static, non-PIE build).
//!
//! Run: `cargo bench -p odseed-agent` (root, or under `unshare --user --map-root-user --net`).
//! BENCH_LOAD_SECS and BENCH_RATE change the load phase (defaults 30 s, 200 requests/s).

use odseed_lab::{content, wait_until, Agent, AgentOptions, Netns, TempDir};
use odseed_proto::wire::TorrentState;
use std::path::Path;
use std::time::{Duration, Instant};

/// A field of /proc/PID/status or smaps_rollup, in KiB.
fn proc_kib(pid: u32, file: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    proc_kib(pid, "status", "VmRSS:")
}

fn mib(kib: u64) -> String {
    format!("{:.2} MiB", kib as f64 / 1024.0)
}

/// RSS and what it is made of: anonymous (the agent's own), file-backed (libc, the binary's text:
/// clean pages the kernel can drop), and PSS (shared pages divided among their users).
fn memory(pid: u32) -> String {
    format!(
        "{} (anon {}, file {}; PSS {})",
        mib(rss_kib(pid)),
        mib(proc_kib(pid, "status", "RssAnon:")),
        mib(proc_kib(pid, "status", "RssFile:")),
        mib(proc_kib(pid, "smaps_rollup", "Pss:"))
    )
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let bin = Path::new(env!("CARGO_BIN_EXE_odseed-agent"));
    let _ns = Netns::enter().unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("bench").expect("temp dir");
    let mut agent = Agent::start(bin, dir.path(), &AgentOptions::default()).expect("agent");
    let pid = agent.proc().expect("agent process").pid();
    let bytes = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    println!("odseed-agent benchmark ({})", bin.display());
    println!("  binary size                         {bytes} bytes ({:.3} MiB)", bytes as f64 / 1048576.0);

    std::thread::sleep(Duration::from_secs(2));
    println!("  RSS idle (daemon stopped)           {}", memory(pid));

    // PUT -> seeding, 64 MiB, content present: first with the daemon stopped, then with it running.
    let c = agent.client();
    for (i, label) in ["daemon stopped (starts it)", "daemon running", "daemon running"].iter().enumerate() {
        let t =
            content::make(&agent.data_dir, &format!("big{i}.bin"), 64 << 20, 1000 + i as u64, &[]).expect("content");
        let start = Instant::now();
        c.put(&t.meta.info_hash, &t.bytes).expect("PUT");
        let what = "state seeding";
        wait_until(Duration::from_secs(120), what, || {
            c.get(&t.meta.info_hash).ok().flatten().filter(|t| t.state == TorrentState::Seeding)
        })
        .expect("seeding");
        println!("  PUT -> seeding, 64 MiB, {label:<26} {:.3} s", start.elapsed().as_secs_f64());
    }

    // Load: GET /v1/torrents at a fixed rate from one keep-alive client.
    let secs = env_num("BENCH_LOAD_SECS", 30);
    let rate = env_num("BENCH_RATE", 200);
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let (mut max_rss, mut latencies, mut errors) = (0u64, Vec::new(), 0u64);
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < Duration::from_secs(secs) {
        let t0 = Instant::now();
        match c.list() {
            Ok(list) if list.len() == 3 => latencies.push(t0.elapsed()),
            _ => errors += 1,
        }
        if latencies.len() % 20 == 0 {
            max_rss = max_rss.max(rss_kib(pid));
        }
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "  load: {} requests in {elapsed:.1} s ({:.0}/s), {errors} errors, latency p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    println!("  RSS under load, max                 {}", mib(max_rss.max(rss_kib(pid))));
    println!("  RSS after load                      {}", memory(pid));
    if let Some(d) = agent.daemon_pid() {
        println!("  (transmission-daemon RSS, seeding 3 x 64 MiB: {})", mib(rss_kib(d)));
    }
    drop(agent);
    for (i, other) in std::env::var("BENCH_AGENT_BUILDS").unwrap_or_default().split_whitespace().enumerate() {
        idle(Path::new(other), &dir.path().join(format!("build{i}")));
    }
}

/// The idle footprint of another build of the agent.
fn idle(bin: &Path, root: &Path) {
    let mut agent = match Agent::start(bin, root, &AgentOptions::default()) {
        Ok(a) => a,
        Err(e) => return println!("  {}: cannot start: {e}", bin.display()),
    };
    let pid = agent.proc().expect("agent process").pid();
    let bytes = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    println!("odseed-agent, another build ({})", bin.display());
    println!("  binary size                         {bytes} bytes ({:.3} MiB)", bytes as f64 / 1048576.0);
    println!("  RSS idle (daemon stopped)           {}", memory(pid));
}
