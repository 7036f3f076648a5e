//! EC2 helpers: instances selected by tag in one pool per region, started to be engaged and stopped
//! (never terminated) when released. Each is written to the ledger before StartInstances and taken
//! out only once EC2 says it is stopping. A region that refuses (no capacity, a limit, no rights) or
//! does not answer is set aside for a while and the next region is used.

use super::agent::{Agent, Connect, Http};
use super::helper::Event;
use crate::config::Ec2Config;
use crate::ec2::credentials::{self, Env, Provider};
use crate::ec2::{Api, Ec2, Error, Instance, InstanceState};
use crate::price::{Bill, Meter, Prices, Use};
use odseed_proto::agent_client::Trust;
use odseed_proto::tls::Fingerprint;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A region that refused or failed is not asked to start anything for this long.
pub(super) const UNUSABLE_FOR: Duration = Duration::from_secs(600);
/// How long a stop may take to be accepted (a pending instance cannot be stopped yet).
pub(super) const STOP_DEADLINE: Duration = Duration::from_secs(120);
pub(super) const AGENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The tag that gives an instance's agent URL.
pub const URL_TAG: &str = "odseed:agent-url";

/// One `[[ec2.pool]]`: a region's tagged instances.
pub struct Ec2Pool {
    pub client: Box<dyn Api>,
    pub tag: (String, String),
    pub agent_port: u16,
    pub token: String,
    pub token_file: PathBuf,
    /// The certificate its agents serve, and whether plain HTTP is allowed instead.
    pub pin: Option<Fingerprint>,
    pub plain_http: bool,
    /// What the last DescribeInstances said.
    pub instances: Vec<Instance>,
    pub unusable_until: Option<Instant>,
    /// Instances that failed to boot in this run: never tried again by it.
    pub failed: Vec<String>,
    /// What its instances cost.
    pub prices: Prices,
    /// The upload cap set on each of its instances' agents when engaged (kB/s).
    pub upload_kbps: Option<u32>,
}

impl Ec2Pool {
    pub fn region(&self) -> &str {
        self.client.region()
    }

    fn usable(&self, now: Instant) -> bool {
        self.unusable_until.is_none_or(|t| now >= t)
    }

    /// Not asked for a while after `why`, and the fault to say. Without credentials (a renewal
    /// that failed) it is tried again at the next round, and that is said once.
    pub(super) fn set_aside(&mut self, why: &Error) -> Option<Event> {
        if let Error::Credentials(missing) = why {
            // Not asked again in this round; the next round tries a renewal again.
            self.unusable_until = Some(Instant::now() + Duration::from_secs(1));
            return missing.first().then(|| {
                Event::Fault(format!("EC2: {}; EC2 is not used until they are renewed (tried each round)", missing.why))
            });
        }
        self.unusable_until = Some(Instant::now() + UNUSABLE_FOR);
        Some(Event::Fault(format!(
            "EC2 {}: {why}; not used for {} min, other regions are",
            self.region(),
            UNUSABLE_FOR.as_secs() / 60
        )))
    }

    /// Every instance with the pool's tag, whatever its state.
    pub fn describe(&self) -> Result<Vec<Instance>, Error> {
        let tag = format!("tag:{}", self.tag.0);
        self.client.describe(&[(&tag, &[&self.tag.1])])
    }

    /// The agent URL of an instance: its `odseed:agent-url` tag, else its public IP and
    /// `agent_port` over TLS (plain HTTP only if the pool says `plain_http`).
    pub fn agent_url(&self, i: &Instance) -> Option<String> {
        let scheme = if self.plain_http { "http" } else { "https" };
        i.tag(URL_TAG)
            .map(str::to_string)
            .or_else(|| i.public_ip.as_ref().map(|ip| format!("{scheme}://{ip}:{}", self.agent_port)))
    }

    /// A client of an instance's agent at `url`, if the token may be sent there (see
    /// [`crate::config::check_transport`]).
    pub fn client(&self, connect: &dyn Connect, url: &str, timeout: Duration) -> Result<Box<dyn Agent>, String> {
        crate::config::check_transport(url, self.pin, self.plain_http)
            .map_err(|why| format!("its agent URL {url:?} {why}"))?;
        Ok(connect.connect(url, &self.token, Trust { pin: self.pin, plain_http: self.plain_http }, timeout))
    }
}

/// Every pool, the limits, and the instance time used.
pub struct Fleet {
    pub pools: Vec<Ec2Pool>,
    pub max_instances: u32,
    pub boot_timeout: Duration,
    /// Instance time per region, counted from StartInstances to StopInstances.
    pub usage: BTreeMap<String, Duration>,
    /// What each instance this run stopped cost.
    pub bills: Vec<Bill>,
    /// Instances this run started and could not stop (yet).
    pub stranded: Vec<Started>,
    /// The run's `max_time`: no instance is waited for past it.
    pub deadline: Option<Instant>,
    /// How agents are reached, boards' and instances' alike.
    pub connect: Arc<dyn Connect>,
    /// The download cap (kB/s, 0: none) set on each instance engaged (`odseed stage`).
    pub download_kbps: u32,
    /// What the pools sign with, when there are pools.
    pub credentials: Option<Arc<Provider>>,
}

impl Fleet {
    /// No EC2.
    pub fn none() -> Fleet {
        Fleet {
            pools: Vec::new(),
            max_instances: 0,
            boot_timeout: Duration::ZERO,
            usage: BTreeMap::new(),
            bills: Vec::new(),
            stranded: Vec::new(),
            deadline: None,
            connect: Arc::new(Http),
            download_kbps: 0,
            credentials: None,
        }
    }

    /// The pools of `[ec2]`, with credentials and endpoints found the AWS way.
    pub fn from_config(cfg: Option<&Ec2Config>) -> Result<Fleet, crate::error::Error> {
        let Some(cfg) = cfg else { return Ok(Fleet::none()) };
        if cfg.pools.is_empty() {
            // Where `odseed ec2 provision` starts from: an endpoint or profile, no region yet.
            log::warn!("`[ec2]` has no `[[ec2.pool]]`: no EC2 helpers (`odseed ec2 provision` makes one)");
        }
        let env = Env::process();
        if cfg.pools.is_empty() {
            return Ok(Fleet::none());
        }
        let creds = Provider::load(env.clone(), cfg.profile.as_deref(), cfg.endpoint_url.as_deref())
            .map_err(crate::error::Error::Config)?;
        if let Some((source, expires)) = creds.source() {
            log::info!("AWS credentials from {source}{}", crate::ec2::credentials::expiry_text(expires));
        }
        let mut pools = Vec::new();
        for p in &cfg.pools {
            let endpoint = credentials::endpoint(&env, cfg.endpoint_url.as_deref(), &p.region)
                .map_err(crate::error::Error::Config)?;
            let (k, v) = p.tag_pair();
            pools.push(Ec2Pool {
                client: Box::new(Ec2::new(
                    &p.region,
                    &endpoint,
                    creds.clone(),
                    Duration::from_secs(cfg.request_timeout),
                )),
                tag: (k.into(), v.into()),
                agent_port: p.agent_port,
                token: p.token.clone(),
                token_file: p.token_file.clone(),
                pin: p.cert_sha256,
                plain_http: p.plain_http,
                instances: Vec::new(),
                unusable_until: None,
                failed: Vec::new(),
                prices: p.prices(),
                upload_kbps: p.upload_kbps,
            });
        }
        Ok(Fleet {
            pools,
            max_instances: cfg.max_instances,
            boot_timeout: Duration::from_secs(cfg.boot_timeout),
            usage: BTreeMap::new(),
            bills: Vec::new(),
            stranded: Vec::new(),
            deadline: None,
            connect: Arc::new(Http),
            download_kbps: 0,
            credentials: Some(creds),
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
                    events.extend(p.set_aside(&e));
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
                let free = |i: &&Instance| {
                    i.state == InstanceState::Stopped && !taken.contains(&i.id) && !p.failed.contains(&i.id)
                };
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

    /// Counts what `s` used until now, when it is stopped.
    pub(super) fn charge(&mut self, s: &Started) {
        let bill = self.bill(s);
        *self.usage.entry(bill.region.clone()).or_default() += s.started.elapsed();
        self.bills.push(bill);
    }

    /// What `s` has cost so far.
    pub fn bill(&self, s: &Started) -> Bill {
        let p = &self.pools[s.pool];
        let seconds = s.started.elapsed().as_secs_f64();
        let ipv4_seconds = if s.meter.public_ip { seconds } else { 0.0 };
        let used = Use { seconds, ipv4_seconds, bytes_out: s.meter.bytes_out() };
        let dollars = used.dollars(&p.prices, s.meter.per_hour);
        let egress = Use { bytes_out: used.bytes_out, ..Use::default() }.dollars(&p.prices, 0.0);
        Bill { id: s.id.clone(), region: p.region().to_string(), used, dollars, egress }
    }

    /// A meter for an instance of pool `p` about to start: its price by its type, and a public
    /// address until EC2 says otherwise.
    pub(super) fn meter(&self, p: usize, id: &str) -> Meter {
        let pool = &self.pools[p];
        let kind = pool.instances.iter().find(|i| i.id == id).and_then(|i| i.instance_type.as_deref());
        let (per_hour, known) = pool.prices.per_hour(kind);
        if !known {
            log::warn!(
                "instance {id}: the price of its type {} is not known; counted at ${per_hour}/h ([[ec2.pool]] instance_per_hour sets it)",
                kind.unwrap_or("(not said)")
            );
        }
        Meter { per_hour, public_ip: true, ..Meter::default() }
    }
}

/// Stops `ids` and waits until EC2 says none of them runs (stopping, stopped, or gone).
pub fn stop_and_wait(client: &dyn Api, ids: &[String]) -> Result<(), Error> {
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        let last = match client.stop(ids) {
            Ok(list) => {
                if ids.iter().all(|id| list.iter().any(|i| &i.id == id && i.state.is_down())) {
                    return Ok(());
                }
                let states: Vec<String> = list.iter().map(|i| format!("{} is {}", i.id, i.state)).collect();
                Error::BadAnswer(format!("not stopping: {}", states.join(", ")))
            }
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidInstanceID.NotFound")) => return Ok(()),
            // Pending (not stoppable yet), or already on its way down: ask which.
            Err(e) if e.code() == Some("IncorrectInstanceState") => {
                let filter = [("instance-id", &ids.iter().map(String::as_str).collect::<Vec<_>>()[..])];
                if client.describe(&filter).is_ok_and(|list| list.iter().all(|i| i.state.is_down())) {
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
    pub(super) pool: usize,
    pub id: String,
    pub(super) started: Instant,
    /// The torrent it was started for (its ledger entry's).
    pub(super) hash: odseed_proto::InfoHash,
    pub(super) meter: Meter,
}
