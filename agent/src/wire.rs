//! The agent HTTP API v1's wire types, shared by the agent (server) and the controller (client).

use crate::infohash::InfoHash;
use serde::{Deserialize, Serialize};

/// One seeding session as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Torrent {
    pub info_hash: InfoHash,
    pub name: String,
    pub state: TorrentState,
    /// 0.0 to 1.0.
    pub percent_done: f64,
    pub peers: u32,
    pub upload_bps: u64,
    pub uploaded_bytes: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TorrentState {
    Queued,
    Verifying,
    Downloading,
    Seeding,
    Stopped,
    Error,
}

impl TorrentState {
    pub const ALL: [TorrentState; 6] = [
        TorrentState::Queued,
        TorrentState::Verifying,
        TorrentState::Downloading,
        TorrentState::Seeding,
        TorrentState::Stopped,
        TorrentState::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TorrentState::Queued => "queued",
            TorrentState::Verifying => "verifying",
            TorrentState::Downloading => "downloading",
            TorrentState::Seeding => "seeding",
            TorrentState::Stopped => "stopped",
            TorrentState::Error => "error",
        }
    }
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub daemon: DaemonState,
    pub torrents: usize,
}

/// The agent's transmission-daemon, as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonState {
    Stopped,
    Starting,
    Running,
    Backoff,
}

/// Every error answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}
