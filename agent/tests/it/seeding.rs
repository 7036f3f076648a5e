//! Seeding for real: leechers in the same namespace download the whole file from the agent, with
//! Transmission and with clients nobody here wrote (aria2c, libtorrent).

use crate::world_with;
use odseed_lab::{content, wait_until, AgentOptions, Peer, Tracker};
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::Duration;

each_daemon! {
fn a_leecher_downloads_the_whole_file_from_the_agent(d: Daemon) {
    let w = world_with("swarm", d);
    let (tracker_ip, agent_ip, leecher_ip) =
        (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 3));
    for ip in [tracker_ip, agent_ip, leecher_ip] {
        w.ns.add_host(ip).unwrap();
    }
    // uTP from the start: the window (a 3.00 agent's first 150 s) is the subject of the rTorrent
    // test below, not of this one.
    let o = AgentOptions { host: agent_ip, utp_off_secs: Some(0), ..AgentOptions::default() };
    let mut agent = w.agent("agent", &o);
    let announce = format!("http://{tracker_ip}:6969/announce");
    let t = content::make(&agent.data_dir, "payload.bin", 3 << 20, 42, &[announce]).unwrap();
    let hash = t.meta.info_hash;
    let _tracker = Tracker::start(&w.dir.path().join("tracker"), tracker_ip, 6969, &[hash]).unwrap();

    let c = agent.client();
    c.put(&hash, &t.bytes).unwrap();
    crate::seeding(&c, &hash);
    // The peer port listens where bind_address says, and on IPv6 loopback only.
    let daemon = agent.daemon_pid().expect("daemon pid");
    assert_eq!(listening(daemon, "tcp", 51413), vec![agent_ip.to_string()]);
    assert_eq!(listening(daemon, "tcp6", 51413), vec!["::1".to_string()]);

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

    // The counter of bytes uploaded ever stays after the release and after a restart of the agent.
    let metric = |agent: &odseed_lab::Agent, name: &str| -> u64 {
        let (_, text) = crate::send(&format!("{}/metrics", agent.url), "GET", Some(&agent.token), None);
        let value = text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok());
        value.unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    let total = wait_until(Duration::from_secs(10), "the counter to take the upload in", || {
        let total = metric(&agent, "odseed_agent_uploaded_bytes_total");
        (total >= want.len() as u64).then_some(total)
    })
    .unwrap();
    assert!(c.delete(&hash).unwrap());
    wait_until(Duration::from_secs(30), "the daemon to drop the torrent", || {
        (metric(&agent, "odseed_agent_uploaded_bytes") == 0).then_some(())
    })
    .unwrap();
    assert!(metric(&agent, "odseed_agent_uploaded_bytes_total") >= total, "the counter went down at release");
    agent.terminate(Duration::from_secs(30)).expect("the agent stops");
    agent.launch().unwrap();
    assert!(metric(&agent, "odseed_agent_uploaded_bytes_total") >= total, "the counter went down at a restart");
}
}

/// The addresses listening on TCP `port` in `pid`'s network namespace (`/proc/PID/net/tcp` or
/// `tcp6`: addresses in hex, each 32-bit word in host byte order).
fn listening(pid: u32, table: &str, port: u16) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (addr, p) = fields.get(1)?.split_once(':')?;
            (fields.get(3) == Some(&"0A") && u16::from_str_radix(p, 16).ok()? == port).then_some(addr)
        })
        .map(|hex| {
            let words: Vec<u32> =
                (0..hex.len() / 8).map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).unwrap()).collect();
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
            match <[u8; 4]>::try_from(bytes.as_slice()) {
                Ok(v4) => std::net::Ipv4Addr::from(v4).to_string(),
                Err(_) => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).unwrap()).to_string(),
            }
        })
        .collect()
}

each_daemon! {
/// aria2c and libtorrent leechers, with the agent as the only seeder: each gets the whole file,
/// byte for byte.
fn leechers_that_are_not_transmission_download_from_the_agent(d: Daemon) {
    use odseed_lab::clients::{Client, Leecher};
    let w = world_with("clients", d);
    let ips: Vec<Ipv4Addr> = (1..=4).map(|i| Ipv4Addr::new(10, 77, 0, i)).collect();
    for ip in &ips {
        w.ns.add_host(*ip).unwrap();
    }
    let agent = w.agent("agent", &AgentOptions { host: ips[1], ..AgentOptions::default() });
    let announce = format!("http://{}:6969/announce", ips[0]);
    let t = content::make(&agent.data_dir, "payload.bin", 3 << 20, 77, &[announce]).unwrap();
    let hash = t.meta.info_hash;
    let _tracker = Tracker::start(&w.dir.path().join("tracker"), ips[0], 6969, &[hash]).unwrap();
    let c = agent.client();
    c.put(&hash, &t.bytes).unwrap();
    crate::seeding(&c, &hash);

    let mut leechers: Vec<Leecher> = [(Client::Aria2, ips[2]), (Client::Libtorrent, ips[3])]
        .into_iter()
        .map(|(client, ip)| Leecher::start(w.dir.path(), client.as_str(), client, ip, &t.bytes).unwrap())
        .collect();
    let want = std::fs::read(agent.data_dir.join("payload.bin")).unwrap();
    for l in &mut leechers {
        let status = l.proc.wait_exit(Duration::from_secs(240));
        assert!(status.is_some_and(|s| s.success()), "{} did not finish: {status:?}\n{}", l.client.as_str(), l.proc.log_tail(10));
        let got = std::fs::read(l.data_dir.join("payload.bin")).unwrap();
        assert!(got == want, "{}'s bytes differ from the agent's", l.client.as_str());
    }
    let uploaded = wait_until(Duration::from_secs(30), "the agent to count its upload", || {
        c.get(&hash).ok().flatten().filter(|t| t.uploaded_bytes >= want.len() as u64)
    });
    assert!(uploaded.is_ok(), "the agent uploaded less than one copy: {:?}", c.get(&hash));
}
}

each_daemon! {
fn a_tcp_only_leecher_that_was_in_the_swarm_first_gets_the_file(d: Daemon) {
    // rTorrent (libtorrent-rakshasa, the seedbox client) speaks TCP only, and announces again only
    // every tracker interval: the helper's daemon, engaged after it announced, must reach it.
    // Transmission 3.00 connects by uTP first and drops its TCP fallback, so the agent starts it
    // with uTP off for a while; a Transmission 3.00 leecher that comes then (it connects by uTP
    // first too) is reached once the window ends, by a new announce.
    let w = world_with("rtorrent", d);
    let (tracker_ip, agent_ip, leecher_ip, late_ip) =
        (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 3), Ipv4Addr::new(10, 77, 0, 4));
    for ip in [tracker_ip, agent_ip, leecher_ip, late_ip] {
        w.ns.add_host(ip).unwrap();
    }
    let agent = w.agent("agent", &AgentOptions { host: agent_ip, ..AgentOptions::default() });
    let announce = format!("http://{tracker_ip}:6969/announce");
    let t = content::make(&agent.data_dir, "payload.bin", 4 << 20, 11, std::slice::from_ref(&announce)).unwrap();
    let hash = t.meta.info_hash;
    let tracker = Tracker::start(&w.dir.path().join("tracker"), tracker_ip, 6969, &[hash]).unwrap();
    let root = w.dir.path().join("rtorrent");
    let (session, data) = (root.join("session"), root.join("data"));
    for d in [&session, &data] {
        std::fs::create_dir_all(d).unwrap();
    }
    let file = root.join("t.torrent");
    std::fs::write(&file, &t.bytes).unwrap();
    let mut cmd = std::process::Command::new("rtorrent");
    cmd.arg("-n").current_dir(&root).stdin(std::process::Stdio::null());
    for o in [
        "system.daemon.set=true".to_string(),
        format!("session.path.set={}", session.display()),
        format!("directory.default.set={}", data.display()),
        format!("network.bind_address.set={leecher_ip}"),
        "network.port_range.set=6890-6890".into(),
        "network.port_random.set=no".into(),
        "dht.mode.set=disable".into(),
        "protocol.pex.set=no".into(),
        format!("load.start={}", file.display()),
    ] {
        cmd.arg("-o").arg(o);
    }
    let _leecher = odseed_lab::Proc::spawn("rtorrent", cmd, &root.join("rtorrent.log")).unwrap();
    // It has announced (the tracker counts a leecher) before the helper is engaged.
    wait_until(Duration::from_secs(60), "rTorrent's announce", || {
        let (_, body) = crate::send(
            &format!("{}?info_hash={}", tracker.announce_url().replace("announce", "scrape"), escape(&hash)),
            "GET",
            None,
            None,
        );
        body.contains("10:incompletei1e").then_some(())
    })
    .unwrap();
    let c = agent.client();
    c.put(&hash, &t.bytes).unwrap();
    crate::seeding(&c, &hash);
    let want = std::fs::read(agent.data_dir.join("payload.bin")).unwrap();
    wait_until(Duration::from_secs(120), "rTorrent to have the whole file", || {
        (std::fs::read(data.join("payload.bin")).ok()? == want).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; the agent's session: {:?}", c.get(&hash)));
    let late = Peer::start(w.dir.path(), "late", late_ip, json!({})).unwrap();
    late.add(&t.bytes).unwrap();
    wait_until(Duration::from_secs(300), "a Transmission 3.00 leecher that came later to finish", || {
        (late.percent_done(&hash) >= 1.0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; the agent's session: {:?}", c.get(&hash)));
    assert!(std::fs::read(late.data_dir.join("payload.bin")).unwrap() == want, "the late leecher's bytes differ");
}
}

/// An info hash, percent-escaped for a tracker's query string.
fn escape(hash: &odseed_proto::InfoHash) -> String {
    hash.as_bytes().iter().map(|b| format!("%{b:02X}")).collect()
}
