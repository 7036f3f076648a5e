//! `odseed lab`: a whole swarm on this machine (opentracker, an origin seeder, leechers, boards
//! running the real agent, in a network namespace of its own, built by `odseed-lab`), helped by the
//! real controller loop (`run::run`, nothing faked) until every leecher has the whole file; then a
//! report. Everything is torn down at the end, on Ctrl-C and on error (processes, namespace, temp
//! dir unless `--keep`). The steps: [`build`], [`Controller::start`], [`watch`], [`report`].

use crate::cli::LabArgs;
use crate::config::{BoardConfig, Config, PolicyConfig};
use crate::error::Error;
use crate::helpers::ec2::Fleet;
use crate::ledger::Ledger;
use crate::policy::{Params, Placement};
use crate::run::{self, End};
use crate::settings::Settings;
use odseed_lab::report::{Report, Setup};
use odseed_lab::swarm::{Spec, Swarm};
use odseed_lab::{Netns, TempDir};
use serde_json::json;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the lab ended.
pub enum Outcome {
    Done(Report),
    Interrupted,
}

pub fn lab(a: &LabArgs, stop: &mpsc::Receiver<()>) -> Result<Outcome, Error> {
    run_lab(a, stop).map_err(Error::Lab)
}

fn run_lab(a: &LabArgs, stop: &mpsc::Receiver<()>) -> Result<Outcome, String> {
    let ns = Netns::enter()?;
    let mut dir = TempDir::new("lab").map_err(|e| format!("temp dir: {e}"))?;
    if a.keep {
        dir.keep();
    }
    let spec = Spec { boards: if a.no_helpers { 0 } else { a.spec.boards }, ..a.spec.clone() };
    let swarm = build(&ns, dir.path(), &spec, a.json)?;
    let started = Instant::now();
    swarm.wait_announced(Duration::from_secs(60))?;
    let controller = (!a.no_helpers).then(|| Controller::start(&swarm, a, dir.path()));
    let watched = watch(a, &swarm, started, stop);
    if let Some(c) = controller {
        c.stop(matches!(watched, Ok(Watched::Finished(_))))?;
    }
    match watched? {
        Watched::Finished(seen) => report(a, &swarm, seen).map(Outcome::Done),
        Watched::Interrupted => Ok(Outcome::Interrupted),
    }
}

/// The swarm, leechers started.
fn build(ns: &Netns, dir: &Path, spec: &Spec, as_json: bool) -> Result<Swarm, String> {
    log::info!(
        "lab: building a swarm in {} ({} leechers, {} helpers, {} bytes)",
        dir.display(),
        spec.leechers,
        spec.boards,
        spec.size
    );
    if as_json {
        println!("{}", json!({"event": "lab_start", "dir": dir}));
    }
    let mut swarm = Swarm::start(ns, dir, spec, &odseed_lab::agent_bin()?)?;
    swarm.start_leechers(spec)?;
    Ok(swarm)
}

/// The real controller loop, on a thread of its own, with a config naming the lab's boards.
struct Controller {
    handle: JoinHandle<Result<End, Error>>,
    stop: mpsc::Sender<()>,
}

impl Controller {
    fn start(swarm: &Swarm, a: &LabArgs, dir: &Path) -> Controller {
        let settings = Settings {
            torrent: swarm.torrent_file.to_string_lossy().into_owned(),
            params: Params {
                ratio: a.ratio,
                min_size: 0,
                max_time: Duration::from_secs(a.timeout),
                cooldown: Duration::from_secs(10),
            },
            interval: Duration::from_secs(1),
            placement: Placement::Fill,
            first_counts: None,
            once: false,
            dry_run: false,
            json: a.json,
        };
        let boards = (swarm.boards.iter().enumerate())
            .map(|(i, b)| BoardConfig {
                name: format!("board{i}"),
                url: b.url.clone(),
                token_file: b.root.join("token"),
                token: b.token.clone(),
                cert_sha256: b.pin,
                plain_http: false,
            })
            .collect();
        // The run reads its policy from `settings`; the config only names the boards.
        let cfg = Config { transmission: None, policy: PolicyConfig::default(), boards, ec2: None };
        let ledger = Ledger::at(&dir.join("ledger.json"));
        let (stop, stop_rx) = mpsc::channel();
        let handle = std::thread::spawn(move || run::run(&settings, &cfg, Fleet::none(), &ledger, &stop_rx));
        Controller { handle, stop }
    }

    /// Once every leecher has the file, the controller sees no leecher left and ends by itself
    /// (ratio_met): it gets a few rounds for that. Otherwise, or after those, it is told to stop.
    fn stop(self, finished: bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while finished && !self.handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.stop.send(());
        match self.handle.join() {
            Ok(Ok(End::Normal(r))) => log::info!("lab: the controller ended: {r}"),
            Ok(Ok(End::Interrupted)) => log::info!("lab: the controller was stopped"),
            Ok(Err(e)) => return Err(format!("the controller failed: {e}")),
            Err(_) => return Err("the controller panicked".into()),
        }
        Ok(())
    }
}

/// What the lab saw while the leechers downloaded.
struct Seen {
    /// Seconds from the leechers' start to each one's completion.
    completion: Vec<f64>,
    /// The most each helper reported uploaded.
    helper_uploaded: Vec<u64>,
    most_engaged: usize,
}

enum Watched {
    Finished(Seen),
    Interrupted,
}

/// One line a second until every leecher has the file, the timeout passes, or a signal.
fn watch(a: &LabArgs, swarm: &Swarm, started: Instant, stop: &mpsc::Receiver<()>) -> Result<Watched, String> {
    let hash = swarm.torrent.meta.info_hash;
    let mut done: Vec<Option<f64>> = vec![None; swarm.leechers.len()];
    let mut seen = Seen { completion: Vec::new(), helper_uploaded: vec![0; swarm.boards.len()], most_engaged: 0 };
    loop {
        let t = started.elapsed().as_secs_f64();
        let progress: Vec<f64> = swarm.leechers.iter().map(|l| l.percent_done(&hash)).collect();
        for (d, p) in done.iter_mut().zip(&progress) {
            if d.is_none() && *p >= 1.0 {
                *d = Some(t);
            }
        }
        let (mut engaged, mut helpers_bps) = (0, 0u64);
        for (up, b) in seen.helper_uploaded.iter_mut().zip(&swarm.boards) {
            if let Ok(Some(s)) = b.client().get(&hash) {
                engaged += 1;
                helpers_bps += s.upload_bps;
                *up = (*up).max(s.uploaded_bytes);
            }
        }
        seen.most_engaged = seen.most_engaged.max(engaged);
        let (origin_bps, _) = swarm.origin.upload(&hash);
        live(a.json, t, &progress, engaged, origin_bps, helpers_bps);
        if let Some(completion) = done.iter().copied().collect::<Option<Vec<f64>>>() {
            seen.completion = completion;
            return Ok(Watched::Finished(seen));
        }
        if t > a.timeout as f64 {
            return Err(format!("the leechers did not finish within {} s", a.timeout));
        }
        if stop.recv_timeout(Duration::from_secs(1)).is_ok() {
            return Ok(Watched::Interrupted);
        }
    }
}

/// The report, once every leecher's file is checked byte for byte against the origin's.
fn report(a: &LabArgs, swarm: &Swarm, seen: Seen) -> Result<Report, String> {
    let differ = swarm.mismatched()?;
    if !differ.is_empty() {
        return Err(format!("{} finished with a file that differs from the origin's", differ.join(", ")));
    }
    let hash = swarm.torrent.meta.info_hash;
    let (_, origin_uploaded) = swarm.origin.upload(&hash);
    let spec = &a.spec;
    let setup = Setup {
        size: spec.size,
        leechers: spec.leechers,
        helpers: seen.most_engaged,
        origin_up: rate(spec.origin_kbps),
        helper_up: rate(spec.helper_kbps),
        leecher_down: rate(spec.leecher_kbps),
        leecher_up: rate(spec.leecher_up_kbps),
    };
    let helpers_uploaded = seen.helper_uploaded.iter().sum();
    Ok(Report::new(seen.completion, origin_uploaded, helpers_uploaded, seen.most_engaged, &setup))
}

fn rate(kbps: u32) -> Option<f64> {
    (kbps > 0).then(|| f64::from(kbps) * 1000.0)
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
