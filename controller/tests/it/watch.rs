//! `odseed watch`: three torrents of different demand share two boards (real agents, a real
//! opentracker; the leechers are announces of made-up peers, so demand is set exactly). The boards
//! go to the two neediest; `run` cannot take a board the watch holds; when demand moves, a board
//! moves after the cooldown and the other stays; after kill -9 a new watch leaves nothing engaged
//! twice; SIGTERM releases everything.

use crate::{announce, events, named, world, World};
use odseed_lab::{wait_until, Agent, AgentOptions, Proc, Tracker};
use odseed_proto::InfoHash;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

struct Catalogue {
    tracker: Tracker,
    boards: Vec<Agent>,
    hashes: Vec<InfoHash>,
    files: Vec<PathBuf>,
    cfg: PathBuf,
}

/// Three 256 KiB torrents in a directory, both boards holding their content, and a config that
/// watches the directory with ratio 0.5 and a cooldown of `cooldown` seconds.
fn catalogue(w: &World, cooldown: u64) -> Catalogue {
    let tracker_ip = Ipv4Addr::new(10, 77, 0, 1);
    w.ns.add_host(tracker_ip).unwrap();
    let announce_url = format!("http://{tracker_ip}:6969/announce");
    let content = w.dir.path().join("content");
    let torrents = w.dir.path().join("torrents");
    std::fs::create_dir_all(&torrents).unwrap();
    let mut made = Vec::new();
    let mut metas = Vec::new();
    for (i, name) in ["a.bin", "b.bin", "c.bin"].into_iter().enumerate() {
        std::fs::create_dir_all(&content).unwrap();
        let m = odseed_lab::content::make(&content, name, 256 << 10, 7 + i as u64, std::slice::from_ref(&announce_url))
            .unwrap();
        let file = torrents.join(format!("{name}.torrent"));
        std::fs::write(&file, &m.bytes).unwrap();
        made.push((m.meta.info_hash, file));
        metas.push(m);
    }
    let hashes: Vec<InfoHash> = made.iter().map(|(h, _)| *h).collect();
    let mut boards = Vec::new();
    let mut cfg = format!(
        "[watch]\nratio = 0.5\ndir = \"{}\"\n[policy]\nmin_size = 0\ncooldown = {cooldown}\n",
        torrents.display()
    );
    for i in 0..2 {
        let ip = Ipv4Addr::new(10, 77, 2, 10 + i as u8);
        w.ns.add_host(ip).unwrap();
        let root = w.dir.path().join(format!("board{i}"));
        std::fs::create_dir_all(root.join("data")).unwrap();
        for name in ["a.bin", "b.bin", "c.bin"] {
            std::fs::copy(content.join(name), root.join("data").join(name)).unwrap();
        }
        let o = AgentOptions { host: ip, listen: ip, ..AgentOptions::default() };
        let mut a = Agent::start(&odseed_lab::testing::agent_bin(), &root, &o).unwrap();
        // Each board checks its copies, so that it says it holds them.
        a.register(&metas.iter().collect::<Vec<_>>()).unwrap();
        a.restart().unwrap();
        cfg += &format!(
            "[[board]]\nname = \"board{i}\"\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            a.url,
            root.join("token").display()
        );
        boards.push(a);
    }
    // After the boards checked their copies: none of their announces reached it.
    let tracker = Tracker::start(&w.dir.path().join("tracker"), tracker_ip, 6969, &hashes).unwrap();
    let cfg = w.write_config(&cfg);
    Catalogue { tracker, boards, hashes, files: made.into_iter().map(|(_, f)| f).collect(), cfg }
}

/// `n` made-up leechers of `hash`, numbered from `first`, announce `event`.
fn leechers(c: &Catalogue, hash: InfoHash, first: usize, n: usize, event: &str) {
    for p in first..first + n {
        announce(&c.tracker.announce_url(), hash, p, 1000, event);
    }
}

fn spawn_watch(w: &World, name: &str, c: &Catalogue) -> Proc {
    w.spawn(name, &["watch", "--interval", "1", "--json", "--config", c.cfg.to_str().unwrap()])
}

/// The (helper, info hash) of every engage (or release) event so far.
fn pairs(p: &Proc, event: &str) -> Vec<(String, String)> {
    let e = events(p);
    let to_pair = |v: &&Value| Some((v["helper"].as_str()?.to_string(), v["info_hash"].as_str()?.to_string()));
    named(&e, event).iter().filter_map(to_pair).collect()
}

fn wait_for(p: &Proc, what: &str, mut f: impl FnMut(&Proc) -> bool) {
    wait_until(Duration::from_secs(90), what, || f(p).then_some(()))
        .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(40)));
}

/// What each board's agent seeds.
fn seeded(c: &Catalogue) -> Vec<Vec<String>> {
    (c.boards.iter())
        .map(|b| b.client().list().unwrap().into_iter().map(|t| t.info_hash.to_string()).collect())
        .collect()
}

fn ledger(w: &World) -> Vec<Value> {
    let text = std::fs::read_to_string(w.ledger()).unwrap_or_else(|_| "{\"helpers\":[]}".into());
    serde_json::from_str::<Value>(&text).unwrap()["helpers"].as_array().cloned().unwrap_or_default()
}

#[test]
fn boards_go_to_the_neediest_and_move_with_demand() {
    let w = world("watch");
    let c = catalogue(&w, 15);
    let [a, b, cc] = [c.hashes[0], c.hashes[1], c.hashes[2]];
    let (a_s, b_s, c_s) = (a.to_string(), b.to_string(), cc.to_string());
    // Demand: a 10 leechers (wants 5), b 6 (wants 3), c 2 (wants 1): a and b are the neediest.
    leechers(&c, a, 0, 10, "started");
    leechers(&c, b, 100, 6, "started");
    leechers(&c, cc, 200, 2, "started");
    let mut watch = spawn_watch(&w, "watch1", &c);
    wait_for(&watch, "two boards engaged", |p| pairs(p, "engage").len() >= 2);
    let mut on: Vec<String> = pairs(&watch, "engage").into_iter().map(|(_, h)| h).collect();
    on.sort();
    let mut want = vec![a_s.clone(), b_s.clone()];
    want.sort();
    assert_eq!(on, want, "the two neediest get a board each");
    // `odseed status` says which board seeds which torrent.
    let out = w.odseed(&["status", "--json", "--config", c.cfg.to_str().unwrap()]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seeds: Vec<String> =
        status["ledger"].as_array().unwrap().iter().map(|e| e["torrent"].as_str().unwrap().to_string()).collect();
    seeds.sort();
    assert_eq!(seeds, ["a.bin", "b.bin"]);

    // Demand moves: a's leechers leave, c gets 20 (wants 10, the neediest now).
    leechers(&c, a, 0, 10, "stopped");
    leechers(&c, cc, 300, 20, "started");
    wait_for(&watch, "the board to move from a to c", |p| {
        pairs(p, "release").iter().any(|(_, h)| *h == a_s) && pairs(p, "engage").iter().any(|(_, h)| *h == c_s)
    });
    let e = events(&watch);
    let kept = named(&e, "torrent").iter().any(|t| t["info_hash"] == a_s && t["leechers"] == 0 && t["wanted"] == 1);
    assert!(kept, "a keeps its board through the cooldown once its leechers are gone\n{}", watch.log_tail(40));
    assert!(!pairs(&watch, "release").iter().any(|(_, h)| *h == b_s), "b's board never moved");

    // `run` cannot take a board the watch holds (each has one slot).
    let out = w.odseed(&[
        "run",
        c.files[0].to_str().unwrap(),
        "1",
        "0",
        "30",
        "--once",
        "--min-size",
        "0",
        "--json",
        "--config",
        c.cfg.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("\"engage\""), "run engaged a board the watch holds:\n{text}");

    // kill -9, then a new watch: the leftovers are released, then engaged again, once each.
    watch.kill9();
    assert_eq!(ledger(&w).len(), 2, "the killed watch's two engagements are in the ledger");
    let mut second = spawn_watch(&w, "watch2", &c);
    wait_for(&second, "two boards engaged again", |p| pairs(p, "engage").len() >= 2);
    let entries = ledger(&w);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|e| e["owner"]["pid"] == second.pid()), "{entries:?}");
    let mut held: Vec<String> = seeded(&c).into_iter().flatten().collect();
    held.sort();
    let mut want = vec![b_s.clone(), c_s.clone()];
    want.sort();
    assert_eq!(held, want, "each board seeds one torrent, b and c, once");

    second.signal(libc::SIGTERM);
    let status = second.wait_exit(Duration::from_secs(60)).expect("watch ends after SIGTERM");
    assert_eq!(status.code(), Some(130), "{}", second.log_tail(20));
    assert!(ledger(&w).is_empty(), "everything released");
    assert!(seeded(&c).iter().all(Vec::is_empty), "the agents seed nothing");
}

#[test]
fn the_ec2_budget_is_kept_across_restarts_and_stops_the_instances_once_spent() {
    use crate::ec2::{idle_agents, Cloud};
    let w = world("watchbudget");
    let tracker_ip = Ipv4Addr::new(10, 77, 0, 1);
    w.ns.add_host(tracker_ip).unwrap();
    let announce_url = format!("http://{tracker_ip}:6969/announce");
    let torrents = w.dir.path().join("torrents");
    std::fs::create_dir_all(&torrents).unwrap();
    let made =
        odseed_lab::content::make(w.dir.path(), "x.bin", 100_000, 3, std::slice::from_ref(&announce_url)).unwrap();
    std::fs::write(torrents.join("x.torrent"), &made.bytes).unwrap();
    let hash = made.meta.info_hash;
    let tracker = Tracker::start(&w.dir.path().join("tracker"), tracker_ip, 6969, &[hash]).unwrap();
    for p in 0..4 {
        announce(&tracker.announce_url(), hash, p, 1000, "started");
    }
    let (mut agents, _) = idle_agents(&w, 1);
    let cloud = Cloud::start(&w);
    let ids = cloud.instances_for("eu-west-3", &mut agents);
    // 0.001 h = 3.6 s of instance time a month.
    let cfg = format!(
        "[watch]\ndir = \"{}\"\n[budget]\ninstance_hours_per_month = 0.001\n{}",
        torrents.display(),
        cloud.config(&cloud.moto.url(), &["eu-west-3"], 1, 60)
    );
    let cfg = w.write_config(&cfg);
    let args = ["watch", "--interval", "1", "--json", "--config", cfg.to_str().unwrap()];
    let mut watch = w.spawn("watch1", &args);
    wait_for(&watch, "the instance engaged, then released once the budget is spent", |p| {
        pairs(p, "engage").iter().any(|(h, _)| *h == ids[0]) && pairs(p, "release").iter().any(|(h, _)| *h == ids[0])
    });
    wait_for(&watch, "a round with no instance allowed", |p| {
        named(&events(p), "round").iter().any(|r| r["max_instances"] == 0 && r["budget_left_hours"] == 0.0)
    });
    let states = crate::ec2_api::states(&cloud.ec2("eu-west-3"), &ids);
    assert!(states.iter().all(|s| s == "stopped" || s == "stopping"), "{states:?}");
    assert_eq!(watch.log_text().matches("is spent").count(), 1, "said once\n{}", watch.log_tail(30));
    watch.signal(libc::SIGTERM);
    watch.wait_exit(Duration::from_secs(60)).expect("watch ends");
    let budget: Value =
        serde_json::from_slice(&std::fs::read(w.state_home().join("odseed/budget.json")).unwrap()).unwrap();
    assert!(budget["instance_seconds"].as_u64().is_some_and(|s| s >= 3), "{budget}");

    // A new watch knows the month's budget is spent: no instance at all. It writes its figures for
    // node_exporter too.
    let prom = w.dir.path().join("odseed.prom");
    let with_file = [&args[..], &["--metrics-file", prom.to_str().unwrap()]].concat();
    let mut again = w.spawn("watch2", &with_file);
    wait_for(&again, "three rounds", |p| named(&events(p), "round").len() >= 3);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.lines().any(|l| l.starts_with("odseed_ec2_instance_hours_month{month=")), "{text}");
    assert!(text.lines().any(|l| l == "odseed_watch_max_instances 0"), "{text}");
    assert!(pairs(&again, "engage").is_empty(), "{}", again.log_tail(20));
    let e = events(&again);
    let torrents = named(&e, "torrent");
    assert!(!torrents.is_empty() && torrents.iter().all(|t| t["wanted"].as_u64() > Some(0) && t["instances"] == 0));
    // `odseed status` shows the month's use.
    let out = w.odseed(&["status", "--json", "--config", cfg.to_str().unwrap()]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["budget"]["left_hours"], 0.0, "{status}");
    again.signal(libc::SIGTERM);
    again.wait_exit(Duration::from_secs(60)).expect("watch ends");
}

#[test]
fn a_board_that_was_lost_for_a_while_keeps_its_torrent_and_moves_nothing() {
    let w = world("watchlost");
    let mut c = catalogue(&w, 5);
    leechers(&c, c.hashes[0], 0, 10, "started");
    leechers(&c, c.hashes[1], 100, 6, "started");
    let watch = spawn_watch(&w, "watch", &c);
    wait_for(&watch, "two boards engaged", |p| pairs(p, "engage").len() >= 2);
    let engaged = pairs(&watch, "engage");
    let (lost_board, lost_on) = engaged.iter().find(|(b, _)| b == "board0").cloned().unwrap();

    // board0's agent dies, then comes back (its desired state kept): it is lost, then answers.
    c.boards[0].kill9();
    wait_for(&watch, "board0 lost", |p| p.log_text().contains("board board0: lost"));
    c.boards[0].launch().unwrap();
    wait_for(&watch, "board0 reachable again", |p| p.log_text().contains("board board0: reachable again"));
    // Ten more rounds: it rests (2 min) but keeps its torrent; nothing is released or moved.
    let rounds = named(&events(&watch), "round").len();
    wait_for(&watch, "ten more rounds", |p| named(&events(p), "round").len() >= rounds + 10);
    assert!(pairs(&watch, "release").is_empty(), "nothing released\n{}", watch.log_tail(40));
    assert_eq!(pairs(&watch, "engage").len(), 2, "nothing engaged again\n{}", watch.log_tail(40));
    let e = events(&watch);
    let last = named(&e, "torrent").into_iter().rev().find(|t| t["info_hash"] == lost_on.as_str()).unwrap();
    assert_eq!(last["boards"][0], lost_board.as_str(), "{last}");
    assert_eq!(ledger(&w).len(), 2);
}
