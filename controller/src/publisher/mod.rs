//! The publisher's own BitTorrent client, as odseed asks it: the torrents it has (`watch`'s
//! catalogue, a torrent found by name or info hash), and the peers connected to each (a leecher
//! counts before the tracker knows it; a crowd is seen between rounds). One trait, one module per
//! client; every answer is bounded by the client module.

pub mod deluge;
mod http;
pub mod qbittorrent;
pub mod transmission;

use crate::config::{ClientConfig, ClientKind, Config};
use odseed_proto::InfoHash;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The client's copy of a torrent is read up to this size, as a `.torrent` given on the command
/// line is (the agents take 10 MiB by default).
pub const MAX_TORRENT_BYTES: u64 = 64 << 20;

/// One torrent as the publisher's client has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub hash: InfoHash,
    pub name: String,
    pub size: u64,
    /// Complete, and seeding or queued to.
    pub seeding: bool,
    /// How the client groups it: Transmission's labels, qBittorrent's category and tags, Deluge's
    /// label.
    pub groups: Vec<String>,
    /// Its announce URLs, in the client's order.
    pub trackers: Vec<String>,
    /// The client's copy of the `.torrent` on this machine, if it says where (qBittorrent gives
    /// its copy through [`Publisher::torrent`] instead).
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
    /// Its copy of the torrent `hash`, whose [`Entry::file`] is `file`: by default that file,
    /// read here (bounded).
    fn torrent(&self, hash: &InfoHash, file: Option<&Path>) -> Result<Vec<u8>, String> {
        let Some(file) = file else {
            return Err(format!("{} does not say where its copy of {hash} is", self.name()));
        };
        odseed_proto::fsutil::read_bounded(file, MAX_TORRENT_BYTES)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))
    }
}

/// The publisher's client the config names (`[client]`, or `[transmission]`), if any.
pub fn from_config(cfg: &Config) -> Option<Arc<dyn Publisher>> {
    cfg.client.as_ref().map(from_client_config)
}

pub fn from_client_config(c: &ClientConfig) -> Arc<dyn Publisher> {
    let creds = c.username.as_deref().map(|u| (u, c.password.as_deref().unwrap_or("")));
    match c.kind {
        ClientKind::Transmission => Arc::new(transmission::Transmission::new(&c.url, creds)),
        ClientKind::Qbittorrent => Arc::new(qbittorrent::Qbittorrent::new(&c.url, creds)),
        ClientKind::Deluge => {
            let dir = c.state_dir.clone().unwrap_or_else(|| crate::xdg::home().join(".config/deluge/state"));
            Arc::new(deluge::Deluge::new(&c.url, c.password.as_deref(), dir))
        }
    }
}
