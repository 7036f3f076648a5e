//! `odseed lab`, whole: every leecher gets the file, helpers come and go, nothing is left behind,
//! also after a Ctrl-C in the middle.

use crate::{events, named, world, World};
use odseed_lab::testing::agent_bin;
use odseed_lab::wait_until;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SMALL: &[&str] = &[
    "lab",
    "--leechers",
    "3",
    "--helpers",
    "2",
    "--size",
    "3000000",
    "--origin-kbps",
    "100",
    "--helper-kbps",
    "100",
    "--json",
];

/// The lab finds odseed-agent on PATH (tests may not have it beside odseed).
fn with_agent_on_path(w: &World, name: &str, args: &[&str]) -> odseed_lab::Proc {
    let bin_dir = agent_bin().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = std::process::Command::new(crate::odseed_bin());
    cmd.args(args).env("PATH", path).env("XDG_STATE_HOME", w.state_home());
    odseed_lab::Proc::spawn(name, cmd, &w.dir.path().join(format!("{name}.log"))).unwrap()
}

/// Processes whose command line or working directory is under `dir`.
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = entry.path();
        let cmdline = std::fs::read(p.join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(p.join("cwd")).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
        if cmdline.contains(&needle) || cwd.starts_with(&needle) {
            found.push(format!("{}: {cmdline}", p.display()));
        }
    }
    found
}

fn lab_dir(ev: &[Value]) -> PathBuf {
    PathBuf::from(named(ev, "lab_start")[0]["dir"].as_str().unwrap())
}

#[test]
fn a_small_lab_delivers_the_file_and_leaves_nothing_behind() {
    let w = world("lab");
    let mut lab = with_agent_on_path(&w, "lab", SMALL);
    let status =
        lab.wait_exit(Duration::from_secs(300)).unwrap_or_else(|| panic!("the lab did not end\n{}", lab.log_tail(40)));
    assert!(status.success(), "{status}\n{}", lab.log_tail(40));
    let ev = events(&lab);
    let report = named(&ev, "report");
    assert_eq!(report.len(), 1, "{}", lab.log_tail(20));
    let r = report[0];
    assert_eq!(r["completion"].as_array().map(Vec::len), Some(3));
    assert_eq!(r["helpers_engaged"].as_u64(), Some(2));
    assert!(r["bound"].as_f64().is_some_and(|b| b > 0.0), "{r}");
    // The default mix of clients, each leecher traced: where the time went, per client.
    assert_eq!(r["clients"], serde_json::json!(["transmission", "libtorrent", "transmission"]), "{r}");
    let first_byte = r["first_byte_mean"].as_f64().unwrap_or_else(|| panic!("no first byte: {r}"));
    assert!(first_byte > 0.0 && first_byte < r["max"].as_f64().unwrap(), "{r}");
    assert!(r["floor"].as_f64().is_some_and(|f| f > r["bound"].as_f64().unwrap()), "{r}");
    assert!(r["server_copies"].as_f64().is_some_and(|c| c >= 0.9), "the servers sent at least about a copy: {r}");
    assert_eq!(r["by_client"].as_array().map(Vec::len), Some(2), "{r}");
    let trace = &named(&ev, "trace")[0]["trace"];
    assert_eq!(trace["done"].as_array().map(Vec::len), Some(3));
    assert!(trace["helpers"].as_array().unwrap().iter().any(|h| h == 2), "the helpers' engagement is traced");
    // The picture: written where the state lives, a line per leecher, its path said.
    let picture = PathBuf::from(named(&ev, "picture")[0]["path"].as_str().unwrap());
    assert_eq!(picture, w.state_home().join("odseed/lab.svg"));
    let svg = std::fs::read_to_string(&picture).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 3);
    // The lab checks the bytes itself and fails otherwise; the report says it did.
    assert!(!lab.log_text().contains("differs from the origin"));
    assert_eq!(named(&ev, "engage").len(), 2);
    assert_eq!(named(&ev, "release").len(), 2);
    let dir = lab_dir(&ev);
    assert!(!dir.exists(), "the lab's directory is gone");
    assert!(processes_under(&dir).is_empty(), "left running: {:?}", processes_under(&dir));
}

#[test]
fn ctrl_c_in_the_middle_tears_everything_down() {
    let w = world("labint");
    let mut args = SMALL.to_vec();
    args.extend(["--size", "20000000"]);
    let mut lab = with_agent_on_path(&w, "lab", &args);
    wait_until(Duration::from_secs(120), "the helpers to be engaged", || {
        (named(&events(&lab), "engage").len() == 2).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.log_tail(30)));
    let dir = lab_dir(&events(&lab));
    assert!(!processes_under(&dir).is_empty(), "the swarm runs");
    lab.signal(libc::SIGINT);
    let status = lab.wait_exit(Duration::from_secs(60)).expect("the lab ends after Ctrl-C");
    assert_eq!(status.code(), Some(130), "{}", lab.log_tail(20));
    assert_eq!(named(&events(&lab), "release").len(), 2, "helpers released: {}", lab.log_tail(20));
    assert!(!dir.exists(), "the lab's directory is gone");
    wait_until(Duration::from_secs(10), "no process left", || processes_under(&dir).is_empty().then_some(()))
        .unwrap_or_else(|e| panic!("{e}: {:?}", processes_under(&dir)));
}

#[test]
fn three_torrents_of_different_demand_share_the_boards_under_watch() {
    let w = world("labk");
    let args = [
        "lab",
        "--torrents",
        "3",
        "--leechers",
        "4",
        "--helpers",
        "2",
        "--size",
        "1000000",
        "--origin-kbps",
        "300",
        "--helper-kbps",
        "200",
        "--json",
    ];
    let mut lab = with_agent_on_path(&w, "labk", &args);
    let status =
        lab.wait_exit(Duration::from_secs(300)).unwrap_or_else(|| panic!("the lab did not end\n{}", lab.log_tail(40)));
    assert!(status.success(), "{status}\n{}", lab.log_tail(40));
    let ev = events(&lab);
    let reports = named(&ev, "report");
    let shape: Vec<(&str, usize)> = reports
        .iter()
        .map(|r| (r["torrent"].as_str().unwrap(), r["completion"].as_array().map_or(0, Vec::len)))
        .collect();
    // Demand ceil(4 x (3 - i) / 3): 4, 3 and 2 leechers.
    assert_eq!(shape, [("payload.bin", 4), ("payload1.bin", 3), ("payload2.bin", 2)], "{}", lab.log_tail(20));
    // watch's events name the torrent; every engagement is released.
    let (engaged, released) = (named(&ev, "engage"), named(&ev, "release"));
    assert!(engaged.len() >= 2, "{}", lab.log_tail(40));
    assert!(engaged.iter().all(|e| e["info_hash"].is_string()), "{engaged:?}");
    assert_eq!(engaged.len(), released.len(), "{}", lab.log_tail(40));
    assert!(named(&ev, "round").iter().all(|r| r["torrents"] == 3));
    let dir = lab_dir(&ev);
    assert!(!dir.exists(), "the lab's directory is gone");
    assert!(processes_under(&dir).is_empty(), "left running: {:?}", processes_under(&dir));
}

#[test]
fn a_crowd_after_a_quiet_start_gets_helpers_in_seconds_not_at_the_next_interval() {
    crowd("labcrowd", "transmission", "Transmission 3.00");
}

/// The same with the origin as qBittorrent (Debian 12's qbittorrent-nox), odseed's `[client]`.
#[test]
fn a_crowd_seen_by_a_qbittorrent_origin_gets_helpers_in_seconds() {
    crowd("labcrowd-qbt", "qbittorrent", "qBittorrent v4.5");
}

/// The same with the origin as Deluge (deluged and deluge-web), odseed's `[client]`.
#[test]
fn a_crowd_seen_by_a_deluge_origin_gets_helpers_in_seconds() {
    crowd("labcrowd-deluge", "deluge", "Deluge 2.");
}

/// `odseed lab --crowd --origin-client CLIENT`; the report names the origin (`named`...).
fn crowd(name: &str, client: &str, named_as: &str) {
    let w = world(name);
    let args = ["lab", "--crowd", "--origin-client", client, "--leechers", "3", "--helpers", "2", "--size", "3000000"];
    let mut lab = with_agent_on_path(&w, name, &[&args[..], &["--json"]].concat());
    let status =
        lab.wait_exit(Duration::from_secs(300)).unwrap_or_else(|| panic!("the lab did not end\n{}", lab.log_tail(40)));
    assert!(status.success(), "{status}\n{}", lab.log_tail(40));
    let ev = events(&lab);
    let r = named(&ev, "report")[0];
    assert!(r["origin"].as_str().is_some_and(|o| o.starts_with(named_as)), "{r}");
    let at = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("no {k}: {r}"));
    let (visible, engaged) = (at("crowd_visible"), at("first_engaged"));
    // The watch runs at the default 60-s interval over a quiet swarm: only the publisher's client,
    // asked between rounds, can bring the helpers before the next round.
    assert!(engaged - visible < 30.0, "engaged {engaged} s, the crowd visible at {visible} s");
    assert!(lab.log_text().contains("sees more leechers"), "{}", lab.log_tail(30));
    assert!(at("first_helper_byte") >= engaged, "{r}");
    assert_eq!(named(&ev, "engage").len(), named(&ev, "release").len(), "{}", lab.log_tail(30));
}

#[test]
fn cold_helpers_are_not_engaged_and_staged_ones_are() {
    let w = world("labcold");
    let run = |name: &str, extra: &str| {
        let args: Vec<&str> = SMALL.iter().copied().chain([extra]).collect();
        let mut lab = with_agent_on_path(&w, name, &args);
        let status = lab.wait_exit(Duration::from_secs(300)).unwrap_or_else(|| panic!("no end\n{}", lab.log_tail(40)));
        assert!(status.success(), "{status}\n{}", lab.log_tail(40));
        let ev = events(&lab);
        (named(&ev, "report")[0].clone(), ev, lab.log_tail(60))
    };
    // Empty boards and the origin alone: none engaged; the bound is the origin's, F / u_s = 30 s.
    let (r, _, log) = run("cold", "--cold-helpers");
    assert_eq!(r["helpers_engaged"], 0, "{log}");
    assert!((r["bound"].as_f64().unwrap() - 30.0).abs() < 0.01, "{r}");
    assert!(r.get("staging").is_none());
    // Staged first: both boards fill up before the leechers come, then they are engaged.
    let (r, ev, log) = run("staged", "--stage");
    let staging = &r["staging"];
    assert_eq!(staging["helpers"], 2, "{r}");
    let origin = staging["origin_copies"].as_f64().unwrap();
    let traded = staging["from_helpers_copies"].as_f64().unwrap();
    assert!(
        origin >= 1.0 && origin + traded >= 1.9,
        "each board got a whole copy, at least one from the origin: {staging}"
    );
    // Per board, what it got from the origin: shares that add up to what the origin sent.
    let shares: Vec<f64> = staging["from_origin"].as_array().unwrap().iter().map(|h| h[1].as_f64().unwrap()).collect();
    assert_eq!(shares.len(), 2, "{staging}");
    assert!(shares.iter().all(|s| (0.0..=1.0).contains(s)), "{staging}");
    assert!((shares.iter().sum::<f64>() - origin).abs() < 0.05 || shares.contains(&1.0), "{staging}");
    assert!(r["helpers_engaged"].as_u64() >= Some(1), "{log}");
    assert_eq!(named(&ev, "staged").len(), 2, "{log}");
}

#[test]
fn a_web_seed_serves_the_leechers_in_place_of_helpers() {
    let w = world("labweb");
    let args: Vec<&str> = SMALL.iter().copied().chain(["--webseed", "100"]).collect();
    let mut lab = with_agent_on_path(&w, "web", &args);
    let status = lab.wait_exit(Duration::from_secs(300)).unwrap_or_else(|| panic!("no end\n{}", lab.log_tail(40)));
    assert!(status.success(), "{status}\n{}", lab.log_tail(40));
    let ev = events(&lab);
    let r = named(&ev, "report")[0];
    assert_eq!(r["helpers_engaged"], 0, "no helper: {r}");
    assert!(named(&ev, "engage").is_empty());
    // The web seed is a server of the file: F / (u_s + w) = 3 MB / 200 kB/s = 15 s binds.
    assert!((r["bound"].as_f64().unwrap() - 15.0).abs() < 0.01, "{r}");
    let sent = r["webseed_uploaded"].as_u64().unwrap_or(0);
    assert!(sent > 0, "the leechers used the web seed: {r}");
    // Its bytes are the servers' too.
    let servers = r["server_copies"].as_f64().unwrap() * 3_000_000.0;
    assert!(servers >= (r["origin_uploaded"].as_u64().unwrap() + sent) as f64 * 0.99, "{r}");
}
