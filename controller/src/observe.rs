//! Observation: the swarm's counts for one torrent, from one of three sources behind one interface.
//!   - the trackers, scraped directly each round (fresh counts; several hashes per request);
//!   - the publisher's Transmission (peers connected to it, leechers getting from it; its own
//!     `trackerStats` are a fallback, since they lag by its scrape interval);
//!   - the SEEDERS LEECHERS override, for the first round (testing, as the original).
//!
//! "All trackers down" is an observation (`Err`), not a crash: the run keeps its helpers and retries.

use crate::policy::Counts;
use crate::tracker::{Scrape, Scraper};
use odseed_proto::transmission::Client;
use odseed_proto::InfoHash;
use std::collections::HashSet;
use std::sync::Arc;

pub struct Observer {
    pub hash: InfoHash,
    pub size: u64,
    pub trackers: Vec<String>,
    pub scraper: Scraper,
    /// The publisher's Transmission, when configured and holding the torrent.
    pub local: Option<Arc<Client>>,
    /// The override, used once.
    pub override_counts: Option<(u32, u32)>,
    /// Trackers that failed last round: warned about when they start failing, not every round.
    pub failing: HashSet<String>,
}

impl Observer {
    /// This round's counts, or why there are none.
    pub fn observe(&mut self) -> Result<Counts, String> {
        let size = Some(self.size);
        if let Some((seeders, leechers)) = self.override_counts.take() {
            return Ok(Counts { seeders, leechers, peers_connected: None, size });
        }
        let (best, errors) = self.scraper.best(&self.trackers, &[self.hash]);
        let failing: HashSet<String> = errors.iter().map(|e| e.url().to_string()).collect();
        for e in &errors {
            if self.failing.contains(e.url()) {
                log::debug!("{e}");
            } else {
                log::warn!("{e} (no information from it until it answers well again)");
            }
        }
        for url in self.failing.difference(&failing) {
            log::info!("tracker {} answers again", crate::tracker::scrape::shown(url));
        }
        self.failing = failing;
        // A tracker that answered well without this torrent knows no peer of it (BEP 48): an empty
        // swarm. A malformed answer is an error above, like no answer.
        let answered = errors.len() < self.trackers.len();
        let scraped = best.get(&self.hash).copied().or(answered.then(Scrape::default));
        let Some(local) = &self.local else {
            return match scraped {
                Some(s) => Ok(Counts { seeders: s.seeders, leechers: s.leechers, peers_connected: None, size }),
                None => Err(all_down(&self.trackers, errors.len())),
            };
        };
        let fields = ["peersConnected", "peersGettingFromUs", "trackerStats"];
        let entry = local.torrent_get(Some(&[self.hash]), &fields).map_err(|e| e.to_string())?.into_iter().next();
        let entry = entry.ok_or_else(|| format!("Transmission at {} no longer has {}", local.url(), self.hash))?;
        let num = |n: Option<u64>| n.map(|n| n.min(u64::from(u32::MAX)) as u32);
        let (seeders, leechers) = match scraped.map(|s| (s.seeders, s.leechers)).or_else(|| entry.tracker_counts()) {
            Some(c) => c,
            None => return Err(all_down(&self.trackers, errors.len())),
        };
        // A leecher connected to us is a leecher even if the tracker has not counted it yet.
        let leechers = leechers.max(num(entry.peers_getting_from_us()).unwrap_or(0));
        Ok(Counts { seeders, leechers, peers_connected: num(entry.peers_connected()), size })
    }
}

fn all_down(trackers: &[String], failed: usize) -> String {
    if trackers.is_empty() {
        "the torrent names no tracker to count its swarm".into()
    } else {
        format!("all trackers down ({failed} of {} did not answer)", trackers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_counts_for_one_round() {
        let mut o = Observer {
            hash: InfoHash::from_bytes([1; 20]),
            size: 5,
            trackers: vec![],
            scraper: Scraper::default(),
            local: None,
            override_counts: Some((3, 8)),
            failing: HashSet::new(),
        };
        assert_eq!(o.observe().unwrap(), Counts { seeders: 3, leechers: 8, peers_connected: None, size: Some(5) });
        assert!(o.observe().unwrap_err().contains("no tracker"));
    }
}
