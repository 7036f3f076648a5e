//! `odseed run`: the loop observe -> decide -> act, thin on purpose (the decision is policy.rs).
//! Whatever ends the run (an exit condition, Ctrl-C, SIGTERM, an error, a panic) releases every
//! helper it engaged; a kill -9 leaves the ledger, which the next run or `odseed release` acts on.

use crate::cli::RunArgs;
use crate::config::Config;
use crate::helpers::ec2::Fleet;
use crate::helpers::{board, Pool};
use crate::ledger::Ledger;
use crate::observe::Observer;
use crate::output::Printer;
use crate::policy::{self, Action, Clock, ExitReason, Params};
use crate::tracker::Scraper;
use odseed_agent::transmission::Client;
use std::cell::Cell;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a run ended.
pub enum End {
    Normal(ExitReason),
    Interrupted,
}

/// `fleet` is `[ec2]` with its credentials (main.rs builds it: a problem there is a config error).
pub fn run(
    args: &RunArgs,
    cfg: &Config,
    fleet: Fleet,
    ledger: &Ledger,
    stop: &mpsc::Receiver<()>,
) -> Result<End, String> {
    let printer = Printer { json: args.json };
    // A signal seen while instances boot is remembered for the loop.
    let signalled = Cell::new(false);
    let interrupted = || {
        if !signalled.get() && stop.try_recv().is_ok() {
            signalled.set(true);
        }
        signalled.get()
    };
    crate::release::leftovers(ledger, cfg, &printer);

    let local = cfg.transmission.as_ref().map(|t| {
        let creds = t.username.as_deref().map(|u| (u, t.password.as_deref().unwrap_or("")));
        Arc::new(Client::new(&t.url, creds, Duration::from_secs(10)))
    });
    let target = crate::target::resolve(&args.torrent, local.as_deref())?;
    let hash = target.meta.info_hash;
    log::info!(
        "helping {} ({hash}, {} bytes, {} tracker(s))",
        target.meta.name,
        target.meta.total_size,
        target.meta.trackers.len()
    );
    // The publisher's client is observed only if it holds this torrent.
    let local = local.filter(|c| match c.torrent_get(Some(&[hash]), &["hashString"]) {
        Ok(list) => !list.is_empty(),
        Err(e) => {
            log::warn!("{e}; counting from the trackers alone");
            false
        }
    });

    let p = &cfg.policy;
    let params = Params {
        ratio: args.ratio,
        min_size: args.min_size.unwrap_or(p.min_size),
        max_time: Duration::from_secs(args.max_time.unwrap_or(p.max_time)),
        cooldown: Duration::from_secs(p.cooldown),
    };
    let interval = Duration::from_secs(args.interval.unwrap_or(p.interval));
    let placement: policy::Placement = p.placement.into();
    let mut observer = Observer {
        hash,
        size: target.meta.total_size,
        trackers: target.meta.trackers.clone(),
        scraper: Scraper::default(),
        local,
        override_counts: args.counts,
    };
    let boards = cfg.boards.iter().map(board::helper).collect();
    let ec2_configured = !fleet.pools.is_empty();
    let start = Instant::now();
    let mut fleet = fleet;
    fleet.deadline = start.checked_add(params.max_time);
    let mut pool = Guard(Pool::new(boards, fleet, target, ledger.clone()), &printer, false);

    let mut last_change = start;
    let mut first_round = true;
    let mut warned_short = false;
    let end = loop {
        for e in pool.0.refresh() {
            printer.event(&e);
        }
        // Without its ledger a run could leave a helper engaged after a crash, unrecorded: it stops
        // (the guard releases everything on the way out).
        if let Err(e) = ledger.entries() {
            return Err(format!("{e}. Every helper of this run is released and the run stops"));
        }
        let elapsed = start.elapsed();
        match observer.observe() {
            Err(why) => {
                printer.blind(elapsed, &why);
                // `max_time` is a hard limit, seeing the swarm or not.
                if elapsed >= params.max_time {
                    break End::Normal(ExitReason::MaxTime);
                }
            }
            Ok(counts) => {
                let view = pool.0.view();
                let clock = Clock { first_round, elapsed, since_change: last_change.elapsed() };
                let d = policy::decide(&params, &counts, &view, &clock);
                printer.poll(elapsed, &counts, view.seeding + view.downloading, &d, params.ratio, args.dry_run);
                first_round = false;
                match d.action {
                    Action::Exit(reason) => break End::Normal(reason),
                    Action::Engage(n) if !args.dry_run => {
                        let (free_boards, free_ec2) = (pool.0.free_boards(), pool.0.free_instances());
                        let (boards, ec2) = policy::place(placement, n, d.needed, free_boards, free_ec2);
                        if boards + ec2 < n && !warned_short {
                            let why = if ec2_configured { "" } else { "; no EC2 pool configured" };
                            log::warn!(
                                "{n} more helper(s) wanted, {} can be placed (placement {placement:?}, {free_boards} free board(s), {free_ec2} startable instance(s){why})",
                                boards + ec2,
                            );
                            warned_short = true;
                        }
                        for e in pool.0.engage_boards(boards) {
                            printer.event(&e);
                        }
                        for e in pool.0.engage_instances(ec2, &interrupted) {
                            printer.event(&e);
                        }
                        last_change = Instant::now();
                    }
                    Action::Release(n) if !args.dry_run => {
                        for e in pool.0.release(n as usize) {
                            printer.event(&e);
                        }
                        last_change = Instant::now();
                    }
                    _ => {}
                }
            }
        }
        if args.once {
            break End::Normal(ExitReason::Once);
        }
        if interrupted() || stop.recv_timeout(interval).is_ok() {
            break End::Interrupted;
        }
    };
    let stranded = pool.finish();
    if !stranded.is_empty() {
        return Err(format!(
            "instance(s) {} could not be stopped; they stay in the ledger: run `odseed release`",
            stranded.join(", ")
        ));
    }
    printer.exit(match &end {
        End::Normal(r) => r.as_str(),
        End::Interrupted => "interrupted",
    });
    Ok(end)
}

/// Releases every helper when the run ends, however it ends (return, error or unwinding).
struct Guard<'a>(Pool, &'a Printer, bool);

impl Guard<'_> {
    /// Releases everything now, once (the drop that follows does nothing); the instances that
    /// could not be stopped.
    fn finish(mut self) -> Vec<String> {
        self.release();
        self.0.stranded()
    }

    fn release(&mut self) {
        if std::mem::replace(&mut self.2, true) {
            return;
        }
        for e in self.0.release_all() {
            self.1.event(&e);
        }
        self.1.usage(self.0.usage());
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.release();
    }
}
