//! EC2 helpers: instances selected by tag in one pool per region, started to be engaged and stopped
//! (never terminated) when released. Each is written to the ledger before StartInstances and taken
//! out only once EC2 says it is stopping. A region that refuses (no capacity, a limit, no rights) or
//! does not answer is set aside for a while and the next region is used.

use super::{Event, Helper, Kind, Pool};
use crate::config::Ec2Config;
use crate::ec2::client::REFUSALS;
use crate::ec2::credentials::{self, Env};
use crate::ec2::{Ec2, Error, Instance};
use odseed_agent::client::AgentClient;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A region that refused or failed is not asked to start anything for this long.
const UNUSABLE_FOR: Duration = Duration::from_secs(600);
/// How long a stop may take to be accepted (a pending instance cannot be stopped yet).
const STOP_DEADLINE: Duration = Duration::from_secs(120);
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The tag that gives an instance's agent URL.
pub const URL_TAG: &str = "odseed:agent-url";

/// One `[[ec2.pool]]`: a region's tagged instances.
pub struct Ec2Pool {
    pub client: Ec2,
    pub tag: (String, String),
    pub agent_port: u16,
    pub token: String,
    pub token_file: PathBuf,
    /// What the last DescribeInstances said.
    pub instances: Vec<Instance>,
    pub unusable_until: Option<Instant>,
    /// Instances that failed to boot in this run: never tried again by it.
    pub failed: Vec<String>,
}

impl Ec2Pool {
    pub fn region(&self) -> &str {
        &self.client.region
    }

    fn usable(&self, now: Instant) -> bool {
        self.unusable_until.is_none_or(|t| now >= t)
    }

    fn set_aside(&mut self, why: &Error) -> Event {
        self.unusable_until = Some(Instant::now() + UNUSABLE_FOR);
        Event::Fault(format!(
            "EC2 {}: {why}; not used for {} min, other regions are",
            self.region(),
            UNUSABLE_FOR.as_secs() / 60
        ))
    }

    /// Every instance with the pool's tag, whatever its state.
    pub fn describe(&self) -> Result<Vec<Instance>, Error> {
        let tag = format!("tag:{}", self.tag.0);
        self.client.describe(&[(&tag, &[&self.tag.1])])
    }

    /// The agent URL of an instance: its `odseed:agent-url` tag, else its public IP and `agent_port`.
    fn agent_url(&self, i: &Instance) -> Option<String> {
        i.tag(URL_TAG)
            .map(str::to_string)
            .or_else(|| i.public_ip.as_ref().map(|ip| format!("http://{ip}:{}", self.agent_port)))
    }
}

/// Every pool, the limits, and the instance time used.
pub struct Fleet {
    pub pools: Vec<Ec2Pool>,
    pub max_instances: u32,
    pub boot_timeout: Duration,
    /// Instance time per region, counted from StartInstances to StopInstances.
    pub usage: BTreeMap<String, Duration>,
    /// Instances this run started and could not stop (yet).
    pub stranded: Vec<Started>,
    /// The run's `max_time`: no instance is waited for past it.
    pub deadline: Option<Instant>,
}

impl Fleet {
    /// No EC2.
    pub fn none() -> Fleet {
        Fleet {
            pools: Vec::new(),
            max_instances: 0,
            boot_timeout: Duration::ZERO,
            usage: BTreeMap::new(),
            stranded: Vec::new(),
            deadline: None,
        }
    }

    /// The pools of `[ec2]`, with credentials and endpoints found the AWS way.
    pub fn from_config(cfg: Option<&Ec2Config>) -> Result<Fleet, String> {
        let Some(cfg) = cfg else { return Ok(Fleet::none()) };
        let env = Env::process();
        let creds = credentials::load(&env, cfg.profile.as_deref())?;
        let mut pools = Vec::new();
        for p in &cfg.pools {
            let endpoint = credentials::endpoint(&env, cfg.endpoint_url.as_deref(), &p.region)?;
            let (k, v) = p.tag_pair();
            pools.push(Ec2Pool {
                client: Ec2::new(&p.region, &endpoint, creds.clone(), Duration::from_secs(cfg.request_timeout)),
                tag: (k.into(), v.into()),
                agent_port: p.agent_port,
                token: p.token.clone(),
                token_file: p.token_file.clone(),
                instances: Vec::new(),
                unusable_until: None,
                failed: Vec::new(),
            });
        }
        Ok(Fleet {
            pools,
            max_instances: cfg.max_instances,
            boot_timeout: Duration::from_secs(cfg.boot_timeout),
            usage: BTreeMap::new(),
            stranded: Vec::new(),
            deadline: None,
        })
    }

    /// Asks each usable region which tagged instances it has.
    pub fn refresh(&mut self) -> Vec<Event> {
        let now = Instant::now();
        let mut events = Vec::new();
        for p in self.pools.iter_mut().filter(|p| p.usable(now)) {
            match p.describe() {
                Ok(list) => p.instances = list,
                Err(e) => {
                    p.instances.clear();
                    events.push(p.set_aside(&e));
                }
            }
        }
        events
    }

    /// Stopped instances of usable regions that nobody holds, as (pool, id), taking one region after
    /// the other so that the helpers are spread.
    pub fn startable(&self, taken: &[String]) -> Vec<(usize, String)> {
        let now = Instant::now();
        let per_pool: Vec<Vec<&Instance>> = self
            .pools
            .iter()
            .map(|p| {
                let free = |i: &&Instance| i.state == "stopped" && !taken.contains(&i.id) && !p.failed.contains(&i.id);
                if p.usable(now) {
                    p.instances.iter().filter(free).collect()
                } else {
                    Vec::new()
                }
            })
            .collect();
        let longest = per_pool.iter().map(Vec::len).max().unwrap_or(0);
        (0..longest)
            .flat_map(|k| {
                per_pool.iter().enumerate().filter_map(move |(p, list)| list.get(k).map(|i| (p, i.id.clone())))
            })
            .collect()
    }

    fn add_usage(&mut self, region: &str, started: Instant) {
        *self.usage.entry(region.to_string()).or_default() += started.elapsed();
    }
}

/// Stops `ids` and waits until EC2 says none of them runs (stopping, stopped, or gone).
pub fn stop_and_wait(client: &Ec2, ids: &[String]) -> Result<(), Error> {
    let deadline = Instant::now() + STOP_DEADLINE;
    let down = |state: &str| matches!(state, "stopping" | "stopped" | "shutting-down" | "terminated");
    loop {
        let last = match client.stop(ids) {
            Ok(list) => {
                if ids.iter().all(|id| list.iter().any(|i| &i.id == id && down(&i.state))) {
                    return Ok(());
                }
                let states: Vec<String> = list.iter().map(|i| format!("{} is {}", i.id, i.state)).collect();
                Error::BadAnswer(format!("not stopping: {}", states.join(", ")))
            }
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidInstanceID.NotFound")) => return Ok(()),
            // Pending (not stoppable yet), or already on its way down: ask which.
            Err(e) if e.code() == Some("IncorrectInstanceState") => {
                let filter = [("instance-id", &ids.iter().map(String::as_str).collect::<Vec<_>>()[..])];
                if client.describe(&filter).is_ok_and(|list| list.iter().all(|i| down(&i.state))) {
                    return Ok(());
                }
                e
            }
            Err(e) => return Err(e),
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// An instance started and not engaged yet, or one that could not be stopped.
pub struct Started {
    pool: usize,
    pub id: String,
    started: Instant,
}

/// Starts up to `n` instances, region after region, waits for them to run and their agents to
/// answer, and gives each the torrent. An instance that does not make it is stopped and another
/// one started in its place, while there are any.
pub(super) fn engage(pool: &mut Pool, n: u32, interrupted: &dyn Fn() -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    let mut engaged = 0;
    let in_time = |f: &Fleet| f.deadline.is_none_or(|d| Instant::now() < d);
    // Each pass leaves fewer startable instances (failed ones are not tried again): it ends.
    while engaged < n as usize && !interrupted() && in_time(&pool.fleet) {
        let booting = start_some(pool, n as usize - engaged, &mut events);
        if booting.is_empty() {
            break;
        }
        engaged += wait_healthy(pool, booting, interrupted, &mut events);
    }
    events
}

/// Starts up to `wanted` instances; a region that refuses is set aside and the next one is asked.
fn start_some(pool: &mut Pool, wanted: usize, events: &mut Vec<Event>) -> Vec<Started> {
    let mut booting: Vec<Started> = Vec::new();
    for _ in 0..=pool.fleet.pools.len() {
        let Ok(taken) = pool.taken() else { break };
        let mut picks = pool.fleet.startable(&taken);
        picks.truncate(wanted - booting.len());
        if picks.is_empty() {
            break;
        }
        let mut by_pool: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (p, id) in picks {
            by_pool.entry(p).or_default().push(id);
        }
        for (p, ids) in by_pool {
            booting.extend(start(pool, p, ids, events));
        }
        if booting.len() >= wanted {
            break;
        }
    }
    booting
}

/// Claims `ids` in the ledger, then StartInstances for those it got. After an error the instances
/// are stopped unless EC2 plainly refused, and leave the ledger once known not to run.
fn start(pool: &mut Pool, p: usize, ids: Vec<String>, events: &mut Vec<Event>) -> Vec<Started> {
    let region = pool.fleet.pools[p].region().to_string();
    let mut claimed = Vec::new();
    for id in ids {
        let kind = Kind::Instance { pool: p, region: region.clone(), started: Instant::now() };
        let entry = pool.entry_for(&id, &kind, "", &pool.fleet.pools[p].token_file);
        match pool.ledger.record(entry) {
            Ok(()) => claimed.push(id),
            Err(e) => {
                // Held by another run, or no ledger: never started without a record.
                pool.fleet.pools[p].failed.push(id);
                events.push(Event::Fault(e));
            }
        }
    }
    if claimed.is_empty() {
        return Vec::new();
    }
    log::info!("EC2 {region}: starting {}", claimed.join(", "));
    let started = Instant::now();
    let (e, unsure) = match pool.fleet.pools[p].client.start_checked(&claimed) {
        Ok(_) => return claimed.into_iter().map(|id| Started { pool: p, id, started }).collect(),
        Err(failure) => failure,
    };
    let ep = &mut pool.fleet.pools[p];
    if e.retryable() || e.code().is_some_and(|c| REFUSALS.contains(&c)) {
        events.push(ep.set_aside(&e));
    } else {
        // About these instances (gone since the last look, being stopped...): others will do.
        ep.failed.extend(claimed.iter().cloned());
        events.push(Event::Fault(format!(
            "EC2 {region}: cannot start {} ({e}); others will be used",
            claimed.join(", ")
        )));
    }
    let stopped = !unsure || stop_and_wait(&ep.client, &claimed).is_ok();
    let hash = pool.target.meta.info_hash;
    for id in claimed {
        if stopped {
            let _ = pool.ledger.remove(&id, &hash, &pool.owner);
        } else {
            events.push(Event::Fault(format!("instance {id} ({region}): may have started and cannot be stopped yet")));
            pool.fleet.stranded.push(Started { pool: p, id, started });
        }
    }
    Vec::new()
}

/// Waits (up to `boot_timeout`) until each instance runs and its agent answers, then engages it;
/// the ones that do not make it are stopped and not tried again by this run. How many engaged.
fn wait_healthy(
    pool: &mut Pool,
    mut booting: Vec<Started>,
    interrupted: &dyn Fn() -> bool,
    events: &mut Vec<Event>,
) -> usize {
    let mut engaged = 0;
    let boot_deadline = Instant::now().checked_add(pool.fleet.boot_timeout);
    let deadline = match (pool.fleet.deadline, boot_deadline) {
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
                format!("not running with a healthy agent within {}s", pool.fleet.boot_timeout.as_secs())
            };
            failed.extend(booting.drain(..).map(|b| (b, why.clone())));
            break;
        }
        let mut still = Vec::new();
        for b in booting {
            match try_engage(pool, &b) {
                Ok(Some(h)) => {
                    events.push(Event::Engaged(h.name.clone()));
                    pool.helpers.push(h);
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
        pool.fleet.pools[b.pool].failed.push(b.id.clone());
        let region = pool.fleet.pools[b.pool].region().to_string();
        events.push(match stop_started(pool, b) {
            Ok(id) => Event::Fault(format!("instance {id} ({region}): {why}; stopped, another will be used")),
            Err(e) => Event::Fault(format!("instance ({region}): {why}; {e}")),
        });
    }
    engaged
}

/// One look at a booting instance: `Some` once engaged, `None` while it boots (or EC2 does not
/// say yet: its answers lag), an error when it will not make it.
fn try_engage(pool: &mut Pool, b: &Started) -> Result<Option<Helper>, String> {
    let ep = &pool.fleet.pools[b.pool];
    let Ok(found) = ep.client.describe(&[("instance-id", &[b.id.as_str()])]) else { return Ok(None) };
    let Some(i) = found.into_iter().next() else { return Ok(None) };
    match i.state.as_str() {
        // Right after StartInstances, DescribeInstances may still say "stopped".
        "pending" | "stopped" => return Ok(None),
        "running" => {}
        other => return Err(format!("it is {other}")),
    }
    let Some(url) = ep.agent_url(&i) else { return Ok(None) };
    let mut h = Helper::new(
        &b.id,
        Kind::Instance { pool: b.pool, region: ep.region().to_string(), started: b.started },
        AgentClient::new(&url, &ep.token, AGENT_TIMEOUT),
        ep.token_file.clone(),
    );
    let Ok(list) = h.client.list() else { return Ok(None) };
    // The instance is this run's alone (the ledger says so): what an earlier run left on it goes.
    let hash = pool.target.meta.info_hash;
    for t in list.iter().filter(|t| t.info_hash != hash) {
        log::info!("{}: removing {} left by an earlier run", h.label(), t.info_hash);
        let _ = h.client.delete(&t.info_hash);
    }
    // The ledger learns the agent's URL, for `odseed release` after a crash.
    pool.ledger.record(pool.entry(&h))?;
    h.engage(&pool.target).map_err(|e| format!("its agent refused the torrent: {e}"))?;
    Ok(Some(h))
}

/// Stops a started instance and forgets it; if it cannot be stopped it is kept as stranded (it
/// counts against `max_instances`, and the run tries again at its end). The id, or why not.
fn stop_started(pool: &mut Pool, b: Started) -> Result<String, String> {
    let ep = &pool.fleet.pools[b.pool];
    let region = ep.region().to_string();
    match stop_and_wait(&ep.client, std::slice::from_ref(&b.id)) {
        Ok(()) => {
            pool.fleet.add_usage(&region, b.started);
            pool.ledger.remove(&b.id, &pool.target.meta.info_hash, &pool.owner)?;
            Ok(b.id)
        }
        Err(e) => {
            let why = format!("cannot stop {} ({e}); it stays in the ledger for `odseed release`", b.id);
            pool.fleet.stranded.push(b);
            Err(why)
        }
    }
}

/// Releases engaged instances `idx` (indices into `pool.helpers`, any order): `DELETE` where
/// their agents answer, then one StopInstances per region. Each leaves the ledger once EC2 says it
/// is stopping; one that cannot be stopped is kept as stranded.
pub(super) fn release(pool: &mut Pool, mut idx: Vec<usize>) -> Vec<Event> {
    let hash = pool.target.meta.info_hash;
    idx.sort_unstable_by(|a, b| b.cmp(a));
    let mut by_pool: BTreeMap<usize, Vec<Started>> = BTreeMap::new();
    for i in idx {
        let h = pool.helpers.remove(i);
        let Kind::Instance { pool: p, started, .. } = h.kind else { unreachable!("boards are released in mod.rs") };
        if let Err(e) = h.client.delete(&hash) {
            log::warn!("{}: cannot remove the torrent ({e}); stopping it anyway", h.label());
        }
        by_pool.entry(p).or_default().push(Started { pool: p, id: h.name, started });
    }
    stop_groups(pool, by_pool)
}

/// Stops each region's instances in one call, the regions at once (a slow region does not hold
/// up the others); Released for each stopped, a fault (and stranded) for the others.
fn stop_groups(pool: &mut Pool, by_pool: BTreeMap<usize, Vec<Started>>) -> Vec<Event> {
    let fleet = &pool.fleet;
    let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = by_pool
            .iter()
            .map(|(p, list)| {
                let ids: Vec<String> = list.iter().map(|s| s.id.clone()).collect();
                let client = &fleet.pools[*p].client;
                scope.spawn(move || stop_and_wait(client, &ids))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Request("stop panicked".into())))).collect()
    });
    let mut events = Vec::new();
    for ((p, list), stopped) in by_pool.into_iter().zip(results) {
        let region = pool.fleet.pools[p].region().to_string();
        for s in list {
            events.push(match &stopped {
                Ok(()) => {
                    pool.fleet.add_usage(&region, s.started);
                    match pool.ledger.remove(&s.id, &pool.target.meta.info_hash, &pool.owner) {
                        Ok(()) => Event::Released(s.id),
                        Err(e) => Event::Fault(e),
                    }
                }
                Err(e) => {
                    let why = format!(
                        "instance {} ({region}): cannot stop it ({e}); kept in the ledger for `odseed release`",
                        s.id
                    );
                    pool.fleet.stranded.push(s);
                    Event::Fault(why)
                }
            });
        }
    }
    events
}

/// Tries again to stop what could not be stopped before.
pub(super) fn stop_stranded(pool: &mut Pool) -> Vec<Event> {
    let mut by_pool: BTreeMap<usize, Vec<Started>> = BTreeMap::new();
    for s in std::mem::take(&mut pool.fleet.stranded) {
        by_pool.entry(s.pool).or_default().push(s);
    }
    stop_groups(pool, by_pool)
}
