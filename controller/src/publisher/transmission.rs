//! The publisher's Transmission, over its RPC (`torrent-get`).

use super::{Entry, Publisher};
use odseed_proto::transmission::{Client, Status, TorrentInfo};
use odseed_proto::InfoHash;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// What is asked of it about each torrent.
const FIELDS: [&str; 12] = [
    "hashString",
    "name",
    "totalSize",
    "trackers",
    "labels",
    "torrentFile",
    "status",
    "percentDone",
    "peersConnected",
    "peersGettingFromUs",
    "peers",
    "trackerStats",
];

/// What is asked between rounds.
const LEECHER_FIELDS: [&str; 3] = ["hashString", "peersGettingFromUs", "peers"];

pub struct Transmission {
    client: Client,
}

impl Transmission {
    pub fn new(url: &str, credentials: Option<(&str, &str)>) -> Transmission {
        Transmission { client: Client::new(url, credentials, Duration::from_secs(20)) }
    }
}

impl Publisher for Transmission {
    fn name(&self) -> String {
        format!("Transmission at {}", crate::ec2::credentials::redacted(self.client.url()))
    }

    fn entries(&self, hashes: Option<&[InfoHash]>) -> Result<Vec<Entry>, String> {
        let list = self.client.torrent_get(hashes, &FIELDS).map_err(|e| e.to_string())?;
        Ok(list.iter().filter_map(entry).collect())
    }

    fn leechers(&self, hashes: Option<&[InfoHash]>) -> Result<HashMap<InfoHash, u32>, String> {
        let list = self.client.torrent_get(hashes, &LEECHER_FIELDS).map_err(|e| e.to_string())?;
        let count = |t: &TorrentInfo| Some((t.hash()?, t.local_leechers()?.min(u64::from(u32::MAX)) as u32));
        Ok(list.iter().filter_map(count).collect())
    }
}

fn entry(t: &TorrentInfo) -> Option<Entry> {
    Some(Entry {
        hash: t.hash()?,
        name: t.name().unwrap_or_default().to_string(),
        size: t.total_size().unwrap_or(0),
        seeding: matches!(t.status(), Some(Status::Seeding | Status::QueuedToSeed))
            && t.percent_done().is_some_and(|p| p >= 1.0),
        groups: t.labels().map(str::to_string).collect(),
        trackers: t.announce_urls().map(str::to_string).collect(),
        file: t.torrent_file().map(PathBuf::from),
        peers_connected: t.peers_connected(),
        leechers: t.local_leechers(),
        tracker_counts: t.tracker_counts(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_from_torrent_get() {
        let t = |hash: char, status: i64, done: f64, labels: &[&str]| {
            entry(&TorrentInfo::from_json(json!({
                "hashString": hash.to_string().repeat(40), "name": format!("t{hash}"), "totalSize": 7,
                "trackers": [{"announce": "http://t/announce", "id": 0, "tier": 0}], "labels": labels,
                "torrentFile": format!("/x/{hash}.torrent"), "status": status, "percentDone": done,
                "peersConnected": 3, "peersGettingFromUs": 1, "peers": [{"progress": 0.5}, {"progress": 1.0}, {"progress": 0.1}],
                "trackerStats": [{"seederCount": 4, "leecherCount": 9, "lastAnnounceSucceeded": true}],
            })))
            .unwrap()
        };
        let a = t('a', 6, 1.0, &["odseed"]);
        assert!(a.seeding && t('b', 5, 1.0, &[]).seeding, "seeding, or queued to");
        assert!(!t('c', 4, 0.5, &[]).seeding && !t('d', 0, 1.0, &[]).seeding, "downloading, or stopped");
        assert_eq!((a.name.as_str(), a.size, a.groups.as_slice()), ("ta", 7, &["odseed".to_string()][..]));
        assert_eq!(a.trackers, ["http://t/announce"]);
        assert_eq!(a.file.as_deref(), Some(std::path::Path::new("/x/a.torrent")));
        assert_eq!((a.peers_connected, a.leechers, a.tracker_counts), (Some(3), Some(2), Some((4, 9))));
    }
}
