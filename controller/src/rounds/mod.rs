//! The loop `odseed run` and `odseed watch` share. Every interval a round lists the torrents it
//! keeps ([`Catalogue`]: `watch`'s catalogue, or `run`'s one torrent), counts every swarm with one
//! batched scrape per tracker ([`Survey`]), decides per torrent ([`policy::decide`]), shares the
//! boards and instances out ([`allocate`]) and engages or releases per (helper, torrent) ([`act`]).
//! Between rounds it waits for the interval, a crowd the publisher's client sees ([`pace`]), or a
//! signal. `run` ends when its torrent's policy says so (its exit conditions); `watch` at
//! `max_time` if it has one. Every way out releases everything ([`Guard`]).
//!
//! One budget rule for both: once the month's EC2 budget is spent (or its file cannot be used),
//! the allocation gets no instance, so running instances are released and none is started.

mod act;
mod money;
mod stage;
#[cfg(test)]
mod tests;

use crate::allocate::{self, Board, Demand, Plan, Supply};
use crate::budget::{Budget, Meter, Standing};
use crate::catalogue::{Catalogue, Item, Listing};
use crate::config::Config;
use crate::error::Error;
use crate::guard::{End, Guard, Signal};
use crate::helpers::agent::Agent;
use crate::helpers::ec2::Fleet;
use crate::helpers::{board, Kind};
use crate::ledger::{held_by_others, Entry, Ledger, Owner};
use crate::observe::{Count, Subject, Survey};
use crate::output::{Money, Printer, RoundSummary, TorrentRound};
use crate::pace;
use crate::policy::{self, Action, Clock, Counts, Decision, EmptyHelpers, ExitReason, Params, Placement};
use odseed_proto::InfoHash;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use stage::StageOptions;

/// How the loop goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `run`: one torrent, ends on its exit conditions, a `poll` line a round. `watch`: a
    /// catalogue, ends at `max_time` or a signal, a `round` line and a line per torrent helped.
    pub run: bool,
    pub params: Params,
    pub placement: Placement,
    /// When helpers that do not hold a torrent whole are engaged for it.
    pub empty_helpers: EmptyHelpers,
    pub interval: Duration,
    /// SEEDERS LEECHERS instead of the first round's counts (`run`, for testing).
    pub first_counts: Option<(u32, u32)>,
    pub once: bool,
    pub dry_run: bool,
    pub json: bool,
    /// `watch`: a Prometheus textfile written each round.
    pub metrics_file: Option<std::path::PathBuf>,
    /// `watch`: boards to stage every torrent on while its swarm is quiet.
    pub stage: StageOptions,
}

/// Keeps `catalogue` healthy until the end. `fleet` is `[ec2]` with its credentials; `budget` the
/// month's EC2 budget (None: not counted, as in the lab).
pub fn keep(
    o: &Options,
    cfg: &Config,
    catalogue: Catalogue,
    mut fleet: Fleet,
    ledger: &Ledger,
    budget: Option<&Budget>,
    stop: &mpsc::Receiver<()>,
) -> Result<End, Error> {
    let printer = Printer { json: o.json };
    crate::release::leftovers(ledger, cfg, &printer);
    fleet.deadline = Instant::now().checked_add(o.params.max_time);
    let survey = Box::new(Survey::new(o.interval / 2));
    let mut l = Loop::new(o, cfg, catalogue, survey, Guard::new(fleet, &printer, ledger, !o.run), budget, stop);
    l.prepare();
    let end = loop {
        match l.round() {
            Ok(Some(end)) => break end,
            Ok(None) => {}
            Err(e) => {
                l.end_staging();
                l.guard.release();
                l.count_usage();
                return Err(e);
            }
        }
        if o.once {
            break End::Normal(ExitReason::Once);
        }
        if l.signal.seen() {
            break End::Interrupted;
        }
        // `run`'s policy ends it at max_time; `watch` has no policy that ends.
        if !o.run && l.start.elapsed() >= o.params.max_time {
            break End::Normal(ExitReason::MaxTime);
        }
        let (catalogue, counted) = (&l.catalogue, &l.counted);
        let crowd = catalogue
            .observes_local()
            .then_some(|| catalogue.local_leechers().iter().any(|(hash, n)| counted.get(hash).is_some_and(|c| n > c)));
        let interval = o.interval.min(o.params.max_time.saturating_sub(l.start.elapsed()));
        match pace::wait(stop, interval, pace::LOCAL_EVERY, crowd) {
            pace::Next::Stop => break End::Interrupted,
            pace::Next::Crowd => log::info!("the publisher's client sees more leechers: a round now"),
            pace::Next::Round => {}
        }
    };
    l.end_staging();
    l.guard.release();
    l.count_usage();
    let stranded = l.guard.stranded();
    if !stranded.is_empty() {
        return Err(Error::Stranded(stranded));
    }
    printer.exit(end.as_str());
    Ok(end)
}

/// What was said once, not every round.
#[derive(Default)]
struct Warned {
    /// The month whose spent budget was said.
    budget: Option<String>,
    budget_file: bool,
    /// That fewer helpers could be placed than wanted.
    short: bool,
    /// That the metrics file could not be written.
    metrics: bool,
}

/// The loop's state from one round to the next.
struct Loop<'a> {
    o: &'a Options,
    cfg: &'a Config,
    catalogue: Catalogue,
    survey: Box<dyn Count>,
    guard: Guard<'a>,
    ledger: &'a Ledger,
    budget: Option<&'a Budget>,
    meter: Meter,
    printer: &'a Printer,
    signal: Signal<'a>,
    start: Instant,
    /// The leechers each torrent had at the last round (a crowd is more than this).
    counted: HashMap<InfoHash, u32>,
    /// Torrents whose metainfo could not be read: not helped until then (said once).
    broken: HashMap<InfoHash, Instant>,
    first_round: bool,
    warned: Warned,
    /// Every configured board's agent, asked each round what it holds.
    board_agents: Vec<Box<dyn Agent>>,
    /// What each board holds of each torrent (0.0 to 1.0), as it said this round (None: it did not).
    holdings: HashMap<String, Option<BTreeMap<InfoHash, f64>>>,
    /// Boards staging a torrent (`[watch] stage`).
    staging: Vec<stage::Staging>,
}

/// One torrent's round: its counts (or why there are none), the policy's decision, what it wants.
struct Decided<'i> {
    item: &'i Item,
    /// Its counts and the policy's decision, or why it was not counted (blind).
    seen: Result<(Counts, Decision), String>,
    /// Helpers it wants engaged.
    wanted: u32,
    /// Engaged helpers of ours that seed or download.
    ours: u32,
}

impl<'a> Loop<'a> {
    fn new(
        o: &'a Options,
        cfg: &'a Config,
        catalogue: Catalogue,
        survey: Box<dyn Count>,
        guard: Guard<'a>,
        budget: Option<&'a Budget>,
        stop: &'a mpsc::Receiver<()>,
    ) -> Loop<'a> {
        let board_agents = cfg.boards.iter().map(|b| board::client(b, &*guard.fleet.connect)).collect();
        Loop {
            o,
            cfg,
            catalogue,
            survey,
            ledger: guard.ledger,
            printer: guard.printer,
            guard,
            budget,
            meter: Meter::default(),
            signal: Signal::new(stop),
            start: Instant::now(),
            counted: HashMap::new(),
            broken: HashMap::new(),
            first_round: true,
            warned: Warned::default(),
            board_agents,
            holdings: HashMap::new(),
            staging: Vec::new(),
        }
    }

    /// `run`'s torrent has its pool from the start: a hybrid torrent is checked against the
    /// boards' daemons before the first round, and what is learnt of its helpers is kept.
    fn prepare(&mut self) {
        if !self.o.run {
            log::info!(
                "watching {} every {} s: ratio {}, {} board(s), up to {} EC2 instance(s){}",
                self.catalogue.describe(),
                self.o.interval.as_secs(),
                self.o.params.ratio,
                self.cfg.boards.len(),
                self.guard.fleet.max_instances,
                if self.o.dry_run { " (dry run: nothing is engaged)" } else { "" }
            );
            return;
        }
        if let Ok(listing) = self.catalogue.list() {
            if let Some(item) = listing.items.first() {
                self.help(item);
            }
        }
    }

    /// One round: refresh, count the budget, list, observe, decide, allocate, act. `Some` when
    /// the loop is over.
    fn round(&mut self) -> Result<Option<End>, Error> {
        self.refresh();
        // Without its ledger a loop could leave a helper engaged after a crash, unrecorded.
        let what = if self.o.run { "run" } else { "watch" };
        let entries = (self.ledger.entries())
            .map_err(|e| Error::Ledger(format!("{e}. Every helper of this {what} is released and it stops")))?;
        let standing = self.count_usage();
        let max_instances = self.max_instances(standing.as_ref());
        let money = self.money(standing.as_ref());
        let elapsed = self.start.elapsed();
        let listing = match self.catalogue.list() {
            Ok(l) => l,
            Err(why) => {
                // Blind: helpers stay as they are, but a spent budget stops the instances all the same.
                self.printer.blind(elapsed, &why);
                if max_instances == 0 && !self.o.dry_run {
                    self.act(&Plan { boards: self.current().boards, ..Plan::default() }, &HashMap::new());
                }
                return Ok(None);
            }
        };
        let decided = self.decide(&listing, elapsed);
        let mut demands: Vec<Demand> = (decided.iter())
            .map(|d| {
                let (seeders, leechers) = d.seen.as_ref().map_or((0, 0), |(c, x)| (c.seeders, x.leechers));
                Demand { hash: d.item.hash, leechers, seeders, wanted: d.wanted }
            })
            .collect();
        // A torrent gone from the catalogue keeps its helpers through the cooldown, then wants none.
        for (hash, h) in self.guard.helped.iter().filter(|(hash, _)| !listing.items.iter().any(|i| i.hash == **hash)) {
            let keep = h.last_change.elapsed() < self.o.params.cooldown;
            let wanted = if keep { h.pool.engaged().engaged } else { 0 };
            demands.push(Demand { hash: *hash, leechers: 0, seeders: 0, wanted });
        }
        let boards = self.boards(&entries);
        let supply =
            Supply { boards: &boards, max_instances, placement: self.o.placement, empty_helpers: self.o.empty_helpers };
        let mut plan = allocate::allocate(&demands, &supply, &self.current());
        self.warn_short(&decided, &plan, &supply);
        if let Some(end) = self.report(&decided, &plan, &supply, (standing, money), elapsed) {
            return Ok(Some(end));
        }
        self.first_round = false;
        if self.o.dry_run {
            return Ok(None);
        }
        self.stage(&decided, &mut plan, &boards);
        let items: HashMap<InfoHash, &Item> = listing.items.iter().map(|i| (i.hash, i)).collect();
        // A board that could not be engaged rests: the others are tried in its place at once.
        let mut short = self.act(&plan, &items);
        for _ in 0..self.cfg.boards.len() {
            if !short || self.signal.seen() {
                break;
            }
            let boards = self.boards(&entries);
            let supply = Supply { boards: &boards, ..supply };
            let mut plan = allocate::allocate(&demands, &supply, &self.current());
            self.keep_staging(&mut plan, &boards);
            short = self.act(&plan, &items);
        }
        Ok(None)
    }

    /// Asks EC2 which instances are there, stops again what could not be stopped, and asks every
    /// engaged helper how its session is going.
    fn refresh(&mut self) {
        let g = &mut self.guard;
        for e in g.fleet.refresh() {
            self.printer.event(&e);
        }
        if !g.fleet.stranded.is_empty() {
            for e in g.fleet.stop_stranded(self.ledger, &Owner::me()) {
                self.printer.event(&e);
            }
        }
        for h in g.helped.values_mut() {
            let events = h.pool.refresh_helpers(&mut g.fleet);
            for e in &events {
                self.printer.helper(e, &h.item, g.per_torrent);
            }
        }
        self.holdings =
            self.cfg.boards.iter().map(|b| b.name.clone()).zip(board::holdings(&self.board_agents)).collect();
    }

    /// Each torrent's counts, decision and the helpers it wants.
    fn decide<'i>(&mut self, listing: &'i Listing, elapsed: Duration) -> Vec<Decided<'i>> {
        let subjects: Vec<Subject> = (listing.items.iter())
            .map(|i| Subject {
                hash: i.hash,
                size: i.size,
                trackers: &i.trackers,
                local: listing.local.get(&i.hash).map(Ok),
            })
            .collect();
        let counts: Vec<Result<Counts, String>> = match self.o.first_counts.filter(|_| self.first_round) {
            Some((seeders, leechers)) => (listing.items.iter())
                .map(|i| Ok(Counts { seeders, leechers, peers_connected: None, size: Some(i.size) }))
                .collect(),
            None => self.survey.counts(&subjects),
        };
        self.counted = (listing.items.iter().zip(&counts))
            .filter_map(|(i, c)| Some((i.hash, c.as_ref().ok()?.leechers)))
            .collect();
        // `watch` never ends a torrent: its decisions are not capped, and it has no max_time.
        let params = match self.o.run {
            true => self.o.params.clone(),
            false => Params { max_time: Duration::MAX, ..self.o.params.clone() },
        };
        let now = Instant::now();
        (listing.items.iter().zip(counts))
            .map(|(item, counts)| {
                let helped = self.guard.helped.get(&item.hash);
                let view = match (helped, self.o.run) {
                    (Some(h), true) => h.pool.view(&self.guard.fleet),
                    (Some(h), false) => policy::Helpers { capacity: u32::MAX, ..h.pool.engaged() },
                    (None, run) => policy::Helpers { capacity: if run { 0 } else { u32::MAX }, ..Default::default() },
                };
                let since_change = helped.map_or(Duration::MAX, |h| h.last_change.elapsed());
                let ours = view.seeding + view.downloading;
                // Boards staging it are not helpers it wants, nor leechers of its crowd.
                let view = self.without_staging(&item.hash, view);
                let c = match counts {
                    Ok(c) => Counts { leechers: c.leechers.saturating_sub(self.staging_of(&item.hash)), ..c },
                    // Blind: its helpers stay as they are.
                    Err(why) => return Decided { item, seen: Err(why), wanted: view.engaged, ours },
                };
                let clock = Clock { first_round: self.first_round, elapsed, since_change };
                let d = policy::decide(&params, &c, &view, &clock);
                let mut wanted = policy::wanted(&d, view.engaged, since_change, params.cooldown);
                if self.broken.get(&item.hash).is_some_and(|retry| now < *retry) {
                    wanted = 0;
                }
                Decided { item, seen: Ok((c, d)), wanted, ours }
            })
            .collect()
    }

    /// Prints the round; `run`'s end, if its policy says so (or it is blind at `max_time`).
    fn report(
        &mut self,
        decided: &[Decided],
        plan: &Plan,
        supply: &Supply,
        (standing, money): (Option<Standing>, Option<Money>),
        elapsed: Duration,
    ) -> Option<End> {
        if self.o.run {
            let one = decided.first()?;
            return match &one.seen {
                Ok((c, d)) => {
                    let held = (one.ours, self.held(&one.item.hash));
                    self.printer.poll(elapsed, c, held, d, (self.o.params.ratio, self.o.dry_run), money.as_ref());
                    match d.action {
                        Action::Exit(reason) => Some(End::Normal(reason)),
                        _ => None,
                    }
                }
                Err(why) => {
                    self.printer.blind(elapsed, why);
                    // `max_time` is a hard limit, seeing the swarm or not.
                    (elapsed >= self.o.params.max_time).then_some(End::Normal(ExitReason::MaxTime))
                }
            };
        }
        let summary = RoundSummary {
            elapsed,
            torrents: decided.len(),
            blind: decided.iter().filter(|d| d.seen.is_err()).count(),
            needing_help: decided.iter().filter(|d| d.wanted > 0).count(),
            boards_busy: plan.boards.iter().map(|(b, _)| b).collect::<BTreeSet<_>>().len(),
            boards: self.cfg.boards.len(),
            instances: plan.instances.values().sum(),
            max_instances: supply.max_instances,
            budget: standing,
            money,
            dry_run: self.o.dry_run,
        };
        self.printer.round(&summary);
        if let Some(path) = &self.o.metrics_file {
            match crate::textfile::write(path, &summary) {
                Ok(()) => self.warned.metrics = false,
                Err(e) if !std::mem::replace(&mut self.warned.metrics, true) => log::warn!("{e}"),
                Err(_) => {}
            }
        }
        for d in decided {
            let Ok((counts, decision)) = d.seen else { continue };
            let hash = d.item.hash;
            let boards: Vec<String> =
                (plan.boards.iter()).filter(|(_, h)| *h == hash).map(|(b, _)| b.clone()).collect();
            let instances = plan.instances.get(&hash).copied().unwrap_or(0);
            if d.wanted > 0 || !boards.is_empty() || self.guard.helped.contains_key(&hash) {
                let held = self.held(&hash);
                let t = TorrentRound { item: d.item, counts, decision, wanted: d.wanted, boards, instances, held };
                self.printer.torrent(&t);
            }
        }
        None
    }

    /// How many boards hold `hash` whole, as they said this round.
    fn held(&self, hash: &InfoHash) -> u32 {
        let whole =
            |h: &&Option<BTreeMap<InfoHash, f64>>| h.as_ref().and_then(|m| m.get(hash)).is_some_and(|f| *f >= 1.0);
        self.holdings.values().filter(whole).count() as u32
    }

    /// Says once when a torrent wants more helpers than can be placed, and why.
    fn warn_short(&mut self, decided: &[Decided], plan: &Plan, supply: &Supply) {
        let Some(d) = decided.iter().find(|d| plan.helpers_of(&d.item.hash) < d.wanted) else { return };
        if std::mem::replace(&mut self.warned.short, true) {
            return;
        }
        let free = supply.boards.iter().filter(|b| !b.resting && b.slots > 0).count();
        let mut why = if self.guard.fleet.pools.is_empty() { "; no EC2 pool configured" } else { "" }.to_string();
        let seeders = d.seen.as_ref().map_or(0, |(c, _)| c.seeders);
        let hash = d.item.hash;
        let empty = (supply.boards.iter())
            .filter(|b| !b.resting && b.slots > 0)
            .filter(|b| !policy::worth_engaging(b.held(&hash), seeders, supply.empty_helpers))
            .count();
        if empty > 0 {
            why += &format!(
                "; {empty} of them do(es) not hold it whole and the swarm has no seeder besides the origin: not engaged, \
                 it would take the origin's upload from the leechers (stage them first, or set [policy] empty_helpers = \"always\")"
            );
        }
        log::warn!(
            "{}: {} helper(s) wanted, {} can be placed (placement {:?}, {free} free board(s), up to {} instance(s){why})",
            d.item.name,
            d.wanted,
            plan.helpers_of(&d.item.hash),
            supply.placement,
            supply.max_instances,
        );
    }

    /// The boards to share out: each with the slots that other live runs and its own lost
    /// engagements leave it, never given a torrent another run seeds on it or one it cannot seed,
    /// and given nothing new while it rests after a failure.
    fn boards(&self, entries: &[Entry]) -> Vec<Board> {
        let me = Owner::me();
        let now = Instant::now();
        (self.cfg.boards.iter())
            .map(|b| {
                let here = || {
                    (self.guard.helped.values())
                        .flat_map(|h| h.pool.helpers.iter().map(move |x| (h, x)))
                        .filter(|(_, x)| x.kind == Kind::Board && x.name == b.name)
                };
                let theirs = held_by_others(entries, &b.name, &me);
                let lost = here().filter(|(_, x)| x.lost()).count() as u32;
                let mut skip = theirs.clone();
                skip.extend(here().filter(|(_, x)| x.cannot()).map(|(h, _)| h.item.hash));
                Board {
                    name: b.name.clone(),
                    slots: b.slots.saturating_sub(theirs.len() as u32 + lost),
                    upload_kbps: b.upload_kbps,
                    skip,
                    resting: here().any(|(_, x)| x.resting(now)),
                    holds: self.holdings.get(&b.name).cloned().flatten(),
                }
            })
            .collect()
    }

    /// Who seeds what now (helpers that answer; a lost one is replaced), the longest engaged
    /// first: the allocation keeps those first, so the last engaged is the first released. Boards
    /// staging are not: a torrent that comes to want helpers gets them by what they hold.
    fn current(&self) -> Plan {
        let mut plan = Plan::default();
        for (hash, h) in &self.guard.helped {
            let mut active: Vec<_> =
                h.pool.helpers.iter().filter(|x| x.active() && !self.is_staging(&x.name, hash)).collect();
            active.sort_by_key(|x| x.since());
            for x in active {
                match x.kind {
                    Kind::Board => plan.boards.push((x.name.clone(), *hash)),
                    Kind::Instance { .. } => *plan.instances.entry(*hash).or_insert(0) += 1,
                }
            }
        }
        plan
    }
}
