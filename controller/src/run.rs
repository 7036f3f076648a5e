//! `odseed run`: the loop observe -> decide -> act, thin on purpose (the decision is policy.rs).
//! Whatever ends the run (an exit condition, Ctrl-C, SIGTERM, an error) releases every helper it
//! engaged, through [`Guard`]; a panic aborts release builds, so main's panic hook releases them
//! from the ledger; a kill -9 leaves the ledger, which the next run or `odseed release` acts on.

use crate::budget::{Budget, Meter};
use crate::config::Config;
use crate::error::Error;
use crate::helpers::ec2::Fleet;
use crate::helpers::{board, Pool};
use crate::ledger::Ledger;
use crate::observe::{Observer, Survey};
use crate::output::Printer;
use crate::pace;
use crate::policy::{self, Action, Clock, Decision, ExitReason};
use crate::settings::Settings;
use crate::target::Target;
use odseed_proto::transmission::Client;
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
/// `budget` is the month's EC2 budget (None: not counted, as in the lab): a run starts no instance
/// once it is spent, and adds the instance time it used to it every round.
pub fn run(
    s: &Settings,
    cfg: &Config,
    fleet: Fleet,
    ledger: &Ledger,
    budget: Option<&Budget>,
    stop: &mpsc::Receiver<()>,
) -> Result<End, Error> {
    let printer = Printer { json: s.json };
    crate::release::leftovers(ledger, cfg, &printer);
    let local = cfg.transmission.as_ref().map(|t| {
        let creds = t.username.as_deref().map(|u| (u, t.password.as_deref().unwrap_or("")));
        Arc::new(Client::new(&t.url, creds, Duration::from_secs(10)))
    });
    let target = crate::target::resolve(&s.torrent, local.as_deref())?;
    let meta = &target.meta;
    log::info!(
        "helping {} ({}, {} bytes, {} tracker(s))",
        meta.name,
        meta.info_hash,
        meta.total_size,
        meta.trackers.len()
    );
    let observer = Observer {
        hash: meta.info_hash,
        size: meta.total_size,
        trackers: meta.trackers.clone(),
        survey: Survey::new(s.interval / 2),
        local: local.filter(|c| holds(c, &target)),
        override_counts: s.first_counts,
    };
    let start = Instant::now();
    let mut fleet = fleet;
    fleet.deadline = start.checked_add(s.params.max_time);
    let boards = cfg.boards.iter().map(board::helper).collect();
    let mut pool = Pool::new(boards, fleet, target, ledger.clone());
    pool.check_torrent();
    let mut round = Round {
        s,
        printer: &printer,
        signal: Signal::new(stop),
        observer,
        guard: Guard { pool, printer: &printer, released: false },
        ledger,
        start,
        last_change: start,
        first_round: true,
        warned_short: false,
        budget,
        meter: Meter::default(),
        leechers: 0,
    };
    let end = loop {
        if let Some(end) = round.once()? {
            break end;
        }
        if s.once {
            break End::Normal(ExitReason::Once);
        }
        if round.signal.seen() {
            break End::Interrupted;
        }
        let (observer, counted) = (&round.observer, round.leechers);
        let crowd = observer.local.is_some().then_some(|| observer.local_leechers().is_some_and(|n| n > counted));
        match pace::wait(stop, s.interval, pace::LOCAL_EVERY, crowd) {
            pace::Next::Stop => break End::Interrupted,
            pace::Next::Crowd => log::info!("the publisher's Transmission sees more leechers: a round now"),
            pace::Next::Round => {}
        }
    };
    let stranded = round.guard.finish();
    round.count_usage();
    if !stranded.is_empty() {
        return Err(Error::Stranded(stranded));
    }
    printer.exit(match &end {
        End::Normal(r) => r.as_str(),
        End::Interrupted => "interrupted",
    });
    Ok(end)
}

/// The publisher's client is observed only if it holds this torrent.
fn holds(client: &Client, target: &Target) -> bool {
    match client.torrent_get(Some(&[target.meta.info_hash]), &["hashString"]) {
        Ok(list) => !list.is_empty(),
        Err(e) => {
            log::warn!("{e}; counting from the trackers alone");
            false
        }
    }
}

/// The loop's state from one round to the next.
struct Round<'a> {
    s: &'a Settings,
    printer: &'a Printer,
    signal: Signal<'a>,
    observer: Observer,
    guard: Guard<'a>,
    ledger: &'a Ledger,
    start: Instant,
    last_change: Instant,
    first_round: bool,
    warned_short: bool,
    budget: Option<&'a Budget>,
    meter: Meter,
    /// The leechers the last round counted (a crowd is more than this).
    leechers: u32,
}

impl<'a> Round<'a> {
    /// Adds the instance time used since the last count to the month's EC2 budget; once it is
    /// spent (or cannot be counted), no more instances are started.
    fn count_usage(&mut self) {
        let Some(budget) = self.budget else { return };
        let pool = &mut self.guard.pool;
        if pool.fleet.pools.is_empty() {
            return;
        }
        let used = pool.usage().values().sum::<Duration>() + pool.running_time();
        let spent = match self.meter.tick(budget, used) {
            Ok(s) if s.spent() => format!("the EC2 budget for {} is spent", s.month),
            Ok(_) => return,
            Err(e) => format!("{e}"),
        };
        if pool.fleet.max_instances > 0 {
            log::warn!("{spent}: no more instances are started");
            pool.fleet.max_instances = 0;
        }
    }

    /// One round: refresh the helpers, observe, decide, act. `Some` when the run is over.
    fn once(&mut self) -> Result<Option<End>, Error> {
        for e in self.guard.pool.refresh() {
            self.printer.event(&e);
        }
        self.count_usage();
        // Without its ledger a run could leave a helper engaged after a crash, unrecorded: it stops
        // (the guard releases everything on the way out).
        if let Err(e) = self.ledger.entries() {
            return Err(Error::Ledger(format!("{e}. Every helper of this run is released and the run stops")));
        }
        let elapsed = self.start.elapsed();
        let counts = match self.observer.observe() {
            Ok(c) => c,
            Err(why) => {
                self.printer.blind(elapsed, &why);
                // `max_time` is a hard limit, seeing the swarm or not.
                return Ok((elapsed >= self.s.params.max_time).then_some(End::Normal(ExitReason::MaxTime)));
            }
        };
        self.leechers = counts.leechers;
        let view = self.guard.pool.view();
        let clock = Clock { first_round: self.first_round, elapsed, since_change: self.last_change.elapsed() };
        let d = policy::decide(&self.s.params, &counts, &view, &clock);
        let ours = view.seeding + view.downloading;
        self.printer.poll(elapsed, &counts, ours, &d, self.s.params.ratio, self.s.dry_run);
        self.first_round = false;
        match d.action {
            Action::Exit(reason) => return Ok(Some(End::Normal(reason))),
            Action::Engage(n) if !self.s.dry_run => self.engage(n, &d),
            Action::Release(n) if !self.s.dry_run => {
                for e in self.guard.pool.release(n as usize) {
                    self.printer.event(&e);
                }
                self.last_change = Instant::now();
            }
            _ => {}
        }
        Ok(None)
    }

    /// Engages `n` more helpers where the placement puts them; says once if they cannot all be had.
    fn engage(&mut self, n: u32, d: &Decision) {
        let placement = self.s.placement;
        let (free_boards, free_ec2) = (self.guard.pool.free_boards(), self.guard.pool.free_instances());
        let (boards, ec2) = policy::place(placement, n, d.needed, free_boards, free_ec2);
        if boards + ec2 < n && !self.warned_short {
            let why = if self.guard.pool.fleet.pools.is_empty() { "; no EC2 pool configured" } else { "" };
            log::warn!(
                "{n} more helper(s) wanted, {} can be placed (placement {placement:?}, {free_boards} free board(s), {free_ec2} startable instance(s){why})",
                boards + ec2,
            );
            self.warned_short = true;
        }
        for e in self.guard.pool.engage_boards(boards) {
            self.printer.event(&e);
        }
        for e in self.guard.pool.engage_instances(ec2, &|| self.signal.seen()) {
            self.printer.event(&e);
        }
        self.last_change = Instant::now();
    }
}

/// SIGINT or SIGTERM, as a message from main's signal thread; once seen (say while instances
/// boot), remembered for the loop.
pub(crate) struct Signal<'a> {
    stop: &'a mpsc::Receiver<()>,
    seen: Cell<bool>,
}

impl<'a> Signal<'a> {
    pub(crate) fn new(stop: &'a mpsc::Receiver<()>) -> Signal<'a> {
        Signal { stop, seen: Cell::new(false) }
    }

    pub(crate) fn seen(&self) -> bool {
        if !self.seen.get() && self.stop.try_recv().is_ok() {
            self.seen.set(true);
        }
        self.seen.get()
    }
}

/// Releases every helper when the run ends, on return or on error: [`Guard::finish`] on the normal
/// way out, its drop on any other.
struct Guard<'a> {
    pool: Pool,
    printer: &'a Printer,
    released: bool,
}

impl Guard<'_> {
    /// Releases everything now, once (the drop that follows does nothing); the instances that
    /// could not be stopped.
    fn finish(&mut self) -> Vec<String> {
        self.release();
        self.pool.stranded()
    }

    fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        for e in self.pool.release_all() {
            self.printer.event(&e);
        }
        self.printer.usage(self.pool.usage());
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.release();
    }
}
