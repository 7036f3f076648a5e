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
        let url = shown(self.url());
        match self {
            TrackerError::Unreachable { detail, .. } => write!(f, "tracker {url} unreachable: {detail}"),
            TrackerError::Failure { reason, .. } => write!(f, "tracker {url} refused the scrape: {reason}"),
            TrackerError::BadAnswer { detail, .. } => write!(f, "tracker {url} gave a malformed answer: {detail}"),
            TrackerError::Unsupported { .. } => write!(f, "tracker {url} cannot be scraped"),
        }
    }
}

/// A tracker's URL as it may be shown: scheme, host and port. Private trackers put a passkey in
/// the path or the query (`/announce/KEY`, `?passkey=KEY`), and user info may hold a password:
/// none of it is logged.
pub fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "(not a URL)".into() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest[..end].rsplit('@').next().unwrap_or_default();
    let path = match &rest[end..] {
        "" | "/" => "",
        "/announce" => "/announce",
        _ => "/…",
    };
    format!("{scheme}://{authority}{path}")
}

impl std::error::Error for TrackerError {}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn a_shown_url_holds_no_passkey() {
        assert_eq!(shown("http://t.example:6969/announce"), "http://t.example:6969/announce");
        assert_eq!(shown("https://t.example/announce/0123abcd"), "https://t.example/…");
        assert_eq!(shown("http://t.example/announce.php?passkey=s3cr3t"), "http://t.example/…");
        assert_eq!(shown("udp://user:pw@t.example:80"), "udp://t.example:80");
        assert_eq!(shown("garbage"), "(not a URL)");
    }
}
