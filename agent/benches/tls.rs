//! What TLS costs the controller per request: `/v1/health` over a kept-alive pinned connection
//! (what `odseed` does: one client per helper, connections pooled), over a new connection each time
//! (a full TLS 1.3 handshake), and over plain HTTP for comparison; and the agent's RSS with TLS.
//! Prints figures, asserts nothing. Run: `cargo bench -p odseed-agent --bench tls` (root).

use odseed_lab::{Agent, AgentOptions, Netns, TempDir};
use odseed_proto::agent_client::AgentClient;
use std::path::Path;
use std::time::{Duration, Instant};

const N: usize = 300;

/// Median and mean of `n` calls of `f`, in ms.
fn time(n: usize, mut f: impl FnMut()) -> String {
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    format!("median {:.3} ms, mean {:.3} ms", t[n / 2], t.iter().sum::<f64>() / n as f64)
}

fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn main() {
    let bin = Path::new(env!("CARGO_BIN_EXE_odseed-agent"));
    let _ns = Netns::enter().unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("bench-tls").expect("temp dir");
    let mut tls = Agent::start(bin, &dir.path().join("tls"), &AgentOptions { tls: true, ..AgentOptions::default() })
        .expect("agent with TLS");
    let plain = Agent::start(bin, &dir.path().join("plain"), &AgentOptions::default()).expect("agent");
    let pid = tls.proc().expect("agent process").pid();
    println!("odseed-agent TLS benchmark ({}), {N} requests each", bin.display());
    println!("  RSS with TLS, idle                  {:.2} MiB", rss_kib(pid) as f64 / 1024.0);

    let kept = tls.client();
    kept.health().expect("health");
    println!("  https, kept-alive connection        {}", time(N, || drop(kept.health().expect("health"))));
    println!(
        "  https, new connection each          {}",
        time(N, || {
            let c = AgentClient::pinned(&tls.url, &tls.token, tls.pin, Duration::from_secs(10));
            c.health().expect("health");
        })
    );
    let p = plain.client();
    println!("  http, kept-alive connection         {}", time(N, || drop(p.health().expect("health"))));
    println!(
        "  http, new connection each           {}",
        time(N, || drop(AgentClient::new(&plain.url, &plain.token, Duration::from_secs(10)).health().expect("health")))
    );
    println!("  RSS with TLS, after                 {:.2} MiB", rss_kib(pid) as f64 / 1024.0);
}
