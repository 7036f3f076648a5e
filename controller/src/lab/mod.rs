//! `odseed lab`: a whole swarm on this machine (opentracker, an origin seeder, leechers, boards
//! running the real agent, in a network namespace of its own), helped by the real controller loop
//! (`run::run`, nothing faked) until every leecher has the whole file; then a report. Everything is
//! torn down at the end, on Ctrl-C and on error (processes, namespace, temp dir unless `--keep`).

pub mod report;

use crate::cli::RunArgs;
use crate::config::{BoardConfig, Config, PlacementName, PolicyConfig};
use crate::ledger::Ledger;
use crate::run::{self, End};
use odseed_testbed::swarm::{Spec, Swarm};
use odseed_testbed::{Netns, TempDir};
use report::{Report, Setup};
use serde_json::json;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `odseed lab`'s settings; rates in Transmission's kB/s (1000 bytes/s), 0 = no cap.
#[derive(Debug, Clone, PartialEq)]
pub struct LabArgs {
    pub leechers: usize,
    pub helpers: usize,
    pub size: u64,
    pub ratio: f64,
    pub origin_kbps: u32,
    pub helper_kbps: u32,
    pub leecher_kbps: u32,
    pub leecher_up_kbps: u32,
    pub no_helpers: bool,
    pub keep: bool,
    pub json: bool,
    /// Give up after this long.
    pub timeout: u64,
}

impl Default for LabArgs {
    fn default() -> Self {
        LabArgs {
            leechers: 4,
            helpers: 2,
            size: 8 << 20,
            ratio: 1.0,
            origin_kbps: 200,
            helper_kbps: 200,
            leecher_kbps: 1000,
            leecher_up_kbps: 0,
            no_helpers: false,
            keep: false,
            json: false,
            timeout: 900,
        }
    }
}

/// How the lab ended.
pub enum Outcome {
    Done(Report),
    Interrupted,
}

/// The agent binary: beside this one, or on PATH.
fn agent_bin() -> Result<PathBuf, String> {
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("odseed-agent")));
    let on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("odseed-agent")).find(|f| f.is_file()));
    beside
        .filter(|p| p.is_file())
        .or(on_path)
        .ok_or_else(|| "odseed-agent is neither beside odseed nor on PATH (cargo build --release)".into())
}

pub fn lab(a: &LabArgs, stop: &mpsc::Receiver<()>) -> Result<Outcome, String> {
    let ns = Netns::enter()?;
    let mut dir = TempDir::new("lab").map_err(|e| format!("temp dir: {e}"))?;
    if a.keep {
        dir.keep();
    }
    let spec = Spec {
        size: a.size,
        leechers: a.leechers,
        boards: if a.no_helpers { 0 } else { a.helpers },
        origin_kbps: a.origin_kbps,
        helper_kbps: a.helper_kbps,
        leecher_kbps: a.leecher_kbps,
        leecher_up_kbps: a.leecher_up_kbps,
    };
    log::info!(
        "lab: building a swarm in {} ({} leechers, {} helpers, {} bytes)",
        dir.path().display(),
        spec.leechers,
        spec.boards,
        spec.size
    );
    if a.json {
        println!("{}", json!({"event": "lab_start", "dir": dir.path()}));
    }
    let mut swarm = Swarm::start(&ns, dir.path(), &spec, &agent_bin()?)?;
    swarm.start_leechers(&spec)?;
    let started = Instant::now();
    swarm.wait_announced(Duration::from_secs(60))?;

    // The real controller, on its own thread, with a config naming the lab's boards.
    let (ctl_stop, ctl_stop_rx) = mpsc::channel();
    let controller = if a.no_helpers {
        None
    } else {
        let cfg = lab_config(&swarm)?;
        let args = RunArgs {
            torrent: swarm.torrent_file.to_string_lossy().into_owned(),
            ratio: a.ratio,
            interval: Some(1),
            max_time: Some(a.timeout),
            min_size: Some(0),
            json: a.json,
            ..RunArgs::default()
        };
        let ledger = Ledger::at(&dir.path().join("ledger.json"));
        Some(std::thread::spawn(move || {
            run::run(&args, &cfg, crate::helpers::ec2::Fleet::none(), &ledger, &ctl_stop_rx)
        }))
    };

    let hash = swarm.torrent.meta.info_hash;
    let mut done: Vec<Option<f64>> = vec![None; a.leechers];
    let mut helper_uploaded = vec![0u64; swarm.boards.len()];
    let mut most_engaged = 0;
    let outcome = loop {
        let t = started.elapsed().as_secs_f64();
        let progress: Vec<f64> = swarm.leechers.iter().map(|l| l.percent_done(&hash)).collect();
        for (d, p) in done.iter_mut().zip(&progress) {
            if d.is_none() && *p >= 1.0 {
                *d = Some(t);
            }
        }
        let (mut engaged, mut helpers_bps) = (0, 0u64);
        for (up, b) in helper_uploaded.iter_mut().zip(&swarm.boards) {
            if let Ok(Some(s)) = b.client().get(&hash) {
                engaged += 1;
                helpers_bps += s.upload_bps;
                *up = (*up).max(s.uploaded_bytes);
            }
        }
        most_engaged = most_engaged.max(engaged);
        let origin_bps = swarm.origin.field(&hash, "rateUpload").and_then(|v| v.as_u64()).unwrap_or(0);
        live(a.json, t, &progress, engaged, origin_bps, helpers_bps);
        if done.iter().all(Option::is_some) {
            break None;
        }
        if t > a.timeout as f64 {
            break Some(Err(format!("the leechers did not finish within {} s", a.timeout)));
        }
        if stop.recv_timeout(Duration::from_secs(1)).is_ok() {
            break Some(Ok(Outcome::Interrupted));
        }
    };

    // Every leecher has it: the controller sees no leecher left and ends by itself (ratio_met);
    // if it does not within a few rounds (or the lab ends otherwise), it is told to stop.
    if let Some(handle) = controller {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !handle.is_finished() && Instant::now() < deadline && outcome.is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = ctl_stop.send(());
        match handle.join() {
            Ok(Ok(End::Normal(r))) => log::info!("lab: the controller ended: {r}"),
            Ok(Ok(End::Interrupted)) => log::info!("lab: the controller was stopped"),
            Ok(Err(e)) => return Err(format!("the controller failed: {e}")),
            Err(_) => return Err("the controller panicked".into()),
        }
    }
    if let Some(o) = outcome {
        return o;
    }
    let differ = swarm.mismatched()?;
    if !differ.is_empty() {
        return Err(format!("{} finished with a file that differs from the origin's", differ.join(", ")));
    }
    let origin_uploaded = swarm.origin.field(&hash, "uploadedEver").and_then(|v| v.as_u64()).unwrap_or(0);
    let setup = Setup {
        size: a.size,
        leechers: a.leechers,
        helpers: most_engaged,
        origin_up: rate(a.origin_kbps),
        helper_up: rate(a.helper_kbps),
        leecher_down: rate(a.leecher_kbps),
        leecher_up: rate(a.leecher_up_kbps),
    };
    let completion = done.into_iter().map(|d| d.unwrap_or(f64::NAN)).collect();
    Ok(Outcome::Done(Report::new(completion, origin_uploaded, helper_uploaded.iter().sum(), most_engaged, &setup)))
}

fn rate(kbps: u32) -> Option<f64> {
    (kbps > 0).then(|| f64::from(kbps) * 1000.0)
}

fn lab_config(swarm: &Swarm) -> Result<Config, String> {
    let boards = swarm
        .boards
        .iter()
        .enumerate()
        .map(|(i, b)| BoardConfig {
            name: format!("board{i}"),
            url: b.url.clone(),
            token_file: b.root.join("token"),
            token: b.token.clone(),
        })
        .collect();
    let policy =
        PolicyConfig { interval: 1, max_time: 3600, min_size: 0, cooldown: 10, placement: PlacementName::Fill };
    Ok(Config { transmission: None, policy, boards, ec2: None })
}

/// One line a second: each leecher's progress, helpers engaged, upload rates.
fn live(as_json: bool, t: f64, progress: &[f64], engaged: usize, origin_bps: u64, helpers_bps: u64) {
    if as_json {
        let v = json!({"event": "lab", "elapsed": t, "progress": progress, "helpers": engaged, "origin_bps": origin_bps, "helpers_bps": helpers_bps});
        return println!("{v}");
    }
    let bars: Vec<String> = progress.iter().map(|p| format!("{:3.0}%", p * 100.0)).collect();
    println!(
        "lab [{t:5.1}s] leechers {}  helpers {engaged}  upload: origin {} kB/s, helpers {} kB/s",
        bars.join(" "),
        origin_bps / 1000,
        helpers_bps / 1000
    );
}
