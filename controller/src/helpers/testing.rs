//! Fakes for unit tests of odseed's own state logic: agents and an EC2 region that answer from
//! memory, whose answers a test changes (an agent goes down, EC2 refuses). They add to the tests
//! against real agents, daemons and moto; they replace none.

use super::agent::{Agent, Connect};
use crate::ec2::{Api, Error as Ec2Error, Instance, InstanceState, StartFailure};
use odseed_proto::agent_client::{Error, Trust};
use odseed_proto::wire::{Content, DaemonState, ErrorCode, Health, Held, Limits, Torrent, TorrentState, Usage};
use odseed_proto::InfoHash;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A session in `state` at `done` (0 to 1).
pub fn torrent(state: TorrentState, done: f64) -> Torrent {
    Torrent {
        info_hash: InfoHash::from_bytes([0; 20]),
        name: "t".into(),
        state,
        percent_done: done,
        peers: 0,
        upload_bps: 0,
        uploaded_bytes: 0,
        error: None,
    }
}

/// What a fake agent holds and how it answers.
#[derive(Debug, Default)]
pub struct AgentState {
    pub down: bool,
    /// Every PUT is refused with this code.
    pub refuse: Option<ErrorCode>,
    /// The state a new session starts in (default: seeding).
    pub starts: Option<TorrentState>,
    pub torrents: BTreeMap<InfoHash, Torrent>,
    /// "PUT", "DELETE", ... in order.
    pub calls: Vec<String>,
    /// What `/v1/usage` says.
    pub usage: Usage,
    /// What `/v1/limits` was last set to.
    pub limits: Option<Limits>,
    /// What `/v1/content` says it holds of each torrent (None: it answers 404, as an old agent).
    pub holds: Option<BTreeMap<InfoHash, f64>>,
}

/// An agent in memory; clones share it.
#[derive(Clone, Default)]
pub struct FakeAgent {
    pub url: String,
    pub state: Arc<Mutex<AgentState>>,
}

impl FakeAgent {
    fn answer<T>(&self, call: &str, f: impl FnOnce(&mut AgentState) -> T) -> Result<T, Error> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(call.into());
        if s.down {
            return Err(Error::Unreachable { url: self.url.clone(), detail: "refused".into(), sent: false });
        }
        Ok(f(&mut s))
    }
}

impl Agent for FakeAgent {
    fn base(&self) -> &str {
        &self.url
    }
    fn trust(&self) -> Trust {
        Trust::default()
    }
    fn health(&self) -> Result<Health, Error> {
        self.answer("HEALTH", |s| Health {
            status: "ok".into(),
            version: "fake".into(),
            daemon: DaemonState::Running,
            torrents: s.torrents.len(),
            daemon_version: Some("4.0.6".into()),
        })
    }
    fn list(&self) -> Result<Vec<Torrent>, Error> {
        self.answer("LIST", |s| s.torrents.values().cloned().collect())
    }
    fn usage(&self) -> Result<Usage, Error> {
        self.answer("USAGE", |s| s.usage)
    }
    fn limits(&self) -> Result<Limits, Error> {
        self.answer("LIMITS?", |s| s.limits.unwrap_or_default())
    }
    fn set_limits(&self, limits: &Limits) -> Result<Limits, Error> {
        self.answer("LIMITS", |s| *s.limits.insert(*limits))
    }
    fn get(&self, hash: &InfoHash) -> Result<Option<Torrent>, Error> {
        self.answer("GET", |s| s.torrents.get(hash).cloned())
    }
    fn put(&self, hash: &InfoHash, _: &[u8]) -> Result<(Torrent, bool), Error> {
        let url = self.url.clone();
        self.answer("PUT", |s| match s.refuse {
            Some(code) => Err(Error::Status { url, status: 422, code: Some(code), message: "refused".into() }),
            None => {
                let t = Torrent { info_hash: *hash, ..torrent(s.starts.unwrap_or(TorrentState::Seeding), 1.0) };
                let new = s.torrents.insert(*hash, t.clone()).is_none();
                Ok((t, new))
            }
        })?
    }
    fn delete(&self, hash: &InfoHash) -> Result<bool, Error> {
        self.answer("DELETE", |s| s.torrents.remove(hash).is_some())
    }
    /// Not in `calls`: the loop asks every board every round.
    fn content(&self) -> Result<Content, Error> {
        let s = self.state.lock().unwrap();
        let url = self.url.clone();
        match (&s.holds, s.down) {
            (_, true) => Err(Error::Unreachable { url, detail: "connection refused".into(), sent: false }),
            (None, _) => {
                Err(Error::Status { url, status: 404, code: Some(ErrorCode::NotFound), message: "no route".into() })
            }
            (Some(holds), _) => Ok(Content {
                max_content_bytes: 1 << 40,
                min_free_bytes: 0,
                used_bytes: 0,
                free_bytes: 1 << 40,
                torrents: (holds.iter())
                    .map(|(h, f)| Held {
                        info_hash: *h,
                        name: "t".into(),
                        bytes: 1000,
                        have_bytes: (f * 1000.0) as u64,
                        percent_done: *f,
                        seeding: false,
                        last_used: 0,
                    })
                    .collect(),
            }),
        }
    }
}

/// Fake agents by URL, made on first use.
#[derive(Clone, Default)]
pub struct FakeAgents {
    pub agents: Arc<Mutex<BTreeMap<String, FakeAgent>>>,
}

impl FakeAgents {
    /// The agent at `url`.
    pub fn at(&self, url: &str) -> FakeAgent {
        let mut all = self.agents.lock().unwrap();
        all.entry(url.into()).or_insert_with(|| FakeAgent { url: url.into(), ..FakeAgent::default() }).clone()
    }

    /// What the agent at `url` seeds.
    pub fn seeds(&self, url: &str) -> usize {
        self.at(url).state.lock().unwrap().torrents.len()
    }
}

impl Connect for FakeAgents {
    fn connect(&self, url: &str, _: &str, _: Trust, _: Duration) -> Box<dyn Agent> {
        Box::new(self.at(url))
    }
}

/// What a fake region holds and how it answers.
#[derive(Debug, Default)]
pub struct RegionState {
    pub instances: Vec<Instance>,
    /// StartInstances is refused with this code.
    pub refuse_start: Option<String>,
    /// "start i-1", "stop i-1", ...
    pub calls: Vec<String>,
}

/// An EC2 region in memory: instances start at once, with the agent URL tag `fake://<id>`.
#[derive(Clone, Default)]
pub struct FakeEc2 {
    pub state: Arc<Mutex<RegionState>>,
}

impl FakeEc2 {
    /// A region with `n` stopped instances tagged as helpers, `i-0`...
    pub fn with_stopped(n: usize) -> FakeEc2 {
        let ec2 = FakeEc2::default();
        ec2.state.lock().unwrap().instances = (0..n)
            .map(|k| Instance {
                id: format!("i-{k}"),
                state: InstanceState::Stopped,
                public_ip: None,
                instance_type: Some("t4g.small".into()),
                tags: vec![
                    ("odseed:role".into(), "helper".into()),
                    (super::ec2::URL_TAG.into(), format!("http://fake-{k}:5050")),
                ],
            })
            .collect();
        ec2
    }

    pub fn states(&self) -> Vec<InstanceState> {
        self.state.lock().unwrap().instances.iter().map(|i| i.state.clone()).collect()
    }

    fn set(&self, ids: &[String], to: InstanceState, call: &str) -> Vec<Instance> {
        let mut s = self.state.lock().unwrap();
        s.calls.extend(ids.iter().map(|id| format!("{call} {id}")));
        let mut changed = Vec::new();
        for i in s.instances.iter_mut().filter(|i| ids.contains(&i.id)) {
            i.state = to.clone();
            changed.push(i.clone());
        }
        changed
    }
}

impl Api for FakeEc2 {
    fn region(&self) -> &str {
        "eu-west-3"
    }
    fn endpoint(&self) -> &str {
        "fake://ec2"
    }
    fn describe(&self, filters: &[(&str, &[&str])]) -> Result<Vec<Instance>, Ec2Error> {
        let s = self.state.lock().unwrap();
        let ok = |i: &Instance| {
            filters.iter().all(|(name, values)| match name.strip_prefix("tag:") {
                Some(key) => i.tag(key).is_some_and(|v| values.contains(&v)),
                None => *name != "instance-id" || values.contains(&i.id.as_str()),
            })
        };
        Ok(s.instances.iter().filter(|i| ok(i)).cloned().collect())
    }
    fn start_checked(&self, ids: &[String]) -> Result<Vec<Instance>, StartFailure> {
        if let Some(code) = self.state.lock().unwrap().refuse_start.clone() {
            let error = Ec2Error::Aws { status: 400, code, message: "refused".into() };
            return Err(StartFailure { error, maybe_started: false });
        }
        Ok(self.set(ids, InstanceState::Running, "start"))
    }
    fn stop(&self, ids: &[String]) -> Result<Vec<Instance>, Ec2Error> {
        Ok(self.set(ids, InstanceState::Stopped, "stop"))
    }
}
