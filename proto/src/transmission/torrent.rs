//! One torrent as Transmission's `torrent-get` reports it, typed: the fields odseed reads (each
//! `None` unless asked for) and the status codes (rpc-spec, `tr_torrent_activity`).

use crate::InfoHash;
use serde::Deserialize;

/// What Transmission is doing with a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Stopped,
    QueuedToVerify,
    Verifying,
    QueuedToDownload,
    Downloading,
    QueuedToSeed,
    Seeding,
}

impl Status {
    /// The status of RPC code `code` (0 to 6); `None` for a code this version does not know.
    pub fn from_code(code: i64) -> Option<Status> {
        Some(match code {
            0 => Status::Stopped,
            1 => Status::QueuedToVerify,
            2 => Status::Verifying,
            3 => Status::QueuedToDownload,
            4 => Status::Downloading,
            5 => Status::QueuedToSeed,
            6 => Status::Seeding,
            _ => return None,
        })
    }

    /// Queued for a verification or in one.
    pub fn verifying(self) -> bool {
        matches!(self, Status::QueuedToVerify | Status::Verifying)
    }
}

/// Transmission's `error` 3: a local error (disk, data). 1 and 2 are the tracker's.
pub const LOCAL_ERROR: i64 = 3;

/// One `torrent-get` entry. A field is `None` unless it was asked for (by its RPC name, e.g.
/// `percentDone`) and Transmission sent it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TorrentInfo {
    hash_string: Option<String>,
    status: Option<i64>,
    pub name: Option<String>,
    /// 0.0 to 1.0.
    pub percent_done: Option<f64>,
    pub peers_connected: Option<u64>,
    pub peers_getting_from_us: Option<u64>,
    /// Bytes per second.
    pub rate_upload: Option<u64>,
    pub uploaded_ever: Option<u64>,
    pub error: Option<i64>,
    pub error_string: Option<String>,
    /// Transmission's own copy of the .torrent file.
    pub torrent_file: Option<String>,
    pub tracker_stats: Option<Vec<TrackerStat>>,
}

/// One tracker of a torrent, as Transmission last heard from it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrackerStat {
    /// -1 until a scrape succeeded.
    pub seeder_count: i64,
    pub leecher_count: i64,
    pub last_announce_succeeded: bool,
}

impl TorrentInfo {
    /// The info hash (`hashString`, in whatever case Transmission wrote it).
    pub fn hash(&self) -> Option<InfoHash> {
        self.hash_string.as_deref().and_then(|s| InfoHash::from_hex_any_case(s).ok())
    }

    /// The status, if asked for and known.
    pub fn status(&self) -> Option<Status> {
        self.status.and_then(Status::from_code)
    }

    /// The highest counts among the trackers that have scraped, if any has.
    pub fn tracker_counts(&self) -> Option<(u32, u32)> {
        let valid = self
            .tracker_stats
            .iter()
            .flatten()
            .filter_map(|t| Some((u32::try_from(t.seeder_count).ok()?, u32::try_from(t.leecher_count).ok()?)));
        valid.reduce(|a, b| (a.0.max(b.0), a.1.max(b.1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(v: serde_json::Value) -> TorrentInfo {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reads_what_was_asked_for() {
        let t = info(json!({"hashString": "AB".repeat(20), "status": 2, "percentDone": 0.5, "other": [1]}));
        assert_eq!(t.hash(), Some(InfoHash::from_bytes([0xab; 20])));
        assert_eq!((t.status(), t.percent_done, t.name.as_deref()), (Some(Status::Verifying), Some(0.5), None));
        assert!(t.status().is_some_and(Status::verifying));
        assert_eq!(info(json!({"status": 9})).status(), None);
        assert!(serde_json::from_value::<TorrentInfo>(json!({"status": "six"})).is_err());
    }

    #[test]
    fn tracker_counts_use_only_valid_scrapes() {
        let t = info(json!({"trackerStats": [
            {"seederCount": -1, "leecherCount": -1}, {"seederCount": 3, "leecherCount": 2},
            {"seederCount": 1, "leecherCount": 7}]}));
        assert_eq!(t.tracker_counts(), Some((3, 7)));
        assert_eq!(info(json!({"trackerStats": [{"seederCount": -1, "leecherCount": -1}]})).tracker_counts(), None);
        assert_eq!(info(json!({})).tracker_counts(), None);
    }
}
