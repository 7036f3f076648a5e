//! One torrent as Transmission's `torrent-get` reports it, typed: the fields odseed reads (each
//! `None` unless asked for) and the status codes (rpc-spec, `tr_torrent_activity`).

use crate::InfoHash;
use serde_json::Value;

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

/// One `torrent-get` entry, read through typed accessors. Each gives `None` unless its field was
/// asked for (by its RPC name, e.g. `percentDone`) and Transmission sent it with the type the spec
/// gives it. The entry is kept as JSON and read on access, which keeps the agent's binary small.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TorrentInfo(Value);

impl TorrentInfo {
    /// One entry of `torrent-get`'s `torrents` list.
    pub fn from_json(v: Value) -> TorrentInfo {
        TorrentInfo(v)
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn uint(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }

    /// The info hash (`hashString`, in whatever case Transmission wrote it).
    pub fn hash(&self) -> Option<InfoHash> {
        self.text("hashString").and_then(|s| InfoHash::from_hex_any_case(s).ok())
    }

    /// `status`, if known.
    pub fn status(&self) -> Option<Status> {
        self.0.get("status").and_then(Value::as_i64).and_then(Status::from_code)
    }

    pub fn name(&self) -> Option<&str> {
        self.text("name")
    }

    /// `percentDone`, 0.0 to 1.0.
    pub fn percent_done(&self) -> Option<f64> {
        self.0.get("percentDone").and_then(Value::as_f64)
    }

    pub fn peers_connected(&self) -> Option<u64> {
        self.uint("peersConnected")
    }

    pub fn peers_getting_from_us(&self) -> Option<u64> {
        self.uint("peersGettingFromUs")
    }

    /// The leechers connected now (`peers` whose `progress` is below 1): a crowd shows here as soon
    /// as it connects, before the tracker is scraped again and before it is unchoked.
    pub fn leechers_connected(&self) -> Option<u64> {
        let peers = self.0.get("peers")?.as_array()?;
        Some(peers.iter().filter(|p| p.get("progress").and_then(Value::as_f64).is_some_and(|x| x < 1.0)).count() as u64)
    }

    /// The most leechers this entry shows: connected, or getting from us.
    pub fn local_leechers(&self) -> Option<u64> {
        match (self.leechers_connected(), self.peers_getting_from_us()) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
        }
    }

    /// `rateUpload`, bytes per second.
    pub fn rate_upload(&self) -> Option<u64> {
        self.uint("rateUpload")
    }

    /// `haveValid`: bytes of pieces it holds and has checked.
    pub fn have_valid(&self) -> Option<u64> {
        self.uint("haveValid")
    }

    pub fn uploaded_ever(&self) -> Option<u64> {
        self.uint("uploadedEver")
    }

    /// `error`: 0 none, 1 and 2 the tracker's, [`LOCAL_ERROR`] a local one.
    pub fn error(&self) -> Option<i64> {
        self.0.get("error").and_then(Value::as_i64)
    }

    pub fn error_string(&self) -> Option<&str> {
        self.text("errorString")
    }

    /// `torrentFile`: Transmission's own copy of the .torrent file.
    pub fn torrent_file(&self) -> Option<&str> {
        self.text("torrentFile")
    }

    /// `totalSize`, bytes.
    pub fn total_size(&self) -> Option<u64> {
        self.uint("totalSize")
    }

    /// `labels` (Transmission 3.00 and later); empty if not asked for or not sent.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.get("labels").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
    }

    /// The announce URLs of `trackers`, in Transmission's order.
    pub fn announce_urls(&self) -> impl Iterator<Item = &str> {
        let list = self.0.get("trackers").and_then(Value::as_array).into_iter().flatten();
        list.filter_map(|t| t.get("announce").and_then(Value::as_str))
    }

    /// `trackerStats`: (seeders, leechers) of each tracker that has scraped (a count of -1 means
    /// not yet), and whether its last announce succeeded.
    fn trackers(&self) -> impl Iterator<Item = &Value> {
        self.0.get("trackerStats").and_then(Value::as_array).into_iter().flatten()
    }

    /// The highest counts among the trackers that have scraped, if any has.
    pub fn tracker_counts(&self) -> Option<(u32, u32)> {
        let count = |t: &Value, k: &str| t.get(k).and_then(Value::as_i64).and_then(|n| u32::try_from(n).ok());
        let valid = self.trackers().filter_map(|t| Some((count(t, "seederCount")?, count(t, "leecherCount")?)));
        valid.reduce(|a, b| (a.0.max(b.0), a.1.max(b.1)))
    }

    /// True once an announce to some tracker succeeded.
    pub fn announced(&self) -> bool {
        self.trackers().any(|t| t.get("lastAnnounceSucceeded").and_then(Value::as_bool) == Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(v: Value) -> TorrentInfo {
        TorrentInfo::from_json(v)
    }

    #[test]
    fn reads_what_was_asked_for() {
        let t = info(json!({"hashString": "AB".repeat(20), "status": 2, "percentDone": 0.5, "other": [1]}));
        assert_eq!(t.hash(), Some(InfoHash::from_bytes([0xab; 20])));
        assert_eq!((t.status(), t.percent_done(), t.name()), (Some(Status::Verifying), Some(0.5), None));
        assert!(t.status().is_some_and(Status::verifying));
        assert_eq!(info(json!({"status": 9})).status(), None);
        let wrong = info(json!({"status": "six", "percentDone": "half"}));
        assert_eq!((wrong.status(), wrong.percent_done()), (None, None));
    }

    #[test]
    fn local_leechers_are_the_peers_not_yet_complete() {
        let t = info(
            json!({"peersGettingFromUs": 1, "peers": [{"progress": 0.0}, {"progress": 1.0}, {"progress": 0.5}, {}]}),
        );
        assert_eq!((t.leechers_connected(), t.local_leechers()), (Some(2), Some(2)));
        assert_eq!(info(json!({"peersGettingFromUs": 3, "peers": []})).local_leechers(), Some(3));
        assert_eq!(info(json!({})).local_leechers(), None);
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
