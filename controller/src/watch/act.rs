//! Carrying out a round's plan: first every release (so that boards and instances are free), then
//! every engagement, per (helper, torrent). A torrent gets a [`Pool`] of its own when it is first
//! helped (its metainfo is read then) and loses it once nothing is engaged for it.

use super::{with_fleet, Helped, Watch};
use crate::allocate::Plan;
use crate::catalogue::Item;
use crate::helpers::{board, Event, Kind, Pool};
use odseed_proto::InfoHash;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A torrent whose metainfo could not be read is tried again after this long.
const BROKEN_FOR: Duration = Duration::from_secs(600);

impl Watch<'_> {
    pub(super) fn act(&mut self, plan: &Plan, items: &HashMap<InfoHash, &Item>) {
        self.release_unplanned(plan);
        self.engage_planned(plan, items);
        self.guard.helped.retain(|_, h| h.pool.busy());
    }

    fn release_unplanned(&mut self, plan: &Plan) {
        let fleet = &mut self.guard.fleet;
        for (hash, h) in self.guard.helped.iter_mut() {
            let mut events = Vec::new();
            // A lost board is released once it answers again (or at the end).
            let engaged: Vec<String> = (h.pool.helpers.iter())
                .filter(|x| x.kind == Kind::Board && x.engaged && !x.lost)
                .map(|x| x.name.clone())
                .collect();
            for name in engaged.iter().filter(|n| !plan.boards.iter().any(|(b, t)| b == *n && t == hash)) {
                events.extend(h.pool.release_named(name));
            }
            let instances = h.pool.instances();
            let planned = plan.instances.get(hash).copied().unwrap_or(0) as usize;
            if instances > planned {
                events.extend(with_fleet(fleet, &mut h.pool, |p| p.release_instances_only(instances - planned)));
            }
            if !events.is_empty() {
                h.last_change = Instant::now();
            }
            for e in &events {
                self.printer.event_on(e, hash, &h.item.name);
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
            if !self.guard.helped.contains_key(&hash) {
                match self.pool_for(item) {
                    Some(pool) => {
                        let h = Helped { pool, item: (*item).clone(), last_change: Instant::now() };
                        self.guard.helped.insert(hash, h);
                    }
                    None => continue,
                }
            }
            let mut events = Vec::new();
            let h = self.guard.helped.get_mut(&hash).expect("inserted above");
            for (name, _) in plan.boards.iter().filter(|(_, t)| *t == hash) {
                if !h.pool.helpers.iter().any(|x| x.name == *name && x.engaged) {
                    events.extend(h.pool.engage_board_named(name));
                }
            }
            let have = h.pool.instances() as u32;
            let planned = plan.instances.get(&hash).copied().unwrap_or(0);
            if planned > have {
                let signal = &self.signal;
                let interrupted = || signal.seen();
                let fleet = &mut self.guard.fleet;
                events.extend(with_fleet(fleet, &mut h.pool, |p| p.engage_instances(planned - have, &interrupted)));
            }
            if !events.is_empty() {
                h.last_change = Instant::now();
            }
            for e in &events {
                self.printer.event_on(e, &hash, &h.item.name);
            }
        }
    }

    /// A pool for a torrent about to be helped: every configured board (none engaged yet), its
    /// metainfo read. `None` if that cannot be read (said once; the torrent is not helped).
    fn pool_for(&mut self, item: &Item) -> Option<Pool> {
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
                return None;
            }
        };
        let boards = self.cfg.boards.iter().map(board::helper).collect();
        let mut pool = Pool::new(boards, crate::helpers::ec2::Fleet::none(), target, self.ledger.clone());
        pool.check_torrent();
        Some(pool)
    }
}
