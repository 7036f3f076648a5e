//! Carrying out a round's plan: first every release (so that boards and instances are free), then
//! every engagement, per (helper, torrent). A torrent gets a [`Pool`] of its own when it is first
//! helped (its metainfo is read then) and loses it once nothing is engaged for it and nothing
//! learnt of its helpers (one resting, one that cannot seed it) is worth keeping.

use super::Loop;
use crate::allocate::Plan;
use crate::catalogue::Item;
use crate::guard::Helped;
use crate::helpers::{board, Event, Kind, Pool};
use odseed_proto::InfoHash;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A torrent whose metainfo could not be read is tried again after this long.
const BROKEN_FOR: Duration = Duration::from_secs(600);

impl Loop<'_> {
    /// Whether a board of the plan could not be engaged.
    pub(super) fn act(&mut self, plan: &Plan, items: &HashMap<InfoHash, &Item>) -> bool {
        self.release_unplanned(plan);
        self.engage_planned(plan, items);
        let (now, run) = (Instant::now(), self.o.run);
        self.guard.helped.retain(|_, h| run || h.pool.busy() || h.pool.remembers(now));
        let engaged = |name: &str, hash: &InfoHash| {
            let h = self.guard.helped.get(hash);
            h.is_some_and(|h| h.pool.helpers.iter().any(|x| x.name == name && x.active()))
        };
        plan.boards.iter().any(|(name, hash)| items.contains_key(hash) && !engaged(name, hash))
    }

    fn release_unplanned(&mut self, plan: &Plan) {
        let g = &mut self.guard;
        for (hash, h) in g.helped.iter_mut() {
            let mut events = Vec::new();
            // A lost board is released once it answers again (or at the end).
            let engaged: Vec<String> = (h.pool.helpers.iter())
                .filter(|x| x.kind == Kind::Board && x.active())
                .map(|x| x.name.clone())
                .collect();
            for name in engaged.iter().filter(|n| !plan.boards.iter().any(|(b, t)| b == *n && t == hash)) {
                events.extend(h.pool.release_named(name));
            }
            let instances = h.pool.instances();
            let planned = plan.instances.get(hash).copied().unwrap_or(0) as usize;
            if instances > planned {
                events.extend(h.pool.release_instances_only(&mut g.fleet, instances - planned));
            }
            if !events.is_empty() {
                h.last_change = Instant::now();
            }
            for e in &events {
                self.printer.helper(e, &h.item, g.per_torrent);
            }
        }
    }

    fn engage_planned(&mut self, plan: &Plan, items: &HashMap<InfoHash, &Item>) {
        let mut wanted: Vec<InfoHash> = plan.boards.iter().map(|(_, h)| *h).collect();
        wanted.extend(plan.instances.iter().filter(|(_, n)| **n > 0).map(|(h, _)| *h));
        wanted.sort();
        wanted.dedup();
        for hash in wanted {
            if self.signal.seen() {
                return;
            }
            let Some(item) = items.get(&hash) else { continue };
            if !self.guard.helped.contains_key(&hash) && !self.help(item) {
                continue;
            }
            let g = &mut self.guard;
            let h = g.helped.get_mut(&hash).expect("helped above");
            let mut events = Vec::new();
            for (name, _) in plan.boards.iter().filter(|(_, t)| *t == hash) {
                if !h.pool.helpers.iter().any(|x| x.name == *name && x.engaged()) {
                    events.extend(h.pool.engage_board_named(&g.fleet, name));
                }
            }
            let have = h.pool.instances() as u32;
            let planned = plan.instances.get(&hash).copied().unwrap_or(0);
            if planned > have {
                let signal = &self.signal;
                events.extend(h.pool.engage_instances(&mut g.fleet, planned - have, &|| signal.seen()));
            }
            if !events.is_empty() {
                h.last_change = Instant::now();
            }
            for e in &events {
                self.printer.helper(e, &h.item, g.per_torrent);
            }
        }
    }

    /// Gives a torrent about to be helped its pool: every configured board (none engaged yet), its
    /// metainfo read. False if that cannot be read (said once; the torrent is not helped).
    pub(super) fn help(&mut self, item: &Item) -> bool {
        let target = match self.catalogue.target(item) {
            Ok(t) => {
                self.broken.remove(&item.hash);
                t
            }
            Err(why) => {
                if !self.broken.contains_key(&item.hash) {
                    let retry = BROKEN_FOR.as_secs() / 60;
                    self.printer.event(&Event::Fault(format!(
                        "{}: {why}; not helped (tried again every {retry} min)",
                        item.name
                    )));
                }
                self.broken.insert(item.hash, Instant::now() + BROKEN_FOR);
                return false;
            }
        };
        let connect = &*self.guard.fleet.connect;
        let boards = self.cfg.boards.iter().map(|b| board::helper(b, connect)).collect();
        let mut pool = Pool::new(boards, target, self.ledger.clone());
        pool.check_torrent(&self.guard.fleet);
        let h = Helped { pool, item: item.clone(), last_change: Instant::now() };
        self.guard.helped.insert(item.hash, h);
        true
    }
}
