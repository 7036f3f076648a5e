//! What a tracker's scrape gives: one torrent's counts ([`Scrape`]), or why there are none
//! ([`TrackerError`]). Shared by the HTTP and UDP scrapers and the scraper over them.

use std::fmt;

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

impl TrackerError {
    /// The tracker's URL.
    pub fn url(&self) -> &str {
        match self {
            TrackerError::Unreachable { url, .. }
            | TrackerError::Failure { url, .. }
            | TrackerError::BadAnswer { url, .. }
            | TrackerError::Unsupported { url } => url,
        }
    }
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
