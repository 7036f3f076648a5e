//! Scraping trackers directly: HTTP (BEP 48) and UDP (BEP 15), several info hashes per request,
//! timeouts, retries with backoff, and the best counts over every tracker that answered.
//! [`scrape`] is what a tracker says, [`scraper`] asks them all, [`http`] and [`udp`] speak the
//! two protocols.

pub mod http;
pub mod scrape;
pub mod scraper;
pub mod udp;

pub use scrape::{Scrape, TrackerError};
pub use scraper::Scraper;
