//! `odseed watch`: keeps a publisher's whole catalogue healthy with one helper budget. Every
//! interval it lists the catalogue ([`crate::catalogue`]), counts every swarm with one batched
//! scrape per tracker ([`crate::observe::Survey`]), decides per torrent with `run`'s policy
//! ([`policy::decide`], [`policy::wanted`]), shares the boards and instances out
//! ([`crate::allocate`]) and engages or releases per (helper, torrent) ([`act`]).
//!
//! Every way out (a signal, `--once`, an error) releases everything, as `run` does; a kill -9
//! leaves the ledger, whose entries the next `watch`, `run` or `release` releases first.

mod act;

use crate::allocate::{self, Board, Demand, Plan};
use crate::budget::{Budget, Meter, Standing};
use crate::catalogue::{Catalogue, Item};
use crate::config::Config;
use crate::error::Error;
use crate::helpers::ec2::Fleet;
use crate::helpers::{Event, Kind, Pool};
use crate::ledger::{held_by_others, Ledger, Owner};
use crate::observe::{Subject, Survey};
use crate::output::Printer;
use crate::pace;
use crate::policy::{self, Clock, Counts, Params};
use crate::run::{End, Signal};
use odseed_proto::InfoHash;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a watch goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub interval: Duration,
    pub once: bool,
    pub dry_run: bool,
    pub json: bool,
}

/// One torrent being helped: its pool (helpers engaged for it) and when that last changed.
struct Helped {
    pool: Pool,
    item: Item,
    last_change: Instant,
}

/// What a round decided for one torrent, for the output.
pub struct TorrentRound<'a> {
    pub item: &'a Item,
    pub counts: Counts,
    pub decision: policy::Decision,
    pub wanted: u32,
    pub boards: Vec<String>,
    pub instances: u32,
}

/// What a round saw, for its line.
pub struct RoundSummary {
    pub elapsed: Duration,
    pub torrents: usize,
    pub blind: usize,
    pub needing_help: usize,
    pub boards_busy: usize,
    pub boards: usize,
    pub instances: u32,
    pub max_instances: u32,
    pub budget: Option<Standing>,
    pub dry_run: bool,
}

pub fn watch(
    o: &Options,
    cfg: &Config,
    fleet: Fleet,
    ledger: &Ledger,
    budget: &Budget,
    stop: &mpsc::Receiver<()>,
) -> Result<End, Error> {
    let printer = Printer { json: o.json };
    let catalogue = Catalogue::from_config(cfg).map_err(Error::Config)?;
    crate::release::leftovers(ledger, cfg, &printer);
    let params = Params {
        ratio: cfg.watch.ratio,
        min_size: cfg.policy.min_size,
        max_time: Duration::MAX,
        cooldown: Duration::from_secs(cfg.policy.cooldown),
    };
    let mut w = Watch {
        cfg,
        params,
        catalogue,
        survey: Survey::new(o.interval / 2),
        counted: HashMap::new(),
        guard: Guard { fleet, helped: BTreeMap::new(), printer: &printer, ledger, released: false },
        ledger,
        budget,
        meter: Meter::default(),
        printer: &printer,
        o,
        signal: Signal::new(stop),
        start: Instant::now(),
        broken: HashMap::new(),
        warned_budget: None,
        warned_budget_file: false,
    };
    log::info!(
        "watching {} every {} s: ratio {}, {} board(s), up to {} EC2 instance(s){}",
        w.catalogue.describe(),
        o.interval.as_secs(),
        w.params.ratio,
        cfg.boards.len(),
        w.guard.fleet.max_instances,
        if o.dry_run { " (dry run: nothing is engaged)" } else { "" }
    );
    let end = loop {
        if let Err(e) = w.round() {
            w.guard.release();
            w.count_usage();
            return Err(e);
        }
        if o.once {
            break End::Normal(policy::ExitReason::Once);
        }
        if w.signal.seen() {
            break End::Interrupted;
        }
        let (catalogue, counted) = (&w.catalogue, &w.counted);
        let crowd = catalogue
            .observes_local()
            .then_some(|| catalogue.local_leechers().iter().any(|(hash, n)| counted.get(hash).is_some_and(|c| n > c)));
        match pace::wait(stop, o.interval, pace::LOCAL_EVERY, crowd) {
            pace::Next::Stop => break End::Interrupted,
            pace::Next::Crowd => log::info!("the publisher's Transmission sees more leechers: a round now"),
            pace::Next::Round => {}
        }
    };
    w.guard.release();
    w.count_usage();
    let stranded = w.guard.stranded();
    if !stranded.is_empty() {
        return Err(Error::Stranded(stranded));
    }
    printer.exit(match &end {
        End::Normal(r) => r.as_str(),
        End::Interrupted => "interrupted",
    });
    Ok(end)
}

struct Watch<'a> {
    cfg: &'a Config,
    params: Params,
    catalogue: Catalogue,
    survey: Survey,
    /// The leechers each torrent had at the last round (a crowd is more than this).
    counted: HashMap<InfoHash, u32>,
    guard: Guard<'a>,
    ledger: &'a Ledger,
    budget: &'a Budget,
    meter: Meter,
    printer: &'a Printer,
    o: &'a Options,
    signal: Signal<'a>,
    start: Instant,
    /// Torrents whose metainfo could not be read: not helped until then (said once).
    broken: HashMap<InfoHash, Instant>,
    /// The month whose spent budget was said.
    warned_budget: Option<String>,
    /// Whether the budget file's failure was said.
    warned_budget_file: bool,
}

impl Watch<'_> {
    /// One round: refresh, count the budget, list, observe, decide, allocate, act.
    fn round(&mut self) -> Result<(), Error> {
        for e in self.guard.fleet.refresh() {
            self.printer.event(&e);
        }
        if !self.guard.fleet.stranded.is_empty() {
            for e in self.guard.fleet.stop_stranded(self.ledger, &Owner::me()) {
                self.printer.event(&e);
            }
        }
        let fleet = &mut self.guard.fleet;
        for h in self.guard.helped.values_mut() {
            for e in with_fleet(fleet, &mut h.pool, Pool::refresh_helpers) {
                self.printer.event_on(&e, &h.item.hash, &h.item.name);
            }
        }
        // Without its ledger a watch could leave a helper engaged after a crash, unrecorded.
        let entries = self
            .ledger
            .entries()
            .map_err(|e| Error::Ledger(format!("{e}. Every helper of this watch is released and it stops")))?;
        let standing = self.count_usage();
        let max_instances = self.max_instances(standing.as_ref());
        let elapsed = self.start.elapsed();
        let listing = match self.catalogue.list() {
            Ok(l) => l,
            Err(why) => {
                // Blind: helpers stay as they are, but a spent budget stops the instances all the same.
                self.printer.blind(elapsed, &why);
                if max_instances == 0 && !self.o.dry_run {
                    let plan = Plan { boards: self.current().boards, instances: Default::default() };
                    self.act(&plan, &HashMap::new());
                }
                return Ok(());
            }
        };
        let subjects: Vec<Subject> = (listing.items.iter())
            .map(|i| Subject {
                hash: i.hash,
                size: i.size,
                trackers: &i.trackers,
                local: listing.local.get(&i.hash).map(Ok),
            })
            .collect();
        let counts = self.survey.counts(&subjects);
        self.counted = (listing.items.iter().zip(&counts))
            .filter_map(|(i, c)| Some((i.hash, c.as_ref().ok()?.leechers)))
            .collect();
        let mut demands = Vec::new();
        let mut decided = Vec::new();
        let mut blind = 0;
        for (item, c) in listing.items.iter().zip(counts) {
            let helped = self.guard.helped.get(&item.hash);
            let view = helped.map(|h| h.pool.engaged()).unwrap_or_default();
            let since_change = helped.map_or(Duration::MAX, |h| h.last_change.elapsed());
            let c = match c {
                Ok(c) => c,
                Err(why) => {
                    // Blind: its helpers stay as they are.
                    blind += 1;
                    log::debug!("{}: {why}", item.name);
                    demands.push(Demand { hash: item.hash, leechers: 0, wanted: view.engaged });
                    continue;
                }
            };
            let h = policy::Helpers { capacity: u32::MAX, ..view };
            let clock = Clock { first_round: true, elapsed: Duration::ZERO, since_change };
            let d = policy::decide(&self.params, &c, &h, &clock);
            let mut wanted = policy::wanted(&d, view.engaged, since_change, self.params.cooldown);
            if self.broken.get(&item.hash).is_some_and(|retry| Instant::now() < *retry) {
                wanted = 0;
            }
            demands.push(Demand { hash: item.hash, leechers: d.leechers, wanted });
            decided.push((item, c, d, wanted));
        }
        // A torrent gone from the catalogue keeps its helpers through the cooldown, then wants none.
        for (hash, h) in &self.guard.helped {
            if !listing.items.iter().any(|i| i.hash == *hash) {
                let keep = h.last_change.elapsed() < self.params.cooldown;
                let wanted = if keep { h.pool.engaged().engaged } else { 0 };
                demands.push(Demand { hash: *hash, leechers: 0, wanted });
            }
        }
        let boards = self.boards(&entries);
        let plan = allocate::allocate(&demands, &boards, max_instances, &self.current());
        let summary = RoundSummary {
            elapsed,
            torrents: listing.items.len(),
            blind,
            needing_help: demands.iter().filter(|d| d.wanted > 0).count(),
            boards_busy: plan.boards.iter().map(|(b, _)| b).collect::<std::collections::BTreeSet<_>>().len(),
            boards: self.cfg.boards.len(),
            instances: plan.instances.values().sum(),
            max_instances,
            budget: standing,
            dry_run: self.o.dry_run,
        };
        self.printer.round(&summary);
        for (item, c, d, wanted) in decided {
            let boards: Vec<String> =
                (plan.boards.iter()).filter(|(_, h)| *h == item.hash).map(|(b, _)| b.clone()).collect();
            let instances = plan.instances.get(&item.hash).copied().unwrap_or(0);
            if wanted > 0 || !boards.is_empty() || self.guard.helped.contains_key(&item.hash) {
                let t = TorrentRound { item, counts: c, decision: d, wanted, boards, instances };
                self.printer.torrent(&t);
            }
        }
        if !self.o.dry_run {
            let items: HashMap<InfoHash, &Item> = listing.items.iter().map(|i| (i.hash, i)).collect();
            self.act(&plan, &items);
        }
        Ok(())
    }

    /// The boards to share out: each with the slots that other live runs and its own lost
    /// engagements leave it, never given a torrent another run seeds on it or one it cannot seed,
    /// and given nothing new while it rests after a failure.
    fn boards(&self, entries: &[crate::ledger::Entry]) -> Vec<Board> {
        let me = Owner::me();
        let now = Instant::now();
        self.cfg
            .boards
            .iter()
            .map(|b| {
                let here = || {
                    (self.guard.helped.values())
                        .flat_map(|h| h.pool.helpers.iter().map(move |x| (h, x)))
                        .filter(|(_, x)| x.kind == Kind::Board && x.name == b.name)
                };
                let theirs = held_by_others(entries, &b.name, &me);
                let lost = here().filter(|(_, x)| x.engaged && x.lost).count() as u32;
                let mut skip = theirs.clone();
                skip.extend(here().filter(|(_, x)| x.cannot_seed.is_some()).map(|(h, _)| h.item.hash));
                Board {
                    name: b.name.clone(),
                    slots: b.slots.saturating_sub(theirs.len() as u32 + lost),
                    upload_kbps: b.upload_kbps,
                    skip,
                    resting: here().any(|(_, x)| x.resting(now)),
                }
            })
            .collect()
    }

    /// Who seeds what now (helpers that answer; a lost one is replaced like in `run`).
    fn current(&self) -> Plan {
        let mut plan = Plan::default();
        for (hash, h) in &self.guard.helped {
            for x in h.pool.helpers.iter().filter(|x| x.engaged && !x.lost) {
                match x.kind {
                    Kind::Board => plan.boards.push((x.name.clone(), *hash)),
                    Kind::Instance { .. } => *plan.instances.entry(*hash).or_insert(0) += 1,
                }
            }
        }
        plan
    }

    /// The instances the allocation may use: `max_instances` less those that could not be
    /// stopped, and none once the month's budget is spent (said once a month).
    fn max_instances(&mut self, standing: Option<&Standing>) -> u32 {
        let fleet = &self.guard.fleet;
        if fleet.pools.is_empty() {
            return 0;
        }
        let max = fleet.max_instances.saturating_sub(fleet.stranded.len() as u32);
        match standing {
            Some(s) if s.spent() => {
                if self.warned_budget.as_deref() != Some(s.month.as_str()) {
                    log::warn!(
                        "the EC2 budget for {} is spent ({:.1} instance-hours used): no instance until next month",
                        s.month,
                        s.used.as_secs_f64() / 3600.0
                    );
                    self.warned_budget = Some(s.month.clone());
                }
                0
            }
            Some(_) => max,
            // The budget file could not be read or written: no instance may be started uncounted.
            None if self.cfg.budget.instance_hours_per_month.is_some() => 0,
            None => max,
        }
    }

    /// Adds the instance time used since the last count to the month's budget; where it stands
    /// (`None` if its file cannot be used: said, and no instance is started).
    fn count_usage(&mut self) -> Option<Standing> {
        let running: Duration = self.guard.helped.values().map(|h| h.pool.running_time()).sum();
        let fleet = &self.guard.fleet;
        let used = fleet.usage.values().sum::<Duration>() + running + fleet.stranded_time();
        match self.meter.tick(self.budget, used) {
            Ok(s) => {
                self.warned_budget_file = false;
                Some(s)
            }
            Err(e) => {
                if !std::mem::replace(&mut self.warned_budget_file, true) {
                    self.printer.event(&Event::Fault(e.to_string()));
                }
                None
            }
        }
    }
}

/// Runs `f` on `pool` with the watch's one fleet in it: the EC2 pools, their limits, the instance
/// time used and the instances that could not be stopped are shared by every torrent's pool.
fn with_fleet<T>(fleet: &mut Fleet, pool: &mut Pool, f: impl FnOnce(&mut Pool) -> T) -> T {
    std::mem::swap(fleet, &mut pool.fleet);
    let out = f(pool);
    std::mem::swap(fleet, &mut pool.fleet);
    out
}

/// Releases every helper of every torrent when the watch ends, on return or on error.
struct Guard<'a> {
    fleet: Fleet,
    helped: BTreeMap<InfoHash, Helped>,
    printer: &'a Printer,
    ledger: &'a Ledger,
    released: bool,
}

impl Guard<'_> {
    fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        for h in self.helped.values_mut() {
            for e in with_fleet(&mut self.fleet, &mut h.pool, Pool::release_all) {
                self.printer.event_on(&e, &h.item.hash, &h.item.name);
            }
        }
        self.helped.clear();
        for e in self.fleet.stop_stranded(self.ledger, &Owner::me()) {
            self.printer.event(&e);
        }
        self.printer.usage(&self.fleet.usage);
    }

    fn stranded(&self) -> Vec<String> {
        self.fleet.stranded.iter().map(|s| s.id.clone()).collect()
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.release();
    }
}
