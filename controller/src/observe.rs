//! Observation: the swarm's counts for each torrent, from two sources behind one interface.
//!   - the trackers, scraped directly each round (fresh counts; several hashes per request);
//!   - the publisher's Transmission entry, as the catalogue listed it (peers connected to it,
//!     leechers getting from it; its own `trackerStats` are a fallback, since they lag by its
//!     scrape interval).
//!
//! "All trackers down" is an observation (`Err`), not a crash: the run keeps its helpers and retries.

use crate::policy::Counts;
use crate::publisher::Entry;
use crate::tracker::{Scrape, Scraper, TrackerError};
use odseed_proto::InfoHash;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Trackers scraped at once, at most.
const SCRAPE_THREADS: usize = 8;
/// The trackers of one torrent that are asked, at most (the first ones it names).
const MAX_TRACKERS: usize = 32;
/// A tracker that fails is asked again after this long, doubled at each failure up to
/// [`BACKOFF_MAX`]: a dead tracker costs a round its timeouts only now and then.
const BACKOFF: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// One torrent to count.
pub struct Subject<'a> {
    pub hash: InfoHash,
    pub size: u64,
    pub trackers: &'a [String],
    /// The publisher's client's entry for it (peers connected, leechers, its trackers' counts):
    /// `None` when its client is not observed, `Err` when it should be and is not.
    pub local: Option<Result<&'a Entry, String>>,
}

/// What counts each round's torrents: the [`Survey`], or a script in unit tests.
pub trait Count {
    /// Each subject's counts, in order, or why there are none.
    fn counts(&mut self, subjects: &[Subject]) -> Vec<Result<Counts, String>>;
}

impl Count for Survey {
    fn counts(&mut self, subjects: &[Subject]) -> Vec<Result<Counts, String>> {
        Survey::counts(self, subjects)
    }
}

/// Counts for many torrents at once: each tracker is scraped once per round for all the torrents
/// that name it (batched as its protocol allows), several trackers at a time.
#[derive(Default)]
pub struct Survey {
    pub scraper: Scraper,
    /// A tracker's answer younger than this is used again rather than asking it again (zero: always
    /// ask): a round that comes early, for a crowd the publisher's client saw, does not scrape.
    pub fresh: Duration,
    /// Each tracker's last good answer: when, and for which torrents.
    cache: HashMap<String, Cached>,
    /// Trackers that fail: how often in a row, and when to ask again. Warned about when they start
    /// failing, not every round.
    failing: HashMap<String, (u32, Instant)>,
}

impl Survey {
    /// A survey that uses a tracker's answer again while it is younger than `fresh`.
    pub fn new(fresh: Duration) -> Survey {
        Survey { fresh, ..Survey::default() }
    }

    /// Each subject's counts, in order, or why there are none.
    pub fn counts(&mut self, subjects: &[Subject]) -> Vec<Result<Counts, String>> {
        let mut by_tracker: BTreeMap<&str, Vec<InfoHash>> = BTreeMap::new();
        let now = Instant::now();
        for s in subjects {
            for url in s.trackers.iter().take(MAX_TRACKERS) {
                if self.failing.get(url).is_none_or(|(_, next)| now >= *next) {
                    by_tracker.entry(url.as_str()).or_default().push(s.hash);
                }
            }
        }
        self.cache.retain(|url, _| by_tracker.contains_key(url.as_str()));
        let mut answers: HashMap<String, Answer> = HashMap::new();
        for (url, (at, asked, answer)) in &self.cache {
            let hashes = &by_tracker[url.as_str()];
            if now.duration_since(*at) < self.fresh && hashes.iter().all(|h| asked.contains(h)) {
                answers.insert(url.clone(), Ok(answer.clone()));
            }
        }
        by_tracker.retain(|url, _| !answers.contains_key(*url));
        let asked = self.scrape_all(&by_tracker);
        if !self.fresh.is_zero() {
            for (url, answer) in &asked {
                if let (Ok(map), Some(hashes)) = (answer, by_tracker.get(url.as_str())) {
                    self.cache.insert(url.clone(), (now, hashes.clone(), map.clone()));
                }
            }
        }
        answers.extend(asked);
        subjects.iter().map(|s| counts_of(s, &answers)).collect()
    }

    /// Every tracker's answer, [`SCRAPE_THREADS`] trackers at a time; says which started or
    /// stopped failing, and when to ask a failing one again.
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
        let now = Instant::now();
        for (url, answer) in &answers {
            match answer {
                Ok(_) => {
                    if self.failing.remove(url).is_some() {
                        log::info!("tracker {} answers again", crate::tracker::scrape::shown(url));
                    }
                }
                Err(e) => {
                    let fails = self.failing.get(url).map_or(1, |(n, _)| n + 1);
                    let wait = BACKOFF.saturating_mul(1 << (fails - 1).min(8)).min(BACKOFF_MAX);
                    if fails == 1 {
                        log::warn!("{e} (no information from it until it answers well again)");
                    } else {
                        log::debug!("{e} (asked again in {} s)", wait.as_secs());
                    }
                    self.failing.insert(url.clone(), (fails, now + wait));
                }
            }
        }
        answers
    }
}

type Answer = Result<HashMap<InfoHash, Scrape>, TrackerError>;
/// A tracker's good answer: when, for which torrents, what it said.
type Cached = (Instant, Vec<InfoHash>, HashMap<InfoHash, Scrape>);

/// One torrent's counts: the highest any of its trackers gave, with what the publisher's client
/// says over them.
fn counts_of(s: &Subject, answers: &HashMap<String, Answer>) -> Result<Counts, String> {
    let size = Some(s.size);
    let mut best: Option<Scrape> = None;
    let mut failed = 0;
    for url in s.trackers.iter().take(MAX_TRACKERS) {
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
    let (seeders, leechers) = match best.map(|b| (b.seeders, b.leechers)).or(entry.tracker_counts) {
        Some(c) => c,
        None => return Err(all_down(s.trackers, failed)),
    };
    // A leecher connected to us is a leecher even if the tracker has not counted it yet.
    let leechers = leechers.max(num(entry.leechers).unwrap_or(0));
    Ok(Counts { seeders, leechers, peers_connected: num(entry.peers_connected), size })
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
    fn a_failing_tracker_is_asked_again_only_after_its_backoff() {
        let mut survey =
            Survey { scraper: Scraper { timeout: Duration::from_millis(200), retries: 0 }, ..Survey::default() };
        let trackers = vec!["http://127.0.0.1:9/announce".to_string()];
        let subject = || Subject { hash: InfoHash::from_bytes([2; 20]), size: 1, trackers: &trackers, local: None };
        assert!(survey.counts(&[subject()])[0].as_ref().unwrap_err().contains("all trackers down"));
        let (fails, next) = survey.failing[&trackers[0]];
        assert_eq!(fails, 1);
        assert!(next > Instant::now() + Duration::from_secs(20));
        // Not asked again before then: still one failure, still no counts.
        assert!(survey.counts(&[subject()])[0].is_err());
        assert_eq!(survey.failing[&trackers[0]].0, 1);
        // Once due, asked again: the backoff doubles.
        survey.failing.get_mut(&trackers[0]).unwrap().1 = Instant::now();
        assert!(survey.counts(&[subject()])[0].is_err());
        let (fails, next) = survey.failing[&trackers[0]];
        assert!(fails == 2 && next > Instant::now() + Duration::from_secs(50));
    }
}
