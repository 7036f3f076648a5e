//! Observation: the swarm's counts for one torrent, from one of three sources behind one interface.
//!   - the trackers, scraped directly each round (fresh counts; several hashes per request);
//!   - the publisher's Transmission (peers connected to it, leechers getting from it; its own
//!     `trackerStats` are a fallback, since they lag by its scrape interval);
//!   - the SEEDERS LEECHERS override, for the first round (testing, as the original).
//!
//! "All trackers down" is an observation (`Err`), not a crash: the run keeps its helpers and retries.

use crate::policy::Counts;
use crate::tracker::{Scrape, Scraper, TrackerError};
use odseed_proto::transmission::{Client, TorrentInfo};
use odseed_proto::InfoHash;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Trackers scraped at once, at most.
const SCRAPE_THREADS: usize = 8;

/// `odseed run`'s one torrent.
pub struct Observer {
    pub hash: InfoHash,
    pub size: u64,
    pub trackers: Vec<String>,
    pub survey: Survey,
    /// The publisher's Transmission, when configured and holding the torrent.
    pub local: Option<Arc<Client>>,
    /// The override, used once.
    pub override_counts: Option<(u32, u32)>,
}

impl Observer {
    /// This round's counts, or why there are none.
    pub fn observe(&mut self) -> Result<Counts, String> {
        let size = Some(self.size);
        if let Some((seeders, leechers)) = self.override_counts.take() {
            return Ok(Counts { seeders, leechers, peers_connected: None, size });
        }
        let local = self.local.as_ref().map(|c| {
            let fields = ["peersConnected", "peersGettingFromUs", "trackerStats"];
            let entry = c.torrent_get(Some(&[self.hash]), &fields).map_err(|e| e.to_string())?.into_iter().next();
            entry.ok_or_else(|| format!("Transmission at {} no longer has {}", c.url(), self.hash))
        });
        let subject = Subject {
            hash: self.hash,
            size: self.size,
            trackers: &self.trackers,
            local: local.as_ref().map(|r| r.as_ref().map_err(String::clone)),
        };
        self.survey.counts(&[subject]).pop().unwrap_or_else(|| Err("nothing observed".into()))
    }
}

/// One torrent to count.
pub struct Subject<'a> {
    pub hash: InfoHash,
    pub size: u64,
    pub trackers: &'a [String],
    /// The publisher's `torrent-get` entry for it (`peersConnected`, `peersGettingFromUs`,
    /// `trackerStats`): `None` when its client is not observed, `Err` when it should be and is not.
    pub local: Option<Result<&'a TorrentInfo, String>>,
}

/// Counts for many torrents at once: each tracker is scraped once per round for all the torrents
/// that name it (batched as its protocol allows), several trackers at a time.
#[derive(Default)]
pub struct Survey {
    pub scraper: Scraper,
    /// Trackers that failed last round: warned about when they start failing, not every round.
    failing: HashSet<String>,
}

impl Survey {
    pub fn new(scraper: Scraper) -> Survey {
        Survey { scraper, failing: HashSet::new() }
    }

    /// Each subject's counts, in order, or why there are none.
    pub fn counts(&mut self, subjects: &[Subject]) -> Vec<Result<Counts, String>> {
        let mut by_tracker: BTreeMap<&str, Vec<InfoHash>> = BTreeMap::new();
        for s in subjects {
            for url in s.trackers {
                by_tracker.entry(url.as_str()).or_default().push(s.hash);
            }
        }
        let answers = self.scrape_all(&by_tracker);
        subjects.iter().map(|s| counts_of(s, &answers)).collect()
    }

    /// Every tracker's answer, [`SCRAPE_THREADS`] trackers at a time; says which started or
    /// stopped failing.
    fn scrape_all(&mut self, by_tracker: &BTreeMap<&str, Vec<InfoHash>>) -> HashMap<String, Answer> {
        let jobs: Vec<(&str, &Vec<InfoHash>)> = by_tracker.iter().map(|(u, h)| (*u, h)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let scraper = self.scraper;
        let answers: HashMap<String, Answer> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..SCRAPE_THREADS.min(jobs.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        while let Some((url, hashes)) =
                            jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                        {
                            done.push((url.to_string(), scraper.scrape(url, hashes)));
                        }
                        done
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        let failing: HashSet<String> = answers.iter().filter(|(_, a)| a.is_err()).map(|(u, _)| u.clone()).collect();
        for e in answers.values().filter_map(|a| a.as_ref().err()) {
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
        answers
    }
}

type Answer = Result<HashMap<InfoHash, Scrape>, TrackerError>;

/// One torrent's counts: the highest any of its trackers gave, with what the publisher's client
/// says over them.
fn counts_of(s: &Subject, answers: &HashMap<String, Answer>) -> Result<Counts, String> {
    let size = Some(s.size);
    let mut best: Option<Scrape> = None;
    let mut failed = 0;
    for url in s.trackers {
        match answers.get(url) {
            Some(Ok(map)) => {
                // A tracker that answered well without this torrent knows no peer of it (BEP 48): an
                // empty swarm. A malformed answer is an error, like no answer.
                let c = map.get(&s.hash).copied().unwrap_or_default();
                let b = best.get_or_insert_with(Scrape::default);
                b.seeders = b.seeders.max(c.seeders);
                b.leechers = b.leechers.max(c.leechers);
            }
            _ => failed += 1,
        }
    }
    let entry = match &s.local {
        None => {
            return match best {
                Some(b) => Ok(Counts { seeders: b.seeders, leechers: b.leechers, peers_connected: None, size }),
                None => Err(all_down(s.trackers, failed)),
            }
        }
        Some(Err(why)) => return Err(why.clone()),
        Some(Ok(entry)) => entry,
    };
    let num = |n: Option<u64>| n.map(|n| n.min(u64::from(u32::MAX)) as u32);
    let (seeders, leechers) = match best.map(|b| (b.seeders, b.leechers)).or_else(|| entry.tracker_counts()) {
        Some(c) => c,
        None => return Err(all_down(s.trackers, failed)),
    };
    // A leecher connected to us is a leecher even if the tracker has not counted it yet.
    let leechers = leechers.max(num(entry.peers_getting_from_us()).unwrap_or(0));
    Ok(Counts { seeders, leechers, peers_connected: num(entry.peers_connected()), size })
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
            survey: Survey::default(),
            local: None,
            override_counts: Some((3, 8)),
        };
        assert_eq!(o.observe().unwrap(), Counts { seeders: 3, leechers: 8, peers_connected: None, size: Some(5) });
        assert!(o.observe().unwrap_err().contains("no tracker"));
    }
}
