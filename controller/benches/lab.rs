//! The lab benchmark: the same swarm with 0, 1, 2 and 4 helpers; mean and max completion next to
//! the fluid bound, and the speed-up over the origin alone. Prints a table; asserts nothing.
//!
//! Run: `scripts/bench lab` (or `cargo bench -p odseed --bench lab`, root). BENCH_LAB_LEECHERS,
//! BENCH_LAB_SIZE and BENCH_LAB_HELPERS (e.g. "0,1,2,4") change the swarm.

use odseed_lab::testing::agent_bin;
use serde_json::Value;
use std::process::Command;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let leechers = env_or("BENCH_LAB_LEECHERS", "6");
    let size = env_or("BENCH_LAB_SIZE", "8388608");
    let helpers: Vec<usize> =
        env_or("BENCH_LAB_HELPERS", "0,1,2,4").split(',').filter_map(|h| h.trim().parse().ok()).collect();
    let bin_dir = agent_bin().parent().map(|d| d.to_path_buf()).unwrap_or_default();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    println!("odseed lab benchmark: {leechers} leechers, {size} bytes, origin 200 kB/s, helpers 200 kB/s each,");
    println!("leechers 1000 kB/s down, uploads uncapped; ratio 1 (every helper is wanted)");
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>11} {:>10} {:>9} {:>12} {:>12}",
        "helpers", "mean s", "max s", "bound s", "mean/bound", "max/bound", "speed-up", "origin MiB", "helpers MiB"
    );
    let mut baseline: Option<f64> = None;
    for k in helpers {
        let mut args = vec![
            "lab".to_string(),
            "--json".into(),
            "--leechers".into(),
            leechers.clone(),
            "--size".into(),
            size.clone(),
        ];
        if k == 0 {
            args.push("--no-helpers".into());
        } else {
            args.extend(["--helpers".into(), k.to_string()]);
        }
        let out =
            Command::new(env!("CARGO_BIN_EXE_odseed")).args(&args).env("PATH", &path).output().expect("run odseed lab");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report =
            stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["event"] == "report");
        let Some(r) = report else {
            println!("{k:>8} failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
            continue;
        };
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let mean = f("mean");
        let base = *baseline.get_or_insert(mean);
        println!(
            "{k:>8} {mean:>9.1} {:>9.1} {:>9.1} {:>11.2} {:>10.2} {:>8.2}x {:>12.1} {:>12.1}",
            f("max"),
            f("bound"),
            f("mean_over_bound"),
            f("max_over_bound"),
            base / mean,
            f("origin_uploaded") / 1048576.0,
            f("helpers_uploaded") / 1048576.0
        );
    }
}
