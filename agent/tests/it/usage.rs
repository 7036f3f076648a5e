//! What the agent counts of the bytes its machine sends (`GET /v1/usage`, the metric
//! `odseed_agent_sent_bytes_total`), checked against the kernel: the agent runs in a network
//! namespace of its own, joined to the test's by a veth pair as a machine is to its network, and a
//! leecher downloads a known file from it. What the agent says it sent is what its namespace's own
//! `/proc/net/dev` says its interface transmitted, and at least the payload the daemon uploaded.

use crate::world;
use odseed_lab::{content, wait_until, AgentOptions, Peer, Tracker};
use serde_json::json;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::time::Duration;

/// A network namespace held open by a sleeping process; killed on drop.
struct Machine(Child);

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The transmit bytes of `iface` in the namespace of process `pid`.
fn tx_bytes(pid: u32, iface: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{iface}:"))).unwrap();
    line.split_once(':').unwrap().1.split_whitespace().nth(8).unwrap().parse().unwrap()
}

#[test]
fn the_bytes_sent_are_what_the_machines_interface_sent() {
    let w = world("sent");
    let (tracker_ip, leecher_ip) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 3));
    for ip in [tracker_ip, leecher_ip] {
        w.ns.add_host(ip).unwrap();
    }
    // The helper's machine: a namespace with eth0, 10.77.9.2, its gateway the test's side.
    let machine = Machine(Command::new("unshare").args(["--net", "sleep", "600"]).spawn().unwrap());
    let pid = machine.0.id();
    let ns = format!("/proc/{pid}/ns/net");
    wait_until(Duration::from_secs(10), "the machine's namespace", || {
        let mine = std::fs::read_link("/proc/thread-self/ns/net").ok()?;
        (std::fs::read_link(&ns).ok()? != mine).then_some(())
    })
    .unwrap();
    let pid_s = pid.to_string();
    run(&["ip", "link", "add", "vh0", "type", "veth", "peer", "name", "eth0", "netns", &pid_s]);
    run(&["ip", "addr", "add", "10.77.9.1/24", "dev", "vh0"]);
    run(&["ip", "link", "set", "vh0", "up"]);
    let inside = |args: &[&str]| run(&[&["nsenter", &format!("--net={ns}"), "ip"][..], args].concat());
    inside(&["link", "set", "lo", "up"]);
    inside(&["addr", "add", "10.77.9.2/24", "dev", "eth0"]);
    inside(&["link", "set", "eth0", "up"]);
    inside(&["route", "add", "default", "via", "10.77.9.1"]);
    let agent_ip = Ipv4Addr::new(10, 77, 9, 2);
    let wrapper = w.dir.path().join("agent-on-the-machine");
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec nsenter --net={ns} {} \"$@\"\n", crate::bin().display()))
        .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = AgentOptions {
        host: agent_ip,
        listen: agent_ip,
        port: Some(5050),
        program: w.daemon.program(),
        // Transmission 3.00's uTP window is not what this test is about (seeding.rs has it).
        utp_off_secs: Some(0),
        ..AgentOptions::default()
    };
    let agent = odseed_lab::Agent::start(&wrapper, &w.dir.path().join("agent"), &o).unwrap();
    let c = agent.client();

    let announce = format!("http://{tracker_ip}:6969/announce");
    let size = 4 << 20;
    let t = content::make(&agent.data_dir, "payload.bin", size, 7, &[announce]).unwrap();
    let hash = t.meta.info_hash;
    let _tracker = Tracker::start(&w.dir.path().join("tracker"), tracker_ip, 6969, &[hash]).unwrap();
    c.put(&hash, &t.bytes).unwrap();
    crate::seeding(&c, &hash);

    let (tx0, before) = (tx_bytes(pid, "eth0"), c.usage().unwrap());
    let leecher = Peer::start(w.dir.path(), "leecher", leecher_ip, json!({})).unwrap();
    leecher.add(&t.bytes).unwrap();
    wait_until(Duration::from_secs(240), "the leecher to finish", || {
        (leecher.percent_done(&hash) >= 1.0).then_some(())
    })
    .unwrap();
    let uploaded = wait_until(Duration::from_secs(30), "the agent to count the upload", || {
        let u = c.usage().ok()?;
        (u.uploaded_bytes - before.uploaded_bytes >= size).then_some(u.uploaded_bytes - before.uploaded_bytes)
    })
    .unwrap();
    let after = c.usage().unwrap();
    let tx1 = tx_bytes(pid, "eth0");
    let (sent, kernel) = (after.sent_bytes - before.sent_bytes, tx1 - tx0);
    eprintln!("payload {uploaded} B, sent {sent} B by the agent's count, {kernel} B by /proc/net/dev");
    assert!(sent >= uploaded, "what left the machine includes the payload: sent {sent}, payload {uploaded}");
    // The agent's samples are taken just after the kernel's first reading and just before its last
    // one: they differ only by the API's answers in between (a few kB at most).
    assert!(sent <= kernel && kernel - sent < 64 << 10, "agent {sent} B, kernel {kernel} B");
    let (_, metrics) = crate::send(&format!("{}/metrics", agent.url), "GET", Some(&agent.token), None);
    let total: u64 = (metrics.lines())
        .find_map(|l| l.strip_prefix("odseed_agent_sent_bytes_total ")?.parse().ok())
        .unwrap_or_else(|| panic!("no sent counter in\n{metrics}"));
    assert!(total >= after.sent_bytes, "the metric is the same counter: {total} < {}", after.sent_bytes);
    drop(agent);
}
