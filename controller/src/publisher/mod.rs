//! The publisher's own BitTorrent client, as odseed asks it: the torrents it has (`watch`'s
//! catalogue, a torrent found by name or info hash), and the peers connected to each (a leecher
//! counts before the tracker knows it; a crowd is seen between rounds). One trait, one module per
//! client; every answer is bounded by the client module.

pub mod transmission;

use crate::config::Config;
use odseed_proto::InfoHash;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// One torrent as the publisher's client has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub hash: InfoHash,
    pub name: String,
    pub size: u64,
    /// Complete, and seeding or queued to.
    pub seeding: bool,
    /// How the client groups it: Transmission's labels.
    pub groups: Vec<String>,
    /// Its announce URLs, in the client's order.
    pub trackers: Vec<String>,
    /// The client's copy of the `.torrent`, if it says where.
    pub file: Option<PathBuf>,
    /// Peers connected to it now.
    pub peers_connected: Option<u64>,
    /// Leechers connected to it now (or getting from it).
    pub leechers: Option<u64>,
    /// What its trackers last told the client (seeders, leechers), if any did.
    pub tracker_counts: Option<(u32, u32)>,
}

/// What odseed asks of the publisher's client.
pub trait Publisher: Send + Sync {
    /// What to call it in a message: "Transmission at URL".
    fn name(&self) -> String;
    /// Its torrents (only `hashes`, if given), with everything [`Entry`] holds.
    fn entries(&self, hashes: Option<&[InfoHash]>) -> Result<Vec<Entry>, String>;
    /// The leechers connected now, per torrent: asked every few seconds between rounds, so cheap.
    fn leechers(&self, hashes: Option<&[InfoHash]>) -> Result<HashMap<InfoHash, u32>, String>;
}

/// The publisher's client the config names (`[transmission]`), if any.
pub fn from_config(cfg: &Config) -> Option<Arc<dyn Publisher>> {
    cfg.transmission.as_ref().map(|t| {
        let creds = t.username.as_deref().map(|u| (u, t.password.as_deref().unwrap_or("")));
        Arc::new(transmission::Transmission::new(&t.url, creds)) as Arc<dyn Publisher>
    })
}
