//! The scrapers against real trackers, HTTP and UDP, several hashes per request: opentracker, and
//! WebTorrent's bittorrent-tracker (which writes the keys of its HTTP scrape answer as UTF-8 text).

use crate::world;
use odseed::tracker::{Scrape, Scraper, TrackerError};
use odseed_lab::Tracker;
use odseed_proto::InfoHash;
use std::net::Ipv4Addr;
use std::time::Duration;

#[test]
fn http_and_udp_scrapes_agree_with_the_tracker() {
    let w = world("scrape");
    let ip = Ipv4Addr::new(10, 77, 0, 1);
    w.ns.add_host(ip).unwrap();
    let busy = InfoHash::from_bytes([0xab; 20]);
    let quiet = InfoHash::from_bytes([0xcd; 20]);
    let tracker = Tracker::start(&w.dir.path().join("t"), ip, 6969, &[busy, quiet]).unwrap();
    announce_two_leechers_and_a_seeder(&tracker, busy);
    let scraper = Scraper { timeout: Duration::from_secs(3), retries: 1 };
    let want = Scrape { seeders: 1, leechers: 2, downloaded: 0 };
    let http = scraper.scrape(&tracker.announce_url(), &[busy, quiet]).unwrap();
    assert_eq!(http.get(&busy), Some(&want));
    // Asked in descending order, opentracker answers in that order (keys not sorted, as BEP 3 asks).
    let reversed = scraper.scrape(&tracker.announce_url(), &[quiet, busy]).unwrap();
    assert_eq!(reversed, http);
    let udp = scraper.scrape(&tracker.udp_url(), &[busy, quiet]).unwrap();
    assert_eq!(udp.get(&busy), Some(&want));
    assert_eq!(udp.get(&quiet), Some(&Scrape::default()));

    // Best over several trackers: one down, one answering.
    let (best, errors) = scraper.best(&["udp://10.77.0.1:6970".into(), tracker.udp_url()], &[busy]);
    assert_eq!(best.get(&busy), Some(&want));
    assert!(matches!(errors.as_slice(), [TrackerError::Unreachable { .. }]), "{errors:?}");
    assert!(matches!(scraper.scrape("wss://x/announce", &[busy]), Err(TrackerError::Unsupported { .. })));
}

/// A second implementation: its HTTP scrape answer keys hashes as UTF-8 text (0xab is two bytes),
/// which must read as the same counts as its UDP answer, not as an empty swarm.
#[test]
fn a_tracker_that_writes_hashes_as_text_is_read_right() {
    let w = world("webtorrent");
    let ip = Ipv4Addr::new(10, 77, 0, 1);
    w.ns.add_host(ip).unwrap();
    let busy = InfoHash::from_bytes([0xab; 20]);
    let tracker = Tracker::start_webtorrent(&w.dir.path().join("t"), ip, 8000).unwrap();
    announce_two_leechers_and_a_seeder(&tracker, busy);
    let scraper = Scraper { timeout: Duration::from_secs(3), retries: 1 };
    let counts = |s: Option<&Scrape>| s.map(|s| (s.seeders, s.leechers));
    let http = scraper.scrape(&tracker.announce_url(), &[busy]).unwrap();
    assert_eq!(counts(http.get(&busy)), Some((1, 2)), "HTTP scrape");
    let udp = scraper.scrape(&tracker.udp_url(), &[busy]).unwrap();
    assert_eq!(counts(udp.get(&busy)), Some((1, 2)), "UDP scrape");
}

/// Two leechers and a seeder announce `hash` over HTTP.
fn announce_two_leechers_and_a_seeder(tracker: &Tracker, hash: InfoHash) {
    for (i, left) in [1000, 1000, 0].into_iter().enumerate() {
        crate::announce(&tracker.announce_url(), hash, i, left, "started");
    }
}

/// An early round (for a crowd the publisher's client saw) uses the trackers' answers of the last
/// round while they are fresh: the tracker is not asked again, and a torrent it was not asked about
/// is asked.
#[test]
fn a_survey_reuses_fresh_answers_and_asks_again_for_what_they_lack() {
    use odseed::observe::{Subject, Survey};
    let w = world("survey");
    let ip = Ipv4Addr::new(10, 77, 0, 1);
    w.ns.add_host(ip).unwrap();
    let (busy, other) = (InfoHash::from_bytes([0xab; 20]), InfoHash::from_bytes([0x12; 20]));
    let tracker = Tracker::start(&w.dir.path().join("t"), ip, 6969, &[busy, other]).unwrap();
    announce_two_leechers_and_a_seeder(&tracker, busy);
    let trackers = vec![tracker.announce_url()];
    let subject = |hash| Subject { hash, size: 1, trackers: &trackers, local: None };
    let leechers = |s: &mut Survey, hashes: &[InfoHash]| -> Vec<u32> {
        let subjects: Vec<Subject> = hashes.iter().map(|h| subject(*h)).collect();
        s.counts(&subjects).into_iter().map(|c| c.unwrap().leechers).collect()
    };
    let (mut fresh, mut always) = (Survey::new(Duration::from_secs(600)), Survey::new(Duration::ZERO));
    assert_eq!(leechers(&mut fresh, &[busy]), [2]);
    assert_eq!(leechers(&mut always, &[busy]), [2]);
    crate::announce(&tracker.announce_url(), busy, 7, 1000, "started");
    assert_eq!(leechers(&mut always, &[busy]), [3], "asked again");
    assert_eq!(leechers(&mut fresh, &[busy]), [2], "the fresh answer, not asked again");
    // A torrent the fresh answer does not cover: the tracker is asked, for both (and opentracker
    // answers with the hashes in the order asked, not sorted: read all the same).
    crate::announce(&tracker.announce_url(), other, 8, 1000, "started");
    assert_eq!(leechers(&mut fresh, &[busy, other]), [3, 1]);
}
