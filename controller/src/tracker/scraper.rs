//! Scraping every tracker of a torrent, over [`super::http`] or [`super::udp`]: batches, timeouts,
//! retries with backoff, and the best counts over every tracker that answered.

use super::scrape::{Scrape, TrackerError};
use super::{http, udp};
use odseed_proto::InfoHash;
use std::collections::HashMap;
use std::time::Duration;

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Scraper {
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts after the first; each waits twice as long as the one before.
    pub retries: u32,
}

impl Default for Scraper {
    fn default() -> Self {
        Scraper { timeout: Duration::from_secs(5), retries: 2 }
    }
}

impl Scraper {
    /// Counts for `hashes` from one tracker (hashes it does not know are absent from the map).
    pub fn scrape(&self, url: &str, hashes: &[InfoHash]) -> Result<HashMap<InfoHash, Scrape>, TrackerError> {
        let mut out = HashMap::new();
        let batch = if url.starts_with("udp://") { udp::MAX_PER_REQUEST } else { http::MAX_PER_REQUEST };
        for chunk in hashes.chunks(batch) {
            out.extend(self.with_retries(url, chunk)?);
        }
        Ok(out)
    }

    fn with_retries(&self, url: &str, hashes: &[InfoHash]) -> Result<HashMap<InfoHash, Scrape>, TrackerError> {
        let mut timeout = self.timeout;
        let mut attempt = 0;
        loop {
            let result = if url.starts_with("udp://") {
                udp::scrape(url, hashes, timeout)
            } else if url.starts_with("http://") || url.starts_with("https://") {
                http::scrape(url, hashes, timeout)
            } else {
                Err(TrackerError::Unsupported { url: url.into() })
            };
            match result {
                Err(TrackerError::Unreachable { .. }) if attempt < self.retries => {
                    log::debug!("tracker {}: no answer, retrying", super::scrape::shown(url));
                    attempt += 1;
                    std::thread::sleep(timeout / 4);
                    timeout *= 2;
                }
                other => return other,
            }
        }
    }

    /// Scrapes every tracker; for each hash, the highest seeders and leechers any of them reported.
    /// The errors of the trackers that did not answer come back beside it.
    pub fn best(&self, trackers: &[String], hashes: &[InfoHash]) -> (HashMap<InfoHash, Scrape>, Vec<TrackerError>) {
        let mut best: HashMap<InfoHash, Scrape> = HashMap::new();
        let mut errors = Vec::new();
        for url in trackers {
            match self.scrape(url, hashes) {
                Ok(counts) => {
                    for (h, s) in counts {
                        let b = best.entry(h).or_default();
                        b.seeders = b.seeders.max(s.seeders);
                        b.leechers = b.leechers.max(s.leechers);
                        b.downloaded = b.downloaded.max(s.downloaded);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        (best, errors)
    }
}
