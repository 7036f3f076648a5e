//! Scraping trackers directly: HTTP (BEP 48) and UDP (BEP 15), several info hashes per request,
//! timeouts, retries with backoff, and the best counts over every tracker that answered.

pub mod http;
pub mod udp;

use odseed_agent::InfoHash;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// One torrent's counts as a tracker reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scrape {
    pub seeders: u32,
    pub leechers: u32,
    pub downloaded: u32,
}

/// Why a tracker gave no counts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackerError {
    /// No answer (refused, timed out) after every retry.
    Unreachable { url: String, detail: String },
    /// The tracker answered with a failure reason.
    Failure { url: String, reason: String },
    /// The answer is not what the BEP describes.
    BadAnswer { url: String, detail: String },
    /// This URL cannot be scraped (not http(s)/udp, or no `announce` in its path).
    Unsupported { url: String },
}

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackerError::Unreachable { url, detail } => write!(f, "tracker {url} unreachable: {detail}"),
            TrackerError::Failure { url, reason } => write!(f, "tracker {url} refused the scrape: {reason}"),
            TrackerError::BadAnswer { url, detail } => write!(f, "tracker {url} gave a malformed answer: {detail}"),
            TrackerError::Unsupported { url } => write!(f, "tracker {url} cannot be scraped"),
        }
    }
}

impl std::error::Error for TrackerError {}

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
                    log::debug!("tracker {url}: no answer, retrying");
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
