//! The narrow view helpers have of an agent ([`Agent`]: the calls of its API odseed makes) and
//! of how one is reached ([`Connect`]). The real one is the agent client over HTTP(S)
//! ([`Http`]); the unit tests of the pool and the loop give fakes that answer from memory.

use odseed_proto::agent_client::{AgentClient, Error, Trust};
use odseed_proto::wire::{Content, Health, Limits, Torrent, Usage};
use odseed_proto::InfoHash;
use std::time::Duration;

/// An agent's API, as the controller uses it.
pub trait Agent: Send + Sync {
    /// Its base URL.
    fn base(&self) -> &str;
    /// What is trusted on the way to it.
    fn trust(&self) -> Trust;
    fn health(&self) -> Result<Health, Error>;
    fn list(&self) -> Result<Vec<Torrent>, Error>;
    /// What it uploaded and sent, ever.
    fn usage(&self) -> Result<Usage, Error>;
    /// Its caps now.
    fn limits(&self) -> Result<Limits, Error>;
    /// Caps its upload and download.
    fn set_limits(&self, limits: &Limits) -> Result<Limits, Error>;
    /// The session for `hash`, or `None` if it does not seed it.
    fn get(&self, hash: &InfoHash) -> Result<Option<Torrent>, Error>;
    /// Gives it the torrent `metainfo`; true if it is new there.
    fn put(&self, hash: &InfoHash, metainfo: &[u8]) -> Result<(Torrent, bool), Error>;
    /// Takes `hash` away; false if it did not seed it.
    fn delete(&self, hash: &InfoHash) -> Result<bool, Error>;
    /// The content it holds, seeded or not.
    fn content(&self) -> Result<Content, Error>;
}

/// How an agent is reached from its URL and token.
pub trait Connect: Send + Sync {
    fn connect(&self, url: &str, token: &str, trust: Trust, timeout: Duration) -> Box<dyn Agent>;
}

/// Agents over HTTP(S), through [`AgentClient`].
pub struct Http;

impl Connect for Http {
    fn connect(&self, url: &str, token: &str, trust: Trust, timeout: Duration) -> Box<dyn Agent> {
        Box::new(AgentClient::with_trust(url, token, trust, timeout))
    }
}

impl Agent for AgentClient {
    fn base(&self) -> &str {
        AgentClient::base(self)
    }
    fn trust(&self) -> Trust {
        AgentClient::trust(self)
    }
    fn health(&self) -> Result<Health, Error> {
        AgentClient::health(self)
    }
    fn list(&self) -> Result<Vec<Torrent>, Error> {
        AgentClient::list(self)
    }
    fn usage(&self) -> Result<Usage, Error> {
        AgentClient::usage(self)
    }
    fn limits(&self) -> Result<Limits, Error> {
        AgentClient::limits(self)
    }
    fn set_limits(&self, limits: &Limits) -> Result<Limits, Error> {
        AgentClient::set_limits(self, limits)
    }
    fn get(&self, hash: &InfoHash) -> Result<Option<Torrent>, Error> {
        AgentClient::get(self, hash)
    }
    fn put(&self, hash: &InfoHash, metainfo: &[u8]) -> Result<(Torrent, bool), Error> {
        AgentClient::put(self, hash, metainfo)
    }
    fn delete(&self, hash: &InfoHash) -> Result<bool, Error> {
        AgentClient::delete(self, hash)
    }
    fn content(&self) -> Result<Content, Error> {
        AgentClient::content(self)
    }
}
