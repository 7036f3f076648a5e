//! Crashes and signals: nothing the agent was told to seed is lost, and no process is left behind.

use crate::{seeding, torrent_in, world, world_with};
use odseed_lab::process::alive;
use odseed_lab::{wait_until, AgentOptions};
use odseed_proto::wire::{DaemonState, TorrentState};
use odseed_proto::InfoHash;
use std::time::Duration;

each_daemon! {
fn a_killed_daemon_is_restarted_and_seeds_again(d: Daemon) {
    let w = world_with("daemonkill", d);
    let agent = w.agent("a", &AgentOptions::default());
    let t = torrent_in(&agent.data_dir, "d.bin", 100_000);
    let c = agent.client();
    c.put(&t.meta.info_hash, &t.bytes).unwrap();
    seeding(&c, &t.meta.info_hash);
    let pid = agent.daemon_pid().expect("daemon pid");
    unsafe_kill(pid, libc::SIGKILL);
    let new_pid =
        wait_until(Duration::from_secs(30), "a new daemon", || agent.daemon_pid().filter(|p| *p != pid)).unwrap();
    assert_ne!(new_pid, pid);
    seeding(&c, &t.meta.info_hash);
    let (_, metrics) = crate::send(&format!("{}/metrics", agent.url), "GET", Some(&agent.token), None);
    assert!(metrics.lines().any(|l| l == "odseed_agent_daemon_restarts_total 1"), "{metrics}");
}
}

each_daemon! {
fn a_killed_agent_restores_every_torrent_when_started_again(d: Daemon) {
    let w = world_with("agentkill", d);
    let mut agent = w.agent("a", &AgentOptions::default());
    let a = torrent_in(&agent.data_dir, "a.bin", 60_000);
    let b = torrent_in(&agent.data_dir, "b.bin", 80_000);
    let c = agent.client();
    for t in [&a, &b] {
        c.put(&t.meta.info_hash, &t.bytes).unwrap();
    }
    seeding(&c, &a.meta.info_hash);
    let old_daemon = agent.daemon_pid().expect("daemon pid");
    agent.kill9();
    agent.launch().unwrap();
    let c = agent.client();
    let mut listed: Vec<InfoHash> = c.list().unwrap().iter().map(|t| t.info_hash).collect();
    listed.sort();
    let mut want = vec![a.meta.info_hash, b.meta.info_hash];
    want.sort();
    assert_eq!(listed, want, "every torrent is restored");
    seeding(&c, &a.meta.info_hash);
    seeding(&c, &b.meta.info_hash);
    assert!(!alive(old_daemon), "the old daemon is gone");
}
}

each_daemon! {
fn killing_agent_and_daemon_together_loses_nothing(d: Daemon) {
    let w = world_with("bothkill", d);
    let mut agent = w.agent("a", &AgentOptions::default());
    let t = torrent_in(&agent.data_dir, "k.bin", 90_000);
    let c = agent.client();
    c.put(&t.meta.info_hash, &t.bytes).unwrap();
    let daemon = wait_until(Duration::from_secs(30), "the daemon", || agent.daemon_pid()).unwrap();
    unsafe_kill(daemon, libc::SIGKILL);
    agent.kill9();
    wait_until(Duration::from_secs(10), "the daemon to die", || (!alive(daemon)).then_some(())).unwrap();
    agent.launch().unwrap();
    seeding(&agent.client(), &t.meta.info_hash);
}
}

each_daemon! {
fn sigterm_stops_the_daemon_and_leaves_no_process(d: Daemon) {
    let w = world_with("sigterm", d);
    let mut agent = w.agent("a", &AgentOptions::default());
    let t = torrent_in(&agent.data_dir, "s.bin", 50_000);
    let c = agent.client();
    c.put(&t.meta.info_hash, &t.bytes).unwrap();
    seeding(&c, &t.meta.info_hash);
    let daemon = agent.daemon_pid().expect("daemon pid");
    let status = agent.terminate(Duration::from_secs(30)).expect("the agent exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(!alive(daemon), "transmission-daemon {daemon} outlived the agent");
    assert!(agent.log().contains("stopping transmission-daemon"));
}
}

#[test]
fn a_missing_daemon_program_is_reported_and_retried_while_the_api_serves() {
    let w = world("nodaemon");
    let mut agent = w.agent("a", &AgentOptions::default());
    let text = std::fs::read_to_string(&agent.config)
        .unwrap()
        .replace("program = \"transmission-daemon\"", "program = \"/nonexistent/transmission-daemon\"");
    std::fs::write(&agent.config, text).unwrap();
    agent.kill9();
    agent.launch().unwrap();
    let t = torrent_in(&agent.data_dir, "n.bin", 10_000);
    let c = agent.client();
    c.put(&t.meta.info_hash, &t.bytes).unwrap();
    wait_until(Duration::from_secs(20), "backoff", || (c.health().ok()?.daemon == DaemonState::Backoff).then_some(()))
        .unwrap();
    assert_eq!(c.get(&t.meta.info_hash).unwrap().unwrap().state, TorrentState::Queued);
    assert!(agent.log().contains("cannot start /nonexistent/transmission-daemon"), "{}", agent.log());
}

fn unsafe_kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid the test just read from the agent's pid file and checked alive.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

each_daemon! {
fn a_hung_daemon_is_restarted(d: Daemon) {
    let w = world_with("hung", d);
    let agent = w.agent("a", &AgentOptions { stop_grace_secs: 2, ..AgentOptions::default() });
    let t = torrent_in(&agent.data_dir, "h.bin", 50_000);
    let c = agent.client();
    c.put(&t.meta.info_hash, &t.bytes).unwrap();
    seeding(&c, &t.meta.info_hash);
    let pid = agent.daemon_pid().expect("daemon pid");
    unsafe_kill(pid, libc::SIGSTOP);
    let new_pid = wait_until(Duration::from_secs(120), "a new daemon after the hang", || {
        agent.daemon_pid().filter(|p| *p != pid)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    assert_ne!(new_pid, pid);
    assert!(!alive(pid), "the hung daemon was killed");
    seeding(&c, &t.meta.info_hash);
    assert!(agent.log().contains("RPC silent"), "{}", agent.log());
}
}

each_daemon! {
fn a_daemon_left_by_an_earlier_agent_is_stopped_first(d: Daemon) {
    let w = world_with("leftover", d);
    let mut agent = w.agent("a", &AgentOptions::default());
    agent.terminate(Duration::from_secs(30)).expect("first agent stops");
    // A daemon on the agent's config dir and pid file that no agent owns (as if the parent-death
    // signal had been lost), started by the test itself.
    let d = odseed_proto::transmission::DaemonConfig::default();
    let pid_file = agent.state_dir.join("daemon.pid");
    let (mut orphan, _) = odseed_proto::transmission::launch::launch(
        &d,
        &agent.data_dir,
        &agent.state_dir.join("transmission"),
        &serde_json::json!({}),
        Some(&pid_file),
        None,
    )
    .unwrap();
    let orphan_pid = orphan.id();
    agent.launch().unwrap();
    assert!(
        agent.log().contains(&format!("stopping transmission-daemon (pid {orphan_pid}) left over")),
        "{}",
        agent.log()
    );
    orphan.wait().unwrap(); // the agent's SIGTERM ended it; reap it
                            // The agent then runs a daemon of its own.
    let t = torrent_in(&agent.data_dir, "l.bin", 30_000);
    agent.client().put(&t.meta.info_hash, &t.bytes).unwrap();
    seeding(&agent.client(), &t.meta.info_hash);
    assert_ne!(agent.daemon_pid(), Some(orphan_pid));
}
}
