//! Engaging and releasing EC2 instances, as methods of the [`Pool`]: start some region after
//! region, wait for each to run and its agent to answer, give it the torrent; stop what is released,
//! and try again what could not be stopped. The EC2 side alone (pools, requests, waits) is
//! [`super::ec2`].

use super::ec2::{stop_and_wait, Fleet, Started, AGENT_TIMEOUT};
use super::helper::{Event, Helper, Kind};
use super::pool::Pool;
use crate::ec2::client::REFUSALS;
use crate::ec2::{Error, InstanceState, StartFailure};
use crate::ledger::{Ledger, Owner};
use crate::price::Meter;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

impl Pool {
    /// Starts up to `n` instances, region after region, waits for them to run and their agents to
    /// answer, and gives each the torrent. An instance that does not make it is stopped and another
    /// one started in its place, while there are any.
    pub(super) fn engage_instances_now(
        &mut self,
        fleet: &mut Fleet,
        n: u32,
        interrupted: &dyn Fn() -> bool,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let mut engaged = 0;
        let in_time = |f: &Fleet| f.deadline.is_none_or(|d| Instant::now() < d);
        // Each pass leaves fewer startable instances (failed ones are not tried again): it ends.
        while engaged < n as usize && !interrupted() && in_time(fleet) {
            let booting = self.start_some(fleet, n as usize - engaged, &mut events);
            if booting.is_empty() {
                break;
            }
            engaged += self.wait_healthy(fleet, booting, interrupted, &mut events);
        }
        events
    }

    /// Starts up to `wanted` instances; a region that refuses is set aside and the next one is asked.
    fn start_some(&mut self, fleet: &mut Fleet, wanted: usize, events: &mut Vec<Event>) -> Vec<Started> {
        let mut booting: Vec<Started> = Vec::new();
        for _ in 0..=fleet.pools.len() {
            let Ok(taken) = self.taken(fleet) else { break };
            let mut picks = fleet.startable(&taken);
            picks.truncate(wanted - booting.len());
            if picks.is_empty() {
                break;
            }
            let mut by_pool: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for (p, id) in picks {
                by_pool.entry(p).or_default().push(id);
            }
            for (p, ids) in by_pool {
                booting.extend(self.start_in(fleet, p, ids, events));
            }
            if booting.len() >= wanted {
                break;
            }
        }
        booting
    }

    /// Claims `ids` in the ledger, then StartInstances for those it got. After an error the instances
    /// are stopped unless EC2 plainly refused, and leave the ledger once known not to run.
    fn start_in(&mut self, fleet: &mut Fleet, p: usize, ids: Vec<String>, events: &mut Vec<Event>) -> Vec<Started> {
        let region = fleet.pools[p].region().to_string();
        let mut claimed = Vec::new();
        for id in ids {
            let kind = Kind::Instance { pool: p, region: region.clone(), started: Instant::now() };
            let entry = self.entry_for(fleet, &id, &kind, None, &fleet.pools[p].token_file);
            match self.ledger.record(entry) {
                Ok(()) => claimed.push(id),
                Err(e) => {
                    // Held by another run, or no ledger: never started without a record.
                    fleet.pools[p].failed.push(id);
                    events.push(Event::Fault(e.to_string()));
                }
            }
        }
        if claimed.is_empty() {
            return Vec::new();
        }
        log::info!("EC2 {region}: starting {}", claimed.join(", "));
        let started = Instant::now();
        let StartFailure { error: e, maybe_started } = match fleet.pools[p].client.start_checked(&claimed) {
            Ok(_) => {
                let hash = self.target.meta.info_hash;
                let meter = |id: &str| fleet.meter(p, id);
                return claimed
                    .into_iter()
                    .map(|id| Started { pool: p, meter: meter(&id), id, started, hash })
                    .collect();
            }
            Err(failure) => failure,
        };
        let ep = &mut fleet.pools[p];
        if e.retryable() || e.code().is_some_and(|c| REFUSALS.contains(&c)) || matches!(e, Error::Credentials(_)) {
            events.extend(ep.set_aside(&e));
        } else {
            // About these instances (gone since the last look, being stopped...): others will do.
            ep.failed.extend(claimed.iter().cloned());
            events.push(Event::Fault(format!(
                "EC2 {region}: cannot start {} ({e}); others will be used",
                claimed.join(", ")
            )));
        }
        let stopped = !maybe_started || stop_and_wait(&*ep.client, &claimed).is_ok();
        let hash = self.target.meta.info_hash;
        for id in claimed {
            if stopped {
                let _ = self.ledger.remove(&id, &hash, &self.owner);
            } else {
                events.push(Event::Fault(format!(
                    "instance {id} ({region}): may have started and cannot be stopped yet"
                )));
                let meter = fleet.meter(p, &id);
                fleet.stranded.push(Started { pool: p, id, started, hash, meter });
            }
        }
        Vec::new()
    }

    /// Waits (up to `boot_timeout`) until each instance runs and its agent answers, then engages it;
    /// the ones that do not make it are stopped and not tried again by this run. How many engaged.
    fn wait_healthy(
        &mut self,
        fleet: &mut Fleet,
        mut booting: Vec<Started>,
        interrupted: &dyn Fn() -> bool,
        events: &mut Vec<Event>,
    ) -> usize {
        let mut engaged = 0;
        let boot_deadline = Instant::now().checked_add(fleet.boot_timeout);
        let deadline = match (fleet.deadline, boot_deadline) {
            (Some(d), Some(b)) => Some(d.min(b)),
            (d, b) => d.or(b),
        };
        let mut failed: Vec<(Started, String)> = Vec::new();
        while !booting.is_empty() {
            if interrupted() {
                failed.extend(booting.drain(..).map(|b| (b, "interrupted while it booted".to_string())));
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let why = if deadline < boot_deadline {
                    "still booting at max_time".to_string()
                } else {
                    format!("not running with a healthy agent within {}s", fleet.boot_timeout.as_secs())
                };
                failed.extend(booting.drain(..).map(|b| (b, why.clone())));
                break;
            }
            let mut still = Vec::new();
            for b in booting {
                match self.try_engage(fleet, &b) {
                    Ok(Some(h)) => {
                        events.push(Event::Engaged(h.name.clone()));
                        self.helpers.push(h);
                        engaged += 1;
                    }
                    Ok(None) => still.push(b),
                    Err(why) => failed.push((b, why)),
                }
            }
            booting = still;
            if !booting.is_empty() {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        for (b, why) in failed {
            fleet.pools[b.pool].failed.push(b.id.clone());
            let region = fleet.pools[b.pool].region().to_string();
            events.push(match self.stop_started(fleet, b) {
                Ok(id) => Event::Fault(format!("instance {id} ({region}): {why}; stopped, another will be used")),
                Err(e) => Event::Fault(format!("instance ({region}): {why}; {e}")),
            });
        }
        engaged
    }

    /// One look at a booting instance: `Some` once engaged, `None` while it boots (or EC2 does not
    /// say yet: its answers lag), an error when it will not make it.
    fn try_engage(&mut self, fleet: &Fleet, b: &Started) -> Result<Option<Helper>, String> {
        let ep = &fleet.pools[b.pool];
        let Ok(found) = ep.client.describe(&[("instance-id", &[b.id.as_str()])]) else { return Ok(None) };
        let Some(i) = found.into_iter().next() else { return Ok(None) };
        match i.state {
            // Right after StartInstances, DescribeInstances may still say "stopped".
            InstanceState::Pending | InstanceState::Stopped => return Ok(None),
            InstanceState::Running => {}
            other => return Err(format!("it is {other}")),
        }
        let Some(url) = ep.agent_url(&i) else { return Ok(None) };
        let mut h = Helper::new(
            &b.id,
            Kind::Instance { pool: b.pool, region: ep.region().to_string(), started: b.started },
            ep.client(&*fleet.connect, &url, AGENT_TIMEOUT)?,
            ep.token_file.clone(),
        );
        let list = match h.client.list() {
            Ok(list) => list,
            // Its agent answered TLS with another certificate: waiting will not change that.
            Err(e @ odseed_proto::agent_client::Error::Tls { .. }) => return Err(e.to_string()),
            Err(_) => return Ok(None),
        };
        // The instance is this run's alone (the ledger says so): what an earlier run left on it goes.
        let hash = self.target.meta.info_hash;
        for t in list.iter().filter(|t| t.info_hash != hash) {
            log::info!("{}: removing {} left by an earlier run", h.label(), t.info_hash);
            let _ = h.client.delete(&t.info_hash);
        }
        // The ledger learns the agent's URL, for `odseed release` after a crash.
        self.ledger.record(self.entry(fleet, &h)).map_err(|e| e.to_string())?;
        h.meter = Some(Meter { public_ip: i.public_ip.is_some(), base: h.client.usage().ok(), ..b.meter.clone() });
        let download_kbps = fleet.download_kbps;
        if ep.upload_kbps.is_some() || download_kbps > 0 {
            // Speed traded for money; an agent from before `/v1/limits` seeds uncapped (the budget holds).
            let upload_kbps = ep.upload_kbps.unwrap_or(0);
            if let Err(e) = h.client.set_limits(&odseed_proto::wire::Limits { upload_kbps, download_kbps }) {
                log::warn!(
                    "{}: cannot cap it at {upload_kbps} kB/s up, {download_kbps} kB/s down ({e}); uncapped",
                    h.label()
                );
            }
        }
        h.engage(&self.target, Instant::now()).map_err(|f| format!("its agent refused the torrent: {}", f.error))?;
        Ok(Some(h))
    }

    /// Stops a started instance and forgets it; if it cannot be stopped it is kept as stranded (it
    /// counts against `max_instances`, and the run tries again at its end). The id, or why not.
    fn stop_started(&mut self, fleet: &mut Fleet, b: Started) -> Result<String, String> {
        match stop_and_wait(&*fleet.pools[b.pool].client, std::slice::from_ref(&b.id)) {
            Ok(()) => {
                fleet.charge(&b);
                self.ledger.remove(&b.id, &self.target.meta.info_hash, &self.owner).map_err(|e| e.to_string())?;
                Ok(b.id)
            }
            Err(e) => {
                let why = format!("cannot stop {} ({e}); it stays in the ledger for `odseed release`", b.id);
                fleet.stranded.push(b);
                Err(why)
            }
        }
    }

    /// Releases engaged instances `idx` (indices into `self.helpers`, any order): `DELETE` where
    /// their agents answer, then one StopInstances per region. Each leaves the ledger once EC2 says it
    /// is stopping; one that cannot be stopped is kept as stranded.
    pub(super) fn release_instances(&mut self, fleet: &mut Fleet, mut idx: Vec<usize>) -> Vec<Event> {
        let hash = self.target.meta.info_hash;
        idx.sort_unstable_by(|a, b| b.cmp(a));
        let mut by_pool: BTreeMap<usize, Vec<Started>> = BTreeMap::new();
        for i in idx {
            let mut h = self.helpers.remove(i);
            let Kind::Instance { pool: p, started, .. } = h.kind else { unreachable!("boards are released in mod.rs") };
            // Its counters one last time: what it sent since the last round is billed too.
            if let Some(t) = h.client.get(&hash).ok().flatten() {
                h.read_meter(&t);
            }
            if let Err(e) = h.client.delete(&hash) {
                log::warn!("{}: cannot remove the torrent ({e}); stopping it anyway", h.label());
            }
            let meter = h.meter.unwrap_or_default();
            by_pool.entry(p).or_default().push(Started { pool: p, id: h.name, started, hash, meter });
        }
        fleet.stop_groups(by_pool, &self.ledger, &self.owner)
    }
}

impl Fleet {
    /// Tries again to stop the instances that could not be stopped before (each leaves the ledger,
    /// entry of its own torrent, once stopped).
    pub fn stop_stranded(&mut self, ledger: &Ledger, owner: &Owner) -> Vec<Event> {
        let mut by_pool: BTreeMap<usize, Vec<Started>> = BTreeMap::new();
        for s in std::mem::take(&mut self.stranded) {
            by_pool.entry(s.pool).or_default().push(s);
        }
        self.stop_groups(by_pool, ledger, owner)
    }

    /// How long the instances that could not be stopped have run so far.
    pub fn stranded_time(&self) -> Duration {
        self.stranded.iter().map(|s| s.started.elapsed()).sum()
    }

    /// Stops each region's instances in one call, the regions at once (a slow region does not hold
    /// up the others); Released for each stopped, a fault (and stranded) for the others.
    fn stop_groups(&mut self, by_pool: BTreeMap<usize, Vec<Started>>, ledger: &Ledger, owner: &Owner) -> Vec<Event> {
        let pools = &self.pools;
        let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = by_pool
                .iter()
                .map(|(p, list)| {
                    let ids: Vec<String> = list.iter().map(|s| s.id.clone()).collect();
                    let client = &*pools[*p].client;
                    scope.spawn(move || stop_and_wait(client, &ids))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Request("stop panicked".into()))))
                .collect()
        });
        let mut events = Vec::new();
        for ((p, list), stopped) in by_pool.into_iter().zip(results) {
            let region = self.pools[p].region().to_string();
            for s in list {
                events.push(match &stopped {
                    Ok(()) => {
                        self.charge(&s);
                        match ledger.remove(&s.id, &s.hash, owner) {
                            Ok(()) => Event::Released(s.id),
                            Err(e) => Event::Fault(e.to_string()),
                        }
                    }
                    Err(e) => {
                        let why = format!(
                            "instance {} ({region}): cannot stop it ({e}); kept in the ledger for `odseed release`",
                            s.id
                        );
                        self.stranded.push(s);
                        Event::Fault(why)
                    }
                });
            }
        }
        events
    }
}
