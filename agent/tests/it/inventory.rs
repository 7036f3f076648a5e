//! The content an agent holds (`GET /v1/content`) and its quota: what it seeded stays listed and on
//! disk after `DELETE`, a restart and a daemon crash; released content is evicted least recently
//! used first when room is needed, never content being seeded; a torrent that cannot fit is refused
//! `507 no_space` with nothing written or evicted.

use crate::{code, send, torrent_in, world_with};
use odseed_lab::{content, wait_until, Agent, AgentOptions, Peer, Tracker};
use odseed_proto::agent_client::AgentClient;
use odseed_proto::wire::{Content, Held};
use odseed_proto::InfoHash;
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

const MIB: u64 = 1 << 20;

fn held(c: &AgentClient, hash: &InfoHash) -> Option<Held> {
    c.content().unwrap().torrents.into_iter().find(|t| t.info_hash == *hash)
}

/// Waits until the agent lists `hash` complete.
fn complete(c: &AgentClient, hash: &InfoHash) -> Held {
    wait_until(Duration::from_secs(120), &format!("{hash} to be held whole"), || held(c, hash).filter(Held::complete))
        .unwrap_or_else(|e| panic!("{e}; content: {:?}", c.content()))
}

/// What the files directly under `dir` take on disk, in bytes.
fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| odseed_proto::fsutil::disk_bytes(&e.unwrap().path())).sum()
}

each_daemon! {
fn content_stays_listed_across_release_restart_and_a_daemon_crash(d: Daemon) {
    let w = world_with("inventory", d);
    let mut agent = w.agent("agent", &AgentOptions::default());
    let c = agent.client();
    let t = torrent_in(&agent.data_dir, "kept.bin", 2 * MIB);
    let hash = t.meta.info_hash;
    assert_eq!(c.content().unwrap().torrents, vec![], "a fresh agent holds nothing");
    c.put(&hash, &t.bytes).unwrap();
    let h = complete(&c, &hash);
    assert_eq!((h.bytes, h.have_bytes, h.seeding, h.name.as_str()), (2 * MIB, 2 * MIB, true, "kept.bin"));

    // The daemon dies (kill -9): its successor still holds it, and the agent still says so.
    let pid = agent.daemon_pid().expect("daemon pid");
    odseed_proto::transmission::launch::signal(pid, libc::SIGKILL);
    wait_until(Duration::from_secs(60), "a new daemon", || agent.daemon_pid().filter(|p| *p != pid)).unwrap();
    crate::seeding(&c, &hash);
    assert!(held(&c, &hash).unwrap().complete());

    // Released: no longer seeded, still held, its file still there.
    assert!(c.delete(&hash).unwrap());
    let h = held(&c, &hash).expect("listed after DELETE");
    assert!(!h.seeding && h.complete(), "{h:?}");
    assert_eq!(c.get(&hash).unwrap(), None, "not seeded");
    assert!(agent.data_dir.join("kept.bin").exists());

    // The agent restarts: nothing is lost.
    agent.terminate(Duration::from_secs(30)).expect("the agent stops");
    agent.launch().unwrap();
    let c = agent.client();
    let after = held(&c, &hash).expect("listed after a restart");
    assert!(!after.seeding && after.complete(), "{after:?}");
    assert_eq!(after.last_used, h.last_used);

    // Engaged again, it seeds what it holds at once: nothing downloaded (there is no other peer).
    c.put(&hash, &t.bytes).unwrap();
    crate::seeding(&c, &hash);
    assert!(held(&c, &hash).unwrap().seeding);
}
}

/// An agent whose content may take `quota` bytes (and no free space is kept).
fn quota_agent(w: &crate::World, name: &str, quota: u64, host: Ipv4Addr) -> Agent {
    let o = AgentOptions { host, max_content_bytes: Some(quota), min_free_bytes: Some(0), ..AgentOptions::default() };
    w.agent(name, &o)
}

#[test]
fn released_content_is_evicted_oldest_first_and_a_torrent_that_cannot_fit_is_refused() {
    let w = world_with("evict", odseed_lab::testing::Daemon::T3);
    let agent = quota_agent(&w, "agent", 3 * MIB + MIB / 2, Ipv4Addr::LOCALHOST);
    let c = agent.client();
    let made: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| torrent_in(&agent.data_dir, n, MIB)).collect();
    for t in &made[..3] {
        c.put(&t.meta.info_hash, &t.bytes).unwrap();
        complete(&c, &t.meta.info_hash);
    }
    for t in &made[..3] {
        assert!(c.delete(&t.meta.info_hash).unwrap());
    }
    // d: 1 MiB more than the 3.5 MiB allowed with a, b and c kept; a, released first, goes.
    let (d, a) = (&made[3], made[0].meta.info_hash);
    c.put(&d.meta.info_hash, &d.bytes).unwrap();
    let listed: Vec<InfoHash> = c.content().unwrap().torrents.iter().map(|t| t.info_hash).collect();
    assert!(!listed.contains(&a), "a was evicted: {listed:?}");
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(!agent.data_dir.join("a").exists(), "a's file deleted");
    for n in ["b", "c", "d"] {
        assert!(agent.data_dir.join(n).exists(), "{n} kept");
    }

    // d is seeded and is never evicted: a 3 MiB torrent does not fit beside it even with b and c
    // evicted, and is refused with nothing written or evicted.
    let elsewhere = w.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let e = content::make(&elsewhere, "e", 3 * MIB, 5, &[]).unwrap();
    let before = c.content().unwrap();
    let (status, body) =
        send(&format!("{}/v1/torrents/{}", agent.url, e.meta.info_hash), "PUT", Some(&agent.token), Some(&e.bytes));
    assert_eq!((status, code(&body).as_str()), (507, "no_space"), "{body}");
    assert!(body.contains("bytes short"), "{body}");
    let after = c.content().unwrap();
    assert_eq!(after.torrents.len(), before.torrents.len(), "nothing evicted");
    assert!(!agent.state_dir.join(format!("torrents/{}.torrent", e.meta.info_hash)).exists(), "nothing written");
    assert!(["b", "c", "d"].iter().all(|n| agent.data_dir.join(n).exists()));
}

#[test]
fn content_still_downloading_counts_whole() {
    let w = world_with("downloading", odseed_lab::testing::Daemon::T3);
    let agent = quota_agent(&w, "agent", 3 * MIB, Ipv4Addr::LOCALHOST);
    let c = agent.client();
    // Its content is nowhere the agent can get it: it stays at 0%, and still holds 2 MiB of quota.
    let elsewhere = w.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let far = content::make(&elsewhere, "far", 2 * MIB, 9, &[]).unwrap();
    c.put(&far.meta.info_hash, &far.bytes).unwrap();
    let near = torrent_in(&agent.data_dir, "near", 2 * MIB);
    let (status, body) = send(
        &format!("{}/v1/torrents/{}", agent.url, near.meta.info_hash),
        "PUT",
        Some(&agent.token),
        Some(&near.bytes),
    );
    assert_eq!((status, code(&body).as_str()), (507, "no_space"), "{body}");
    let Content { torrents, .. } = c.content().unwrap();
    assert_eq!(torrents.len(), 1);
    assert_eq!((torrents[0].have_bytes, torrents[0].seeding), (0, true));
}

each_daemon! {
/// Torrents downloaded in turn from a seeder, each released when whole: the data dir never ends
/// above the quota, and the one being seeded is whole. (Each costs ~11 s, most of it the seeder's
/// 10-s unchoke round: four make the point.)
fn a_quota_holds_across_torrents_downloaded_in_turn(d: Daemon) {
    let w = world_with("turns", d);
    let (tracker_ip, agent_ip, seeder_ip) =
        (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 3));
    for ip in [tracker_ip, agent_ip, seeder_ip] {
        w.ns.add_host(ip).unwrap();
    }
    let quota = 2 * MIB + MIB / 2;
    let agent = quota_agent(&w, "agent", quota, agent_ip);
    let c = agent.client();
    let seeder = Peer::start(w.dir.path(), "seeder", seeder_ip, json!({})).unwrap();
    let announce = format!("http://{tracker_ip}:6969/announce");
    let made: Vec<_> = (0..4)
        .map(|i| content::make(&seeder.data_dir, &format!("t{i}"), MIB, i, std::slice::from_ref(&announce)).unwrap())
        .collect();
    let hashes: Vec<InfoHash> = made.iter().map(|t| t.meta.info_hash).collect();
    let _tracker = Tracker::start(&w.dir.path().join("tracker"), tracker_ip, 6969, &hashes).unwrap();
    for t in &made {
        seeder.add(&t.bytes).unwrap();
    }
    for t in &made {
        c.put(&t.meta.info_hash, &t.bytes).unwrap();
        complete(&c, &t.meta.info_hash);
        assert!(du(&agent.data_dir) <= quota, "{} bytes on disk, over the quota", du(&agent.data_dir));
        assert!(c.delete(&t.meta.info_hash).unwrap());
    }
    let last = held(&c, &hashes[3]).expect("the last one is held");
    assert!(last.complete(), "{last:?}");
    let listed = c.content().unwrap();
    assert!(listed.used_bytes <= quota, "{listed:?}");
    let kept: Vec<InfoHash> = listed.torrents.iter().map(|t| t.info_hash).collect();
    assert_eq!(kept, { let mut k = hashes[2..].to_vec(); k.sort(); k }, "the two used last are kept");
    assert!(du(&agent.data_dir) <= quota);
}
}
