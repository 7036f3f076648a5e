//! `odseed lab`: a whole swarm on this machine (opentracker, an origin seeder, leechers, boards
//! running the real agent, in a network namespace of its own, built by `odseed-lab`), helped by the
//! real controller loop (`run::run`, nothing faked; with `--torrents K`, K torrents of different
//! demand sharing the boards, helped by `watch::watch`) until every leecher has its files; then a
//! report per torrent. Everything is torn down at the end, on Ctrl-C and on error (processes, namespace, temp
//! dir unless `--keep`). The steps: [`build`], [`Controller::start`], [`watch`], [`report`].

use crate::budget::Budget;
use crate::cli::LabArgs;
use crate::config::{BoardConfig, ClientConfig, ClientKind, Config, PolicyConfig, WatchConfig};
use crate::error::Error;
use crate::guard::End;
use crate::helpers::ec2::Fleet;
use crate::ledger::Ledger;
use crate::policy::{ExitReason, Params, Placement};
use crate::run;
use crate::settings::Settings;
use crate::stage::StageArgs;
use crate::watch;
use odseed_lab::report::{Report, Setup, Staging};
use odseed_lab::svg::{self, Panel};
use odseed_lab::swarm::{Spec, Swarm};
use odseed_lab::trace::{Servers, Trace};
use odseed_lab::{Netns, TempDir};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// With `--crowd`, how long the swarm is quiet (the controller running, no leecher) before the
/// crowd comes.
const QUIET: Duration = Duration::from_secs(5);

/// How the lab ended.
pub enum Outcome {
    /// One report per torrent, and where the picture was written (None: it could not be; said).
    Done(Vec<Report>, Option<PathBuf>),
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
    let mut swarm = build(&ns, dir.path(), &spec, a.json)?;
    let staging = match a.stage {
        true => match stage(a, &swarm, dir.path(), stop)? {
            Some(s) => s,
            None => return Ok(Outcome::Interrupted),
        },
        false => Vec::new(),
    };
    let mut controller = None;
    if a.crowd && !a.no_helpers {
        // A quiet start: the controller's first round sees no leecher; then the crowd comes at once.
        let c = Controller::start(&swarm, a, dir.path());
        if stop.recv_timeout(QUIET).is_ok() {
            c.stop(false)?;
            return Ok(Outcome::Interrupted);
        }
        controller = Some(c);
    }
    let burst = Instant::now();
    let started = swarm.start_leechers(&spec).and_then(|_| {
        if a.crowd {
            return Ok(burst);
        }
        swarm.wait_announced(Duration::from_secs(60))?;
        Ok(Instant::now())
    });
    let watched = match started {
        Ok(started) => {
            if !a.crowd && !a.no_helpers {
                controller = Some(Controller::start(&swarm, a, dir.path()));
            }
            watch(a, &swarm, started, stop)
        }
        Err(e) => Err(e),
    };
    if let Some(c) = controller {
        c.stop(matches!(watched, Ok(Watched::Finished(_))))?;
    }
    match watched? {
        Watched::Finished(seen) => {
            let reports = report(a, &swarm, &seen, &staging)?;
            let picture = picture(a, &swarm, &seen.traces, &reports);
            Ok(Outcome::Done(reports, picture))
        }
        Watched::Interrupted => Ok(Outcome::Interrupted),
    }
}

/// The swarm, leechers not yet started.
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
    Swarm::start(ns, dir, spec, &odseed_lab::agent_bin()?)
}

/// The real controller loop, on a thread of its own, with a config naming the lab's boards.
struct Controller {
    handle: JoinHandle<Result<End, Error>>,
    stop: mpsc::Sender<()>,
    ends_by_itself: bool,
}

impl Controller {
    fn start(swarm: &Swarm, a: &LabArgs, dir: &Path) -> Controller {
        let boards = boards(swarm, a);
        let policy = PolicyConfig { interval: 1, min_size: 0, cooldown: 10, ..PolicyConfig::default() };
        let ledger = Ledger::at(&dir.join("ledger.json"));
        let (stop, stop_rx) = mpsc::channel();
        if swarm.torrents.len() > 1 || a.crowd {
            // Many torrents, or a crowd to wait for: `odseed watch` over the directory of their
            // .torrent files. For a crowd, at the default interval, with the origin as the
            // publisher's Transmission (asked every few seconds between rounds).
            let watch = WatchConfig { ratio: a.ratio, dir: Some(swarm.torrents_dir()), ..WatchConfig::default() };
            let client = a.crowd.then(|| {
                ClientConfig::new(client_kind(swarm.origin.kind()), &swarm.origin.url(), swarm.origin.credentials())
            });
            let cfg = Config { policy, boards, watch, client, ..Config::default() };
            let interval = Duration::from_secs(if a.crowd { PolicyConfig::default().interval } else { 1 });
            let options = watch::Options {
                interval,
                max_time: None,
                once: false,
                dry_run: false,
                json: a.json,
                metrics_file: None,
            };
            let budget = Budget::at(&dir.join("budget.json"), &Default::default());
            let handle =
                std::thread::spawn(move || watch::watch(&options, &cfg, Fleet::none(), &ledger, &budget, &stop_rx));
            return Controller { handle, stop, ends_by_itself: false };
        }
        let settings = Settings {
            torrent: swarm.torrent_file().to_string_lossy().into_owned(),
            params: Params {
                ratio: a.ratio,
                min_size: 0,
                max_time: Duration::from_secs(a.timeout),
                cooldown: Duration::from_secs(policy.cooldown),
            },
            interval: Duration::from_secs(1),
            placement: Placement::Fill,
            empty_helpers: policy.empty_helpers.into(),
            first_counts: None,
            once: false,
            dry_run: false,
            json: a.json,
        };
        // The run reads its policy from `settings`; the config only names the boards.
        let cfg = Config { boards, ..Config::default() };
        let handle = std::thread::spawn(move || run::run(&settings, &cfg, Fleet::none(), &ledger, None, &stop_rx));
        Controller { handle, stop, ends_by_itself: true }
    }

    /// Once every leecher has the file, `run` sees no leecher left and ends by itself
    /// (ratio_met): it gets a few rounds for that. Otherwise, or after those, or for `watch`
    /// (which never ends by itself), it is told to stop.
    fn stop(self, finished: bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while finished && self.ends_by_itself && !self.handle.is_finished() && Instant::now() < deadline {
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

/// The controller's `[[board]]`s: the lab's boards.
fn boards(swarm: &Swarm, a: &LabArgs) -> Vec<BoardConfig> {
    (swarm.boards.iter().enumerate())
        .map(|(i, b)| BoardConfig {
            name: format!("board{i}"),
            url: b.url.clone(),
            token_file: b.root.join("token"),
            token: b.token.clone(),
            cert_sha256: b.pin,
            plain_http: false,
            slots: 1,
            upload_kbps: a.spec.helper_kbps,
        })
        .collect()
}

/// `--stage`: `odseed stage` puts every torrent on every board before the leechers come; per
/// torrent, what it took (`None`: interrupted).
fn stage(a: &LabArgs, swarm: &Swarm, dir: &Path, stop: &mpsc::Receiver<()>) -> Result<Option<Vec<Staging>>, String> {
    let cfg = Config { boards: boards(swarm, a), ..Config::default() };
    let ledger = Ledger::at(&dir.join("ledger.json"));
    let uploaded =
        || -> u64 { swarm.boards.iter().filter_map(|b| b.client().usage().ok()).map(|u| u.uploaded_bytes).sum() };
    let mut staged = Vec::new();
    for (torrent, file) in swarm.torrents.iter().zip(&swarm.torrent_files) {
        let hash = torrent.meta.info_hash;
        let (origin_before, helpers_before, start) = (swarm.origin.upload(&hash).1, uploaded(), Instant::now());
        let args = StageArgs {
            torrent: file.to_string_lossy().into_owned(),
            max_time: a.timeout,
            interval: 1,
            json: a.json,
            ..StageArgs::default()
        };
        // The origin's rate to each board, summed twice a second while they stage.
        let sampling = std::sync::atomic::AtomicBool::new(true);
        let (ended, sent) = std::thread::scope(|s| {
            let sampler = s.spawn(|| {
                let mut sent = vec![0.0f64; swarm.boards.len()];
                let mut last = Instant::now();
                while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(500));
                    let dt = last.elapsed().as_secs_f64();
                    last = Instant::now();
                    for (address, rate) in swarm.origin.sending_to(&hash) {
                        let board =
                            (0..swarm.boards.len()).find(|i| odseed_lab::swarm::board_ip(*i).to_string() == address);
                        if let Some(i) = board {
                            sent[i] += rate as f64 * dt;
                        }
                    }
                }
                sent
            });
            let ended = crate::stage::stage(&args, &cfg, Fleet::none(), &ledger, None, stop);
            sampling.store(false, std::sync::atomic::Ordering::SeqCst);
            (ended, sampler.join().unwrap_or_default())
        });
        match ended {
            Ok(End::Normal(ExitReason::Staged)) => {}
            Ok(End::Interrupted) => return Ok(None),
            Ok(End::Normal(r)) => return Err(format!("staging {} ended: {}", torrent.meta.name, r.as_str())),
            Err(e) => return Err(format!("staging {}: {e}", torrent.meta.name)),
        }
        let size = torrent.meta.total_size.max(1) as f64;
        let origin_sent = swarm.origin.upload(&hash).1.saturating_sub(origin_before) as f64;
        let sampled: f64 = sent.iter().sum();
        let scale = if sampled > 0.0 { origin_sent / sampled } else { 0.0 };
        let from_origin =
            sent.iter().enumerate().map(|(i, b)| (format!("board{i}"), (b * scale / size).min(1.0))).collect();
        staged.push(Staging {
            seconds: start.elapsed().as_secs_f64(),
            helpers: swarm.boards.len(),
            origin_copies: origin_sent / size,
            from_helpers_copies: uploaded().saturating_sub(helpers_before) as f64 / size,
            from_origin,
        });
    }
    Ok(Some(staged))
}

/// What the lab saw while the leechers downloaded, per torrent.
struct Seen {
    /// Seconds from the leechers' start to each (wanting) leecher's completion.
    completion: Vec<Vec<f64>>,
    /// The most each helper reported uploaded of each torrent ([torrent][helper]).
    helper_uploaded: Vec<Vec<u64>>,
    /// Helpers engaged at the most at one time, per torrent.
    most_engaged: Vec<usize>,
    /// Each torrent's trace, a sample a second.
    traces: Vec<Trace>,
}

enum Watched {
    Finished(Seen),
    Interrupted,
}

/// One line a second until every leecher has its files, the timeout passes, or a signal.
fn watch(a: &LabArgs, swarm: &Swarm, started: Instant, stop: &mpsc::Receiver<()>) -> Result<Watched, String> {
    let k = swarm.torrents.len();
    let mut done: Vec<Vec<Option<f64>>> = swarm.demand.iter().map(|n| vec![None; *n]).collect();
    let traces = (swarm.torrents.iter().zip(&swarm.demand))
        .map(|(t, n)| {
            let leechers = swarm.leechers.iter().take(*n).map(|l| (l.name.clone(), l.kind, l.ip)).collect();
            Trace::new(leechers, t.meta.total_size, t.meta.total_size.div_ceil(t.meta.piece_length.max(1)) as usize)
        })
        .collect();
    let mut seen = Seen {
        completion: Vec::new(),
        helper_uploaded: vec![vec![0; swarm.boards.len()]; k],
        most_engaged: vec![0; k],
        traces,
    };
    loop {
        let t = started.elapsed().as_secs_f64();
        let mut progress: Vec<Vec<f64>> = Vec::new();
        let (mut engaged, mut helpers_bps, mut origin_bps) = (0, 0u64, 0u64);
        for (i, torrent) in swarm.torrents.iter().enumerate() {
            let hash = torrent.meta.info_hash;
            let samples: Vec<_> = swarm.leechers.iter().take(swarm.demand[i]).map(|l| l.sample(&hash)).collect();
            let mut on_it = 0;
            for (up, b) in seen.helper_uploaded[i].iter_mut().zip(&swarm.boards) {
                if let Ok(Some(s)) = b.client().get(&hash) {
                    on_it += 1;
                    helpers_bps += s.upload_bps;
                    *up = (*up).max(s.uploaded_bytes);
                }
            }
            engaged += on_it;
            seen.most_engaged[i] = seen.most_engaged[i].max(on_it);
            let origin = swarm.origin.stats(&hash);
            origin_bps += origin.rate_upload;
            let helper_bytes = seen.helper_uploaded[i].iter().sum::<u64>();
            let webseed = swarm.webseed.as_ref().map_or(0, |w| w.sent(&torrent.meta.name));
            let servers = Servers {
                bytes: origin.uploaded + helper_bytes + webseed,
                helper_bytes,
                engaged: on_it,
                origin_leechers: origin.leechers,
            };
            let trace = &mut seen.traces[i];
            trace.record(t, &samples, servers);
            let p: Vec<f64> = trace.done.iter().map(|d| d.last().copied().unwrap_or(0.0)).collect();
            for (d, p) in done[i].iter_mut().zip(&p) {
                if d.is_none() && *p >= 1.0 {
                    *d = Some(t);
                }
            }
            progress.push(p);
        }
        live(a.json, t, &progress, engaged, origin_bps, helpers_bps);
        let all: Option<Vec<Vec<f64>>> = done.iter().map(|d| d.iter().copied().collect()).collect();
        if let Some(completion) = all {
            seen.completion = completion;
            return Ok(Watched::Finished(seen));
        }
        if t > a.timeout as f64 {
            let stuck: Vec<String> = (swarm.wants())
                .filter(|(t, l)| l.percent_done(&t.meta.info_hash) < 1.0)
                .map(|(t, l)| format!("{} {}", t.meta.name, l.describe(&t.meta.info_hash)))
                .collect();
            return Err(format!("the leechers did not finish within {} s: {}", a.timeout, stuck.join("; ")));
        }
        // A crowd's reaction is measured in seconds: sampled twice as often.
        let period = Duration::from_millis(if a.crowd { 500 } else { 1000 });
        if stop.recv_timeout(period).is_ok() {
            return Ok(Watched::Interrupted);
        }
    }
}

/// A report per torrent, once every leecher's files are checked byte for byte against the
/// origin's. With several torrents each one's bound is the bound it would have alone (the origin's
/// upload is shared): a lower bound still, a looser one.
fn report(a: &LabArgs, swarm: &Swarm, seen: &Seen, staging: &[Staging]) -> Result<Vec<Report>, String> {
    let differ = swarm.mismatched()?;
    if !differ.is_empty() {
        return Err(format!("{} finished with a file that differs from the origin's", differ.join(", ")));
    }
    let spec = &a.spec;
    let mut reports = Vec::new();
    let origin_name = swarm.origin.describe();
    for (i, torrent) in swarm.torrents.iter().enumerate() {
        let (_, origin_uploaded) = swarm.origin.upload(&torrent.meta.info_hash);
        let staged = staging.get(i);
        // What the origin sent to stage is not what it sent the leechers.
        let origin_uploaded =
            origin_uploaded.saturating_sub(staged.map_or(0, |s| (s.origin_copies * spec.size as f64) as u64));
        let setup = Setup {
            size: spec.size,
            leechers: swarm.demand[i],
            helpers: seen.most_engaged[i],
            helpers_empty: if a.cold_helpers { seen.most_engaged[i] } else { 0 },
            origin_up: rate(spec.origin_kbps),
            helper_up: rate(spec.helper_kbps),
            leecher_down: rate(spec.leecher_kbps),
            leecher_up: rate(spec.leecher_up_kbps),
            webseed_up: spec.webseed_kbps.map_or(0.0, |k| f64::from(k) * 1000.0),
        };
        let helpers_uploaded = seen.helper_uploaded[i].iter().sum();
        let origin = &origin_name;
        let mut r =
            Report::new(seen.completion[i].clone(), origin_uploaded, helpers_uploaded, seen.most_engaged[i], &setup)
                .with_trace(&seen.traces[i]);
        if swarm.torrents.len() > 1 {
            r.torrent = Some(torrent.meta.name.clone());
        }
        r.origin = origin.clone();
        r.staging = staged.cloned();
        r.webseed_uploaded = swarm.webseed.as_ref().map(|w| w.sent(&torrent.meta.name));
        reports.push(r);
    }
    Ok(reports)
}

/// Writes the picture (`--svg`, else `$XDG_STATE_HOME/odseed/lab.svg`): a panel per torrent. With
/// `--json`, each torrent's trace is an event too (the benchmark draws its panels from them).
fn picture(a: &LabArgs, swarm: &Swarm, traces: &[Trace], reports: &[Report]) -> Option<PathBuf> {
    if a.json {
        for (i, t) in traces.iter().enumerate() {
            println!("{}", json!({"event": "trace", "torrent": swarm.torrents[i].meta.name, "trace": t}));
        }
    }
    let helpers = |r: &Report| svg::helpers(r.helpers_engaged);
    let panels: Vec<Panel> = (traces.iter().zip(reports).zip(&swarm.torrents))
        .map(|((trace, r), t)| Panel {
            title: match swarm.torrents.len() {
                1 if a.crowd => format!("a crowd of {}, {}", trace.leechers.len(), helpers(r)),
                1 => format!("{} leechers, {}", trace.leechers.len(), helpers(r)),
                _ => format!("{}: {} leechers, {}", t.meta.name, trace.leechers.len(), helpers(r)),
            },
            trace,
            bound: r.bound,
            floor: r.floor,
        })
        .collect();
    let path = a.svg.clone().unwrap_or_else(|| crate::xdg::state_dir().join("lab.svg"));
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| odseed_proto::fsutil::write_atomic(&path, svg::render(&panels).as_bytes(), 0o644));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            log::warn!("lab: cannot write the picture {}: {e}", path.display());
            None
        }
    }
}

fn rate(kbps: u32) -> Option<f64> {
    (kbps > 0).then(|| f64::from(kbps) * 1000.0)
}

/// One line a second: each leecher's progress (per torrent), helpers engaged, upload rates.
fn live(as_json: bool, t: f64, progress: &[Vec<f64>], engaged: usize, origin_bps: u64, helpers_bps: u64) {
    if as_json {
        let progress: Value = match progress {
            [one] => json!(one),
            many => json!(many),
        };
        let v = json!({"event": "lab", "elapsed": t, "progress": progress, "helpers": engaged, "origin_bps": origin_bps, "helpers_bps": helpers_bps});
        return println!("{v}");
    }
    let bars = |p: &[f64]| p.iter().map(|p| format!("{:3.0}%", p * 100.0)).collect::<Vec<_>>().join(" ");
    let leechers = match progress {
        [one] => format!("leechers {}", bars(one)),
        many => many.iter().enumerate().map(|(i, p)| format!("t{i} {}", bars(p))).collect::<Vec<_>>().join(" | "),
    };
    println!(
        "lab [{t:5.1}s] {leechers}  helpers {engaged}  upload: origin {} kB/s, helpers {} kB/s",
        origin_bps / 1000,
        helpers_bps / 1000
    );
}

/// odseed's name for the lab origin's client.
fn client_kind(k: odseed_lab::origin::OriginClient) -> ClientKind {
    use odseed_lab::origin::OriginClient as O;
    match k {
        O::Transmission => ClientKind::Transmission,
        O::Qbittorrent => ClientKind::Qbittorrent,
        O::Deluge => ClientKind::Deluge,
    }
}
