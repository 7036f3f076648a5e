//! `odseed stage`: puts a torrent's content on helpers before a crowd needs them. A helper that
//! holds a torrent whole can be engaged while the origin is its only seeder; one that does not
//! cannot help then ([`crate::policy::worth_engaging`]). Staging engages helpers that do not hold it
//! (those holding part of it first), capped in download through the agent API so that the origin
//! keeps serving its own leechers, and releases each one as soon as it holds the whole content
//! (its agent keeps it, released, until it needs the room). Helpers staged together trade pieces
//! among themselves, so the origin sends about one copy, not one a helper. EC2 instances are
//! started to stage when boards are too few, counted in the budget like any, and stopped when done
//! (their disks keep the content). Every way out releases everything and resets the caps.

use crate::budget::{Budget, Meter};
use crate::catalogue::Item;
use crate::config::Config;
use crate::error::Error;
use crate::guard::{End, Guard, Helped, Signal};
use crate::helpers::ec2::Fleet;
use crate::helpers::{board, Event, Kind, Pool};
use crate::ledger::Ledger;
use crate::output::Printer;
use crate::policy::ExitReason;
use odseed_proto::wire::{Limits, TorrentState};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `odseed stage`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct StageArgs {
    pub torrent: String,
    /// Helpers to stage (default: every board that does not hold it whole).
    pub helpers: Option<u32>,
    /// Each helper's download cap in kB/s while it stages (0: none).
    pub down_kbps: u32,
    /// Release everything and stop after this long.
    pub max_time: u64,
    /// Seconds between checks.
    pub interval: u64,
    pub json: bool,
    pub config: Option<PathBuf>,
}

impl Default for StageArgs {
    fn default() -> Self {
        StageArgs {
            torrent: String::new(),
            helpers: None,
            down_kbps: 0,
            max_time: 7200,
            interval: 2,
            json: false,
            config: None,
        }
    }
}

/// Stages `a.torrent`; how it ended (`staged`: every helper holds it whole).
pub fn stage(
    a: &StageArgs,
    cfg: &Config,
    fleet: Fleet,
    ledger: &Ledger,
    budget: Option<&Budget>,
    stop: &mpsc::Receiver<()>,
) -> Result<End, Error> {
    let printer = Printer { json: a.json };
    crate::release::leftovers(ledger, cfg, &printer);
    let client = crate::publisher::from_config(cfg);
    let target = crate::target::resolve(&a.torrent, client.as_deref())?;
    let (hash, name) = (target.meta.info_hash, target.meta.name.clone());
    let item = Item {
        hash,
        name: name.clone(),
        size: target.meta.total_size,
        trackers: target.meta.trackers.clone(),
        file: None,
    };

    // What every board holds of it now: whole ones are done already, part ones go first.
    let agents: Vec<_> = cfg.boards.iter().map(|b| board::client(b, &*fleet.connect)).collect();
    let holds = board::holdings(&agents);
    let mut candidates: Vec<(String, f64)> = Vec::new();
    for (b, held) in cfg.boards.iter().zip(&holds) {
        match held.as_ref().map(|h| h.get(&hash).copied().unwrap_or(0.0)) {
            Some(f) if f >= 1.0 => log::info!("{}: already holds {name} whole", b.name),
            f => candidates.push((b.name.clone(), f.unwrap_or(0.0))),
        }
    }
    candidates.sort_by(|x, y| y.1.total_cmp(&x.1));
    let wanted = a.helpers.unwrap_or(candidates.len() as u32);
    log::info!(
        "staging {name} ({hash}, {} bytes) on {wanted} helper(s){}",
        target.meta.total_size,
        match a.down_kbps {
            0 => String::new(),
            k => format!(", each downloading at most {k} kB/s"),
        }
    );

    let boards = cfg.boards.iter().map(|b| board::helper(b, &*fleet.connect)).collect();
    let mut pool = Pool::new(boards, target, ledger.clone());
    pool.check_torrent(&fleet);
    let mut guard = Guard::new(fleet, &printer, ledger, false);
    guard.fleet.deadline = Instant::now().checked_add(Duration::from_secs(a.max_time));
    guard.fleet.download_kbps = a.down_kbps;
    let signal = Signal::new(stop);
    let mut meter = Meter::default();
    let cap = |h: &crate::helpers::Helper, down: u32| {
        if a.down_kbps == 0 {
            return;
        }
        let result = h.client.limits().and_then(|l| h.client.set_limits(&Limits { download_kbps: down, ..l }));
        if let Err(e) = result {
            log::warn!("{}: cannot set its download cap to {down} kB/s: {e}", h.label());
        }
    };

    // Boards, then instances for the rest. The boards capped here, to lift their caps at the end
    // (and only theirs: another run may have capped a board for its own staging).
    let mut capped: Vec<String> = Vec::new();
    let mut events = Vec::new();
    // Down the list until `wanted` are engaged: one that cannot be is replaced by the next board,
    // not by an instance.
    for (b, _) in &candidates {
        if signal.seen() || pool.helpers.iter().filter(|h| h.engaged()).count() as u32 >= wanted {
            break;
        }
        if let Some(h) = pool.helpers.iter().find(|h| h.name == *b) {
            cap(h, a.down_kbps);
            capped.push(b.clone());
        }
        let got = pool.engage_board_named(&guard.fleet, b);
        if !got.iter().any(|e| matches!(e, Event::Engaged(_))) {
            if let Some(h) = pool.helpers.iter().find(|h| h.name == *b) {
                cap(h, 0);
                capped.retain(|c| c != b);
            }
        }
        events.extend(got);
    }
    let engaged = pool.helpers.iter().filter(|h| h.engaged()).count() as u32;
    let more = wanted.saturating_sub(engaged);
    if more > 0 && !guard.fleet.pools.is_empty() && !signal.seen() {
        let spent = budget.and_then(|b| meter.tick(b, guard.totals()).ok()).is_some_and(|s| s.spent());
        if spent {
            events.push(Event::Fault("the month's EC2 budget is spent: no instance is started to stage".into()));
        } else {
            events.extend(pool.engage_instances(&mut guard.fleet, more, &|| signal.seen()));
        }
    } else if more > 0 {
        log::warn!("{more} helper(s) wanted beyond the boards that can stage {name}, and no EC2 pool is configured");
    }
    for e in &events {
        printer.helper(e, &item, false);
    }
    guard.helped.insert(hash, Helped { pool, item, last_change: Instant::now() });

    let start = Instant::now();
    let mut staged = 0u32;
    let end = loop {
        let Some(h) = guard.helped.get_mut(&hash) else { break End::Normal(ExitReason::Staged) };
        let events = h.pool.refresh_helpers(&mut guard.fleet);
        for e in &events {
            printer.helper(e, &h.item, false);
        }
        // Whole: its cap is lifted and it is released at once.
        let done: Vec<String> = (h.pool.helpers.iter())
            .filter(|x| x.engaged() && x.torrent_state() == Some(TorrentState::Seeding))
            .map(|x| x.name.clone())
            .collect();
        for name in &done {
            if let Some(x) = h.pool.helpers.iter().find(|x| x.name == *name) {
                cap(x, 0);
                capped.retain(|c| c != name);
            }
            printer.staged(name, (&hash, &h.item.name), start.elapsed());
            staged += 1;
            for e in h.pool.release_helper(&mut guard.fleet, name) {
                printer.helper(&e, &h.item, false);
            }
        }
        if !h.pool.busy() {
            break End::Normal(ExitReason::Staged);
        }
        let spent = budget.is_some_and(|b| meter.tick(b, guard.totals()).is_ok_and(|s| s.spent()));
        let h = guard.helped.get_mut(&hash).expect("looked up above");
        if spent && h.pool.instances() > 0 {
            printer.event(&Event::Fault("the month's EC2 budget is spent: staging instances are stopped".into()));
            let n = h.pool.instances();
            for e in h.pool.release_instances_only(&mut guard.fleet, n) {
                printer.helper(&e, &h.item, false);
            }
        }
        if start.elapsed() >= Duration::from_secs(a.max_time) {
            break End::Normal(ExitReason::MaxTime);
        }
        if signal.seen() || stop.recv_timeout(Duration::from_secs(a.interval)).is_ok() {
            break End::Interrupted;
        }
    };
    // Whatever did not finish: caps lifted (on every board capped here, engaged or set aside by a
    // failure; on every instance still running), released.
    if let Some(h) = guard.helped.get(&hash) {
        let instance = |x: &&crate::helpers::Helper| matches!(x.kind, Kind::Instance { .. }) && x.engaged();
        for x in h.pool.helpers.iter().filter(|x| capped.contains(&x.name) || instance(x)) {
            cap(x, 0);
        }
    }
    guard.release();
    if let Some(b) = budget {
        let _ = meter.tick(b, guard.totals());
    }
    let stranded = guard.stranded();
    if !stranded.is_empty() {
        return Err(Error::Stranded(stranded));
    }
    if staged == 0 && matches!(end, End::Normal(ExitReason::Staged)) && wanted > 0 && !candidates.is_empty() {
        return Err(Error::Stage(format!("no helper could stage {name}: none was engaged, or each one failed")));
    }
    if staged < wanted.min(candidates.len() as u32) && matches!(end, End::Normal(ExitReason::Staged)) {
        log::warn!("{staged} of the {wanted} helper(s) wanted hold {name} whole");
    }
    printer.exit(end.as_str());
    Ok(end)
}
