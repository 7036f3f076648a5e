//! Seeding for real: a leecher in the same namespace downloads the whole file from the agent.

use crate::world;
use odseed_lab::{content, wait_until, AgentOptions, Peer, Tracker};
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::Duration;

#[test]
fn a_leecher_downloads_the_whole_file_from_the_agent() {
    let w = world("swarm");
    let (tracker_ip, agent_ip, leecher_ip) =
        (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 3));
    for ip in [tracker_ip, agent_ip, leecher_ip] {
        w.ns.add_host(ip).unwrap();
    }
    let agent = w.agent("agent", &AgentOptions { host: agent_ip, ..AgentOptions::default() });
    let announce = format!("http://{tracker_ip}:6969/announce");
    let t = content::make(&agent.data_dir, "payload.bin", 3 << 20, 42, &[announce]).unwrap();
    let hash = t.meta.info_hash;
    let _tracker = Tracker::start(&w.dir.path().join("tracker"), tracker_ip, 6969, &[hash]).unwrap();

    let c = agent.client();
    c.put(&hash, &t.bytes).unwrap();
    crate::seeding(&c, &hash);

    let leecher = Peer::start(w.dir.path(), "leecher", leecher_ip, json!({})).unwrap();
    leecher.add(&t.bytes).unwrap();
    wait_until(Duration::from_secs(240), "the leecher to finish", || {
        (leecher.percent_done(&hash) >= 1.0).then_some(())
    })
    .unwrap();

    let want = std::fs::read(agent.data_dir.join("payload.bin")).unwrap();
    let got = std::fs::read(leecher.data_dir.join("payload.bin")).unwrap();
    assert!(want == got, "the leecher's bytes differ from the agent's");
    let uploaded = wait_until(Duration::from_secs(30), "the agent to count its upload", || {
        c.get(&hash).ok().flatten().filter(|t| t.uploaded_bytes >= want.len() as u64)
    })
    .unwrap();
    assert!(uploaded.uploaded_bytes >= want.len() as u64);
}
