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

/// `GET /v1/usage`: what this helper has done, as counters that never go down (kept across
/// restarts and reboots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Payload its transmission-daemon uploaded to peers.
    pub uploaded_bytes: u64,
    /// Bytes that left the machine through its interfaces other than loopback (what a cloud bills:
    /// every IP byte out, protocol overhead and the API's answers included).
    pub sent_bytes: u64,
}

/// `GET` and `PUT /v1/limits`: what the controller caps on this helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The daemon's upload cap for all its torrents together, in Transmission's kB/s (1000 bytes/s);
    /// 0: none.
    pub upload_kbps: u32,
    /// The daemon's download cap, the same way (staging keeps a helper from taking the origin's
    /// upload from its leechers); 0: none. Absent: none (an older controller).
    #[serde(default)]
    pub download_kbps: u32,
}

/// `GET /v1/content`: the content this agent holds, seeded or released, and its bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    /// The agent's `max_content_bytes`: content seeded (counted whole) and released (as held).
    pub max_content_bytes: u64,
    /// The agent's `min_free_bytes`: what it leaves free on the data dir's file system.
    pub min_free_bytes: u64,
    /// What the torrents below take now, on disk.
    pub used_bytes: u64,
    /// Free on the data dir's file system now.
    pub free_bytes: u64,
    pub torrents: Vec<Held>,
}

/// One torrent's content on an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub info_hash: InfoHash,
    pub name: String,
    /// The whole content's size.
    pub bytes: u64,
    /// Of it, pieces held and checked.
    pub have_bytes: u64,
    /// `have_bytes / bytes`, 0.0 to 1.0.
    pub percent_done: f64,
    /// Seeded now (else released: kept until room is needed).
    pub seeding: bool,
    /// When it was last seeded, in seconds since the Unix epoch.
    pub last_used: u64,
}

impl Held {
    /// Whether it holds all of it.
    pub fn complete(&self) -> bool {
        self.bytes > 0 && self.have_bytes >= self.bytes
    }
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub daemon: DaemonState,
    pub torrents: usize,
    /// The transmission-daemon's version ("3.00 (bb6b5a062e)"), once known; absent from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_version: Option<String>,
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

impl DaemonState {
    /// The state as it is on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonState::Stopped => "stopped",
            DaemonState::Starting => "starting",
            DaemonState::Running => "running",
            DaemonState::Backoff => "backoff",
        }
    }
}

/// Every error answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

/// The machine-readable reason of an error answer, each with the one HTTP status it is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 401: no `Authorization: Bearer`, or the wrong token.
    Unauthorized,
    /// 404: no such route, or a torrent the agent does not seed.
    NotFound,
    /// 405: the route exists with other methods (the answer has `Allow`).
    MethodNotAllowed,
    /// 413: the body is over the agent's `max_torrent_bytes`.
    TooLarge,
    /// 400: the path's info hash is not 40 lowercase hex digits.
    BadInfoHash,
    /// 400: the body could not be read.
    BadBody,
    /// 400: the body is not a usable .torrent.
    BadTorrent,
    /// 400: a path in the torrent would leave the data dir.
    UnsafePath,
    /// 400: the body's info hash is not the path's.
    HashMismatch,
    /// 500: the agent could not persist the change.
    StateWrite,
    /// 400: the request itself is malformed (its head, or ambiguous framing).
    BadRequest,
    /// 408: the request did not arrive in time.
    Timeout,
    /// 409: the torrent's files would overlap those of a torrent the agent already seeds.
    FilesOverlap,
    /// 411: a body sent without `Content-Length`.
    LengthRequired,
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed,
    /// 431: the request head is too large or has too many header lines.
    HeadTooLarge,
    /// 505: an HTTP version other than 1.0 and 1.1.
    HttpVersion,
    /// 507: the agent seeds as many torrents as it may (`max_torrents`).
    TooManyTorrents,
    /// 507: the torrent's content does not fit the agent's `max_content_bytes` or `min_free_bytes`,
    /// even with every released torrent's content evicted.
    NoSpace,
    /// 400: a torrent this agent's daemon cannot seed (v2-only; hybrid v1+v2 on Transmission 3).
    UnsupportedTorrent,
    /// A code this side does not know (a newer agent's); only ever read, never sent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status sent with this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::TooLarge => 413,
            ErrorCode::BadInfoHash
            | ErrorCode::BadBody
            | ErrorCode::BadTorrent
            | ErrorCode::UnsafePath
            | ErrorCode::HashMismatch
            | ErrorCode::UnsupportedTorrent
            | ErrorCode::BadRequest => 400,
            ErrorCode::Timeout => 408,
            ErrorCode::FilesOverlap => 409,
            ErrorCode::LengthRequired => 411,
            ErrorCode::ExpectationFailed => 417,
            ErrorCode::HeadTooLarge => 431,
            ErrorCode::HttpVersion => 505,
            ErrorCode::TooManyTorrents | ErrorCode::NoSpace => 507,
            ErrorCode::StateWrite | ErrorCode::Unknown => 500,
        }
    }

    /// The code as it is on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::BadInfoHash => "bad_info_hash",
            ErrorCode::BadBody => "bad_body",
            ErrorCode::BadTorrent => "bad_torrent",
            ErrorCode::UnsafePath => "unsafe_path",
            ErrorCode::HashMismatch => "hash_mismatch",
            ErrorCode::StateWrite => "state_write",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Timeout => "timeout",
            ErrorCode::FilesOverlap => "files_overlap",
            ErrorCode::LengthRequired => "length_required",
            ErrorCode::ExpectationFailed => "expectation_failed",
            ErrorCode::HeadTooLarge => "head_too_large",
            ErrorCode::HttpVersion => "http_version",
            ErrorCode::TooManyTorrents => "too_many_torrents",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::UnsupportedTorrent => "unsupported_torrent",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialise_as_their_names() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::MethodNotAllowed,
            ErrorCode::HashMismatch,
            ErrorCode::StateWrite,
            ErrorCode::HeadTooLarge,
            ErrorCode::TooManyTorrents,
            ErrorCode::FilesOverlap,
            ErrorCode::UnsupportedTorrent,
        ] {
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{code}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&format!("\"{code}\"")).unwrap(), code);
        }
        assert_eq!(serde_json::from_str::<ErrorCode>("\"from_the_future\"").unwrap(), ErrorCode::Unknown);
    }
}
