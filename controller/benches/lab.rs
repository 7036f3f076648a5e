//! The lab benchmark: the lab's default swarm (`odseed lab --help`: 64 MiB, 6 leechers alternating
//! Transmission and libtorrent, uploads capped below downloads) with 0, 1, 2 and 4 helpers given a
//! copy by hand, 4 that start empty (`--cold-helpers`, "4 cold") and 4 that `odseed stage` fills
//! before the leechers come (`--stage`, "4 staged", with what staging took), and no helper but a
//! web seed of 800 kB/s, the capacity of the 4 helpers (`--webseed 800`, "webseed 800"): mean
//! and max completion next to the fluid bound, where the time went (first byte, first trade
//! between leechers, the share of the servers' bytes that were new to the swarm), the speed-up over
//! the origin alone; and one picture with the runs side by side. Prints a table; asserts nothing.
//!
//! Run: `scripts/bench lab` (or `cargo bench -p odseed --bench lab`, root). BENCH_LAB_LEECHERS,
//! BENCH_LAB_SIZE (8388608 for a quick look), BENCH_LAB_HELPERS (e.g. "0,1,2,4,4c,4s,w800": c cold,
//! s staged, wK a web seed of K kB/s and no helper) and
//! BENCH_LAB_ARGS (more `odseed lab` flags, space-separated) change the swarm; BENCH_LAB_SVG where
//! the picture goes (default target/bench-lab.svg).

use odseed_lab::svg::{self, Panel};
use odseed_lab::testing::agent_bin;
use odseed_lab::trace::Trace;
use serde_json::Value;
use std::process::Command;

fn main() {
    let helpers: Vec<(usize, String)> = std::env::var("BENCH_LAB_HELPERS")
        .unwrap_or_else(|_| "0,1,2,4,4c,4s,w800".into())
        .split(',')
        .filter_map(|h| {
            let h = h.trim();
            if let Some(kbps) = h.strip_prefix('w') {
                return Some((0, format!("webseed {}", kbps.parse::<u32>().ok()?)));
            }
            let (k, how) = match h.strip_suffix('c').or_else(|| h.strip_suffix('s')) {
                Some(k) => (k, if h.ends_with('c') { "cold" } else { "staged" }),
                None => (h, ""),
            };
            Some((k.parse().ok()?, how.to_string()))
        })
        .collect();
    let mut swarm: Vec<String> = Vec::new();
    for (var, flag) in [("BENCH_LAB_LEECHERS", "--leechers"), ("BENCH_LAB_SIZE", "--size")] {
        if let Ok(v) = std::env::var(var) {
            swarm.extend([flag.to_string(), v]);
        }
    }
    swarm.extend(std::env::var("BENCH_LAB_ARGS").unwrap_or_default().split_whitespace().map(String::from));
    let bin_dir = agent_bin().parent().map(|d| d.to_path_buf()).unwrap_or_default();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let scratch = odseed_lab::TempDir::new("bench-lab").expect("a temp dir");
    println!(
        "odseed lab benchmark: the lab's defaults{}{}",
        if swarm.is_empty() { "" } else { " and " },
        swarm.join(" ")
    );
    println!(
        "{:>9} {:>7} {:>7} {:>7} {:>10} {:>9} {:>10} {:>11} {:>7} {:>8} {:>8} {:>10} {:>10}",
        "helpers",
        "mean s",
        "max s",
        "bound s",
        "mean/bound",
        "floor s",
        "mean/floor",
        "1st byte s",
        "trade s",
        "useful",
        "copies",
        "speed-up",
        "libt/trans"
    );
    let mut baseline: Option<f64> = None;
    let mut runs: Vec<(String, Trace, Value)> = Vec::new();
    for (k, how) in helpers {
        let label = match how.as_str() {
            w if w.starts_with("webseed") => w.to_string(),
            "" => k.to_string(),
            how => format!("{k} {how}"),
        };
        let (r, trace) = match lab(k, &how, &swarm, scratch.path(), &path) {
            Ok(found) => found,
            Err(why) => {
                println!("{label:>9} failed: {why}");
                continue;
            }
        };
        let mean = r["mean"].as_f64().unwrap_or(f64::NAN);
        row(&label, &r, *baseline.get_or_insert(mean));
        if let Some(s) = r.get("staging") {
            println!(
                "{:>9} staging took {:.1} s: {:.2} copies from the origin, {:.2} from one another",
                "",
                s["seconds"].as_f64().unwrap_or(f64::NAN),
                s["origin_copies"].as_f64().unwrap_or(f64::NAN),
                s["from_helpers_copies"].as_f64().unwrap_or(f64::NAN)
            );
            let shares: Vec<String> = (s["from_origin"].as_array().into_iter().flatten())
                .map(|h| format!("{} {:.0}%", h[0].as_str().unwrap_or("?"), h[1].as_f64().unwrap_or(f64::NAN) * 100.0))
                .collect();
            println!("{:>9} from the origin, per helper: {}", "", shares.join(", "));
        }
        let title = match how.as_str() {
            "" => svg::helpers(k),
            w if w.starts_with("webseed") => format!("{w} kB/s, no helper"),
            how => format!("{} ({how})", svg::helpers(k)),
        };
        match serde_json::from_value::<Trace>(trace["trace"].clone()) {
            Ok(t) => runs.push((title, t, r)),
            Err(e) => println!("        (its trace cannot be read: {e})"),
        }
    }
    println!("columns: floor = the bound counted from the mean first byte; useful = the share of the servers'");
    println!("bytes, until the leechers held every piece between them, that added a piece they lacked; copies =");
    println!("the servers' bytes in copies of the file; libt/trans = libtorrent leechers' mean over Transmission's");
    let panels: Vec<Panel> = runs
        .iter()
        .map(|(title, trace, r)| Panel {
            title: title.clone(),
            trace,
            bound: r["bound"].as_f64(),
            floor: r["floor"].as_f64(),
        })
        .collect();
    let file = std::env::var("BENCH_LAB_SVG").unwrap_or_else(|_| {
        let target = bin_dir.parent().unwrap_or(&bin_dir);
        target.join("bench-lab.svg").to_string_lossy().into_owned()
    });
    match std::fs::write(&file, svg::render(&panels)) {
        Ok(()) => println!("picture: {file}"),
        Err(e) => println!("cannot write the picture {file}: {e}"),
    }
}

/// One `odseed lab` with `k` helpers (`how`: "" given a copy, "cold", "staged", or "webseed KBPS"
/// and no helper): its report and its trace, or why not.
fn lab(k: usize, how: &str, swarm: &[String], scratch: &std::path::Path, path: &str) -> Result<(Value, Value), String> {
    let mut args = vec!["lab".to_string(), "--json".into()];
    args.extend(swarm.iter().cloned());
    let webseed = how.strip_prefix("webseed ");
    match (k, webseed) {
        (_, Some(kbps)) => args.extend(["--webseed".into(), kbps.to_string()]),
        (0, None) => args.push("--no-helpers".into()),
        (k, None) => args.extend(["--helpers".into(), k.to_string()]),
    }
    match how {
        "cold" => args.push("--cold-helpers".into()),
        "staged" => args.push("--stage".into()),
        _ => {}
    }
    let svg = scratch.join(format!("{k}{}.svg", how.replace(' ', "-")));
    args.extend(["--svg".into(), svg.to_string_lossy().into_owned()]);
    let out = Command::new(env!("CARGO_BIN_EXE_odseed"))
        .args(&args)
        .env("PATH", path)
        .env("XDG_STATE_HOME", scratch)
        .output()
        .map_err(|e| format!("cannot run odseed lab: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let event = |name: &str| events.iter().find(|v| v["event"] == name).cloned();
    match (event("report"), event("trace")) {
        (Some(r), Some(trace)) => Ok((r, trace)),
        _ => Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").to_string()),
    }
}

/// A run's line of the table; `base` is the mean completion with no helpers.
fn row(k: &str, r: &Value, base: f64) {
    let f = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
    let mean = f("mean");
    let by = |client: &str| {
        let c = r["by_client"].as_array().and_then(|a| a.iter().find(|c| c["client"] == client).cloned());
        c.and_then(|c| c["mean"].as_f64()).unwrap_or(f64::NAN)
    };
    println!(
        "{k:>9} {mean:>7.1} {:>7.1} {:>7.1} {:>10.2} {:>9.1} {:>10.2} {:>11.1} {:>7.1} {:>7.0}% {:>8.2} {:>9.2}x {:>10.2}",
        f("max"),
        f("bound"),
        f("mean_over_bound"),
        f("floor"),
        f("mean_over_floor"),
        f("first_byte_mean"),
        f("first_trade"),
        f("useful_fraction") * 100.0,
        f("server_copies"),
        base / mean,
        by("libtorrent") / by("transmission"),
    );
}
