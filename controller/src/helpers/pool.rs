//! The pool: every helper a run may use, engaged and released for one torrent, each engagement
//! recorded in the ledger before it is made and removed when it is released. One failing helper
//! never stops a run: it is set aside for a while and another one is used.

use super::ec2::Fleet;
use super::helper::{unsupported, Event, Helper, Kind, State};
use crate::error::Error;
use crate::ledger::{held_by_others, now_secs, Entry, HelperKind, Ledger, Owner};
use crate::policy;
use crate::target::Target;
use odseed_proto::transmission::Version;
use odseed_proto::wire::TorrentState;
use std::time::{Duration, Instant};

pub struct Pool {
    pub helpers: Vec<Helper>,
    pub(super) target: Target,
    pub(super) ledger: Ledger,
    pub(super) owner: Owner,
}

impl Pool {
    pub fn new(boards: Vec<Helper>, target: Target, ledger: Ledger) -> Pool {
        Pool { helpers: boards, target, ledger, owner: Owner::me() }
    }

    /// For a hybrid v1+v2 torrent, asks every board which transmission-daemon it runs, sets aside
    /// those that cannot open it (3.x) and says once which can. Nothing to do for a v1 torrent.
    pub fn check_torrent(&mut self, fleet: &Fleet) {
        if !self.target.meta.hybrid {
            return;
        }
        let boards: Vec<&mut Helper> = self.helpers.iter_mut().filter(|h| h.kind == Kind::Board).collect();
        let versions: Vec<Option<String>> = std::thread::scope(|s| {
            let asks: Vec<_> =
                boards.iter().map(|h| s.spawn(|| h.client.health().ok().and_then(|h| h.daemon_version))).collect();
            asks.into_iter().map(|a| a.join().ok().flatten()).collect()
        });
        let (mut can, mut cannot, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
        for (h, v) in boards.into_iter().zip(versions) {
            match v.as_deref().and_then(Version::parse) {
                Some(v) if v.opens_hybrid() => can.push(format!("{} ({})", h.name, v.text)),
                Some(v) => {
                    cannot.push(format!("{} ({})", h.name, v.text));
                    let why = format!("transmission-daemon {} cannot open a hybrid v1+v2 torrent", v.text);
                    h.state = State::CannotSeed { why };
                }
                None => unknown.push(h.name.clone()),
            }
        }
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        log::info!(
            "{} is a hybrid v1+v2 torrent (BEP 52): Transmission 4.0 and later seed it, 3.x cannot. Boards that can: {}; \
             cannot (not used): {}; not known yet (tried, set aside if they refuse): {}{}",
            self.target.meta.name,
            list(&can),
            list(&cannot),
            list(&unknown),
            if fleet.pools.is_empty() { "" } else { "; EC2 instances are asked once started" },
        );
    }

    pub(super) fn entry(&self, fleet: &Fleet, h: &Helper) -> Entry {
        let trust = h.client.trust();
        Entry {
            cert_sha256: trust.pin,
            plain_http: trust.plain_http,
            ..self.entry_for(fleet, &h.name, &h.kind, Some(h.client.base()), &h.token_file)
        }
    }

    /// The ledger entry of helper `name` of `kind`, whose agent is at `url` (`None`: not known yet).
    pub(super) fn entry_for(
        &self,
        fleet: &Fleet,
        name: &str,
        kind: &Kind,
        url: Option<&str>,
        token_file: &std::path::Path,
    ) -> Entry {
        let (kind, region, endpoint) = match kind {
            Kind::Board => (HelperKind::Board, None, None),
            Kind::Instance { pool, region, .. } => {
                (HelperKind::Ec2, Some(region.clone()), Some(fleet.pools[*pool].client.endpoint().to_string()))
            }
        };
        Entry {
            kind,
            name: name.into(),
            url: url.map(str::to_string),
            token_file: token_file.to_path_buf(),
            info_hash: Some(self.target.meta.info_hash),
            owner: self.owner,
            engaged_at: now_secs(),
            region,
            endpoint,
            cert_sha256: None,
            plain_http: false,
            torrent: Some(self.target.meta.name.clone()),
        }
    }

    /// What the policy needs: how many of ours seed or download, are engaged, could be.
    pub fn view(&self, fleet: &Fleet) -> policy::Helpers {
        policy::Helpers {
            capacity: self.engaged().engaged + self.free_boards() + self.free_instances(fleet),
            ..self.engaged()
        }
    }

    /// How many of ours seed or download, and are engaged (capacity left at 0).
    pub fn engaged(&self) -> policy::Helpers {
        let active: Vec<&Helper> = self.helpers.iter().filter(|h| h.active()).collect();
        let state = |h: &&&Helper| h.torrent_state();
        let seeding = active.iter().filter(|h| state(h) == Some(TorrentState::Seeding)).count() as u32
            // A lost one that seeded may still be counted by the trackers: ours, not natural.
            + self.helpers.iter().filter(|h| h.lost_seeding()).count() as u32;
        // Only a helper that downloads has announced itself as a leecher (a queued one has not yet).
        let downloading = active.iter().filter(|h| state(h) == Some(TorrentState::Downloading)).count() as u32;
        policy::Helpers { seeding, downloading, engaged: active.len() as u32, capacity: 0 }
    }

    /// Healthy boards not engaged, with a slot that other runs have not taken.
    pub fn free_boards(&self) -> u32 {
        let full = self.full_boards();
        let now = Instant::now();
        let free = |h: &&Helper| h.kind == Kind::Board && h.free(now) && !full.contains(&h.name);
        self.helpers.iter().filter(free).count() as u32
    }

    /// The boards other live runs leave no room on for this torrent (all their slots taken, or this
    /// torrent already on them), as the ledger says; none if it cannot be read (the claim will say).
    fn full_boards(&self) -> Vec<String> {
        let hash = self.target.meta.info_hash;
        let entries = self.ledger.entries().unwrap_or_default();
        (self.helpers.iter().filter(|h| h.kind == Kind::Board))
            .filter(|h| {
                let theirs = held_by_others(&entries, &h.name, &self.owner);
                theirs.len() as u32 >= h.slots || theirs.contains(&hash)
            })
            .map(|h| h.name.clone())
            .collect()
    }

    /// Instances that could be started now, within `max_instances` (none without a readable ledger).
    pub fn free_instances(&self, fleet: &Fleet) -> u32 {
        let engaged = self.helpers.iter().filter(|h| matches!(h.kind, Kind::Instance { .. })).count();
        let running = (engaged + fleet.stranded.len()) as u32;
        let startable = self.taken(fleet).map_or(0, |taken| fleet.startable(&taken).len() as u32);
        startable.min(fleet.max_instances.saturating_sub(running))
    }

    /// Instances this run holds, and those the ledger says another run holds.
    pub(super) fn taken(&self, fleet: &Fleet) -> Result<Vec<String>, Error> {
        let mut ids: Vec<String> = self.helpers.iter().map(|h| h.name.clone()).collect();
        ids.extend(fleet.stranded.iter().map(|s| s.id.clone()));
        ids.extend(self.ledger.entries()?.into_iter().filter(|e| e.kind == HelperKind::Ec2).map(|e| e.name));
        Ok(ids)
    }

    /// Asks every engaged helper how its session is going. An instance whose agent is still lost a
    /// round later is stopped: it costs money and helps no one. A helper on which the torrent
    /// failed (an error, or stalled) is released and not used again.
    pub fn refresh_helpers(&mut self, fleet: &mut Fleet) -> Vec<Event> {
        let hash = self.target.meta.info_hash;
        let mut events = Vec::new();
        let (mut gone, mut failed) = (Vec::new(), Vec::new());
        let now = Instant::now();
        for (i, h) in self.helpers.iter_mut().enumerate().filter(|(_, h)| h.engaged()) {
            let instance = matches!(h.kind, Kind::Instance { .. });
            match h.client.get(&hash) {
                Ok(Some(t)) => {
                    h.read_meter(&t);
                    if let Some(why) = h.update(t, now) {
                        failed.push((i, why));
                    }
                }
                // The agent lost its state (reinstalled?): give it the torrent again.
                Ok(None) => match h.client.put(&hash, &self.target.bytes) {
                    Ok((t, _)) => h.given_again(t, now),
                    Err(e) if unsupported(&e) => failed.push((i, e.to_string())),
                    Err(_) if h.lost() && instance => gone.push(i),
                    Err(e) => events.push(h.lose(&e.to_string(), now)),
                },
                Err(e) if !h.lost() => events.push(h.lose(&e.to_string(), now)),
                Err(_) if instance => gone.push(i),
                Err(_) => {}
            }
        }
        for (i, why) in failed {
            let why = format!("it failed there: {why}");
            match self.helpers[i].kind {
                Kind::Board => {
                    let released = self.release_board(i);
                    // One that could not be released stays engaged (lost), to be released later.
                    if !self.helpers[i].engaged() {
                        events.push(self.helpers[i].cannot_seed(&why));
                    }
                    events.push(released);
                }
                Kind::Instance { pool, .. } => {
                    events.push(self.helpers[i].cannot_seed(&why));
                    // Stopped with the others below, and not started again by this run.
                    fleet.pools[pool].failed.push(self.helpers[i].name.clone());
                    gone.push(i);
                }
            }
        }
        if !gone.is_empty() {
            events.extend(self.release_instances(fleet, gone));
        }
        events
    }

    /// Engages board `name`, if it is here, healthy and free.
    pub fn engage_board_named(&mut self, fleet: &Fleet, name: &str) -> Vec<Event> {
        let mut events = Vec::new();
        let now = Instant::now();
        let found = self.helpers.iter().position(|h| h.kind == Kind::Board && h.name == name);
        if let Some(i) = found.filter(|&i| self.helpers[i].free(now)) {
            self.engage_board(fleet, i, &mut events);
        }
        events
    }

    /// Claims board `i` in the ledger, then engages it.
    fn engage_board(&mut self, fleet: &Fleet, i: usize, events: &mut Vec<Event>) {
        let now = Instant::now();
        match self.ledger.claim_board(self.entry(fleet, &self.helpers[i]), self.helpers[i].slots) {
            Ok(()) => {}
            Err(Error::Held(why)) => {
                // Another run's now: not a fault, the next board will do.
                log::debug!("{why}");
                return;
            }
            Err(e) => {
                // Without a record no helper may be engaged: it could outlive a crash unnoticed.
                events.push(Event::Fault(e.to_string()));
                return;
            }
        }
        let b = &mut self.helpers[i];
        match b.engage(&self.target, now) {
            Ok(()) => {
                events.push(Event::Engaged(b.name.clone()));
            }
            Err(f) if f.maybe_seeding => {
                // Treated as engaged but lost: kept in the ledger, DELETEd at release like any other.
                b.state = State::Engaged { since: now, session: None, changed: None };
                let why = format!("unsure whether it took the torrent: {}", f.error);
                events.push(b.lose(&why, now));
            }
            Err(f) => {
                let _ = self.ledger.remove(&b.name, &self.target.meta.info_hash, &self.owner);
                if unsupported(&f.error) {
                    events.push(b.cannot_seed(&f.error.to_string()));
                } else {
                    b.rest(now);
                    events.push(Event::Fault(format!("{}: cannot engage: {}; trying another", b.label(), f.error)));
                }
            }
        }
    }

    /// Starts and engages up to `n` instances, spread over the usable regions (instances.rs).
    /// `interrupted` is asked while instances boot; if it says yes, those are stopped again.
    pub fn engage_instances(&mut self, fleet: &mut Fleet, n: u32, interrupted: &dyn Fn() -> bool) -> Vec<Event> {
        let n = n.min(self.free_instances(fleet));
        if n == 0 {
            return Vec::new();
        }
        self.engage_instances_now(fleet, n, interrupted)
    }

    /// Releases `n` engaged helpers (lost ones first, instances before boards, then the most
    /// recently engaged).
    pub fn release(&mut self, fleet: &mut Fleet, n: usize) -> Vec<Event> {
        let mut order: Vec<usize> = (0..self.helpers.len()).filter(|&i| self.helpers[i].engaged()).collect();
        order.sort_by_key(|&i| {
            let h = &self.helpers[i];
            (!h.lost(), h.kind == Kind::Board, std::cmp::Reverse(h.since()))
        });
        order.truncate(n);
        let (instances, boards): (Vec<usize>, Vec<usize>) =
            order.into_iter().partition(|&i| matches!(self.helpers[i].kind, Kind::Instance { .. }));
        let mut events: Vec<Event> = boards.into_iter().map(|i| self.release_board(i)).collect();
        if !instances.is_empty() {
            events.extend(self.release_instances(fleet, instances));
        }
        events
    }

    /// Releases engaged helper `name` (a board, or an instance, which is stopped).
    pub fn release_helper(&mut self, fleet: &mut Fleet, name: &str) -> Vec<Event> {
        match self.helpers.iter().position(|h| h.engaged() && h.name == name) {
            Some(i) if self.helpers[i].kind == Kind::Board => vec![self.release_board(i)],
            Some(i) => self.release_instances(fleet, vec![i]),
            None => Vec::new(),
        }
    }

    /// Releases engaged board `name`, if it is engaged here.
    pub fn release_named(&mut self, name: &str) -> Vec<Event> {
        let found = self.helpers.iter().position(|h| h.kind == Kind::Board && h.engaged() && h.name == name);
        found.map(|i| vec![self.release_board(i)]).unwrap_or_default()
    }

    /// Releases `n` engaged instances (lost ones first, then the most recently engaged).
    pub fn release_instances_only(&mut self, fleet: &mut Fleet, n: usize) -> Vec<Event> {
        let mut order: Vec<usize> =
            (0..self.helpers.len()).filter(|&i| matches!(self.helpers[i].kind, Kind::Instance { .. })).collect();
        order.sort_by_key(|&i| (!self.helpers[i].lost(), std::cmp::Reverse(self.helpers[i].since())));
        order.truncate(n);
        if order.is_empty() {
            return Vec::new();
        }
        self.release_instances(fleet, order)
    }

    /// Whether any helper is engaged for this torrent.
    pub fn busy(&self) -> bool {
        self.helpers.iter().any(Helper::engaged)
    }

    /// Releases every engaged helper.
    pub fn release_all(&mut self, fleet: &mut Fleet) -> Vec<Event> {
        self.release(fleet, self.helpers.len())
    }

    /// Whether it is worth keeping while nothing is engaged: a helper rests or cannot seed its
    /// torrent, which a new pool would not know.
    pub fn remembers(&self, now: Instant) -> bool {
        self.helpers.iter().any(|h| h.cannot() || h.resting(now))
    }

    /// What its engaged instances have cost so far.
    pub fn bills(&self, fleet: &Fleet) -> Vec<crate::price::Bill> {
        (self.helpers.iter())
            .filter_map(|h| match &h.kind {
                Kind::Instance { pool, started, .. } => Some(fleet.bill(&super::ec2::Started {
                    pool: *pool,
                    id: h.name.clone(),
                    started: *started,
                    hash: self.target.meta.info_hash,
                    meter: h.meter.clone().unwrap_or_default(),
                })),
                Kind::Board => None,
            })
            .collect()
    }

    /// How long its engaged instances have run so far.
    pub fn running_time(&self) -> Duration {
        (self.helpers.iter())
            .filter_map(|h| match &h.kind {
                Kind::Instance { started, .. } => Some(started.elapsed()),
                Kind::Board => None,
            })
            .sum()
    }

    /// How many instances are engaged for this torrent.
    pub fn instances(&self) -> usize {
        self.helpers.iter().filter(|h| matches!(h.kind, Kind::Instance { .. })).count()
    }

    fn release_board(&mut self, i: usize) -> Event {
        let hash = self.target.meta.info_hash;
        let b = &mut self.helpers[i];
        match b.client.delete(&hash) {
            Ok(_) => {
                b.released();
                if let Err(e) = self.ledger.remove(&b.name, &hash, &self.owner) {
                    return Event::Fault(e.to_string());
                }
                Event::Released(b.name.clone())
            }
            Err(e) => {
                // Still engaged as far as anyone knows, and in the ledger: tried again when it
                // answers, at the end, or by `odseed release` or the next run.
                let _ = b.lose("", Instant::now());
                Event::Fault(format!("{}: cannot release ({e}); kept in the ledger for `odseed release`", b.label()))
            }
        }
    }
}
