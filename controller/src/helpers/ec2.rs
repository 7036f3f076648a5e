//! EC2 helpers: instances selected by tag in one pool per region, started to be engaged and stopped
//! (never terminated) when released. Each is written to the ledger before StartInstances and taken
//! out only once EC2 says it is stopping. A region that refuses (no capacity, a limit, no rights) or
//! does not answer is set aside for a while and the next region is used.

use super::{Event, Helper, Kind, Pool};
use crate::config::Ec2Config;
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

/// Stops `ids` and waits until EC2 says each is stopping or stopped.
pub fn stop_and_wait(client: &Ec2, ids: &[String]) -> Result<(), Error> {
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        let last = match client.stop(ids) {
            Ok(list) => {
                let stopping = |id: &String| {
                    list.iter().any(|i| &i.id == id && matches!(i.state.as_str(), "stopping" | "stopped"))
                };
                if ids.iter().all(stopping) {
                    return Ok(());
                }
                let states: Vec<String> = list.iter().map(|i| format!("{} is {}", i.id, i.state)).collect();
                Error::BadAnswer(format!("not stopping: {}", states.join(", ")))
            }
            // A pending instance cannot be stopped yet.
            Err(e) if e.code() == Some("IncorrectInstanceState") => e,
            Err(e) => return Err(e),
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// An instance started and not engaged yet.
struct Booting {
    pool: usize,
    id: String,
    started: Instant,
}

/// Starts up to `n` instances, region after region, waits for them to run and their agents to
/// answer, and gives each the torrent. An instance that does not make it is stopped and another
/// one started in its place, while there are any.
pub(super) fn engage(pool: &mut Pool, n: u32, interrupted: &dyn Fn() -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    let mut engaged = 0;
    // Each pass leaves fewer startable instances (failed ones are not tried again): it ends.
    let in_time = |f: &Fleet| f.deadline.is_none_or(|d| Instant::now() < d);
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
fn start_some(pool: &mut Pool, wanted: usize, events: &mut Vec<Event>) -> Vec<Booting> {
    let mut booting: Vec<Booting> = Vec::new();
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
            match start(pool, p, &ids) {
                Ok(started) => booting.extend(ids.into_iter().map(|id| Booting { pool: p, id, started })),
                Err(e) => events.push(e),
            }
        }
        if booting.len() >= wanted {
            break;
        }
    }
    booting
}

/// Records `ids` in the ledger, then StartInstances. On an error the instances are taken out of
/// the ledger again once they are known not to run.
fn start(pool: &mut Pool, p: usize, ids: &[String]) -> Result<Instant, Event> {
    let ep = &pool.fleet.pools[p];
    let region = ep.region().to_string();
    for id in ids {
        let h = Helper::new(
            id,
            Kind::Instance { pool: p, region: region.clone(), started: Instant::now() },
            AgentClient::new("http://0.0.0.0:0", "", AGENT_TIMEOUT),
            ep.token_file.clone(),
        );
        let mut entry = pool.entry(&h);
        entry.url = String::new();
        pool.ledger.record(entry).map_err(Event::Fault)?;
    }
    log::info!("EC2 {region}: starting {}", ids.join(", "));
    let started = Instant::now();
    match pool.fleet.pools[p].client.start(ids) {
        Ok(_) => Ok(started),
        Err(e) => {
            let ep = &mut pool.fleet.pools[p];
            let event = if e.code() == Some("IncorrectInstanceState") {
                // Someone else is starting or stopping them: leave those alone.
                ep.failed.extend(ids.iter().cloned());
                Event::Fault(format!("EC2 {region}: cannot start {} ({e}); others will be used", ids.join(", ")))
            } else {
                ep.set_aside(&e)
            };
            // No answer may mean they started: stop them to be sure, and keep them in the ledger
            // if even that fails.
            let known_not_started = matches!(e, Error::Aws { .. });
            if known_not_started || stop_and_wait(&ep.client, ids).is_ok() {
                for id in ids {
                    let _ = pool.ledger.remove(id, &pool.target.meta.info_hash);
                }
            }
            Err(event)
        }
    }
}

/// Waits (up to `boot_timeout`) until each instance runs and its agent answers, then engages it;
/// the ones that do not make it are stopped and not tried again by this run. How many engaged.
fn wait_healthy(
    pool: &mut Pool,
    mut booting: Vec<Booting>,
    interrupted: &dyn Fn() -> bool,
    events: &mut Vec<Event>,
) -> usize {
    let mut engaged = 0;
    let boot_deadline = Instant::now() + pool.fleet.boot_timeout;
    let deadline = pool.fleet.deadline.map_or(boot_deadline, |d| d.min(boot_deadline));
    let mut failed: Vec<(Booting, String)> = Vec::new();
    while !booting.is_empty() {
        if interrupted() {
            failed.extend(booting.drain(..).map(|b| (b, "interrupted while it booted".to_string())));
            break;
        }
        if Instant::now() >= deadline {
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
        let ep = &mut pool.fleet.pools[b.pool];
        ep.failed.push(b.id.clone());
        let region = ep.region().to_string();
        let stopped = stop_and_wait(&ep.client, std::slice::from_ref(&b.id));
        pool.fleet.add_usage(&region, b.started);
        events.push(Event::Fault(match stopped {
            Ok(()) => {
                let _ = pool.ledger.remove(&b.id, &pool.target.meta.info_hash);
                format!("instance {} ({region}): {why}; stopped, another will be used", b.id)
            }
            Err(e) => format!("instance {} ({region}): {why}; cannot stop it ({e}): run `odseed release`", b.id),
        }));
    }
    engaged
}

/// One look at a booting instance: `Some` once engaged, `None` while it boots, an error when it
/// will not make it.
fn try_engage(pool: &mut Pool, b: &Booting) -> Result<Option<Helper>, String> {
    let ep = &pool.fleet.pools[b.pool];
    let found = ep.client.describe(&[("instance-id", &[b.id.as_str()])]).map_err(|e| format!("EC2 says: {e}"))?;
    let Some(i) = found.into_iter().next() else { return Err("EC2 does not know it".into()) };
    match i.state.as_str() {
        "pending" => return Ok(None),
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
    if h.client.health().is_err() {
        return Ok(None);
    }
    // The ledger learns the agent's URL, for `odseed release` after a crash.
    pool.ledger.record(pool.entry(&h)).map_err(|e| e.to_string())?;
    h.engage(&pool.target).map_err(|e| format!("its agent refused the torrent: {e}"))?;
    Ok(Some(h))
}

/// Releases engaged instance `pool.helpers[i]`: `DELETE` where its agent answers, then
/// StopInstances; it leaves the ledger once EC2 says it is stopping.
pub(super) fn release(pool: &mut Pool, i: usize) -> Event {
    let hash = pool.target.meta.info_hash;
    let h = pool.helpers.remove(i);
    let Kind::Instance { pool: p, region, started } = &h.kind else { unreachable!("boards are released in mod.rs") };
    if let Err(e) = h.client.delete(&hash) {
        log::warn!("{}: cannot remove the torrent ({e}); stopping it anyway", h.label());
    }
    let stopped = stop_and_wait(&pool.fleet.pools[*p].client, std::slice::from_ref(&h.name));
    pool.fleet.add_usage(region, *started);
    match stopped {
        Ok(()) => match pool.ledger.remove(&h.name, &hash) {
            Ok(()) => Event::Released(h.name.clone()),
            Err(e) => Event::Fault(e),
        },
        Err(e) => Event::Fault(format!("{}: cannot stop it ({e}); kept in the ledger for `odseed release`", h.label())),
    }
}
