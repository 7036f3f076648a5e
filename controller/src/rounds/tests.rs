//! A round's decisions with fake agents and a fake EC2 region (helpers/testing.rs): engagement,
//! loss and replacement, faults, the budget spent, release on a signal. The ledger and the budget
//! are real files in a directory of the test's own. Tests against real agents, daemons and moto
//! are in tests/it.

use super::{keep, Loop, Options};
use crate::budget::{month_of, Budget};
use crate::catalogue::Catalogue;
use crate::config::{BoardConfig, BudgetConfig, Config};
use crate::guard::{End, Guard};
use crate::helpers::ec2::{Ec2Pool, Fleet};
use crate::helpers::testing::{FakeAgents, FakeEc2};
use crate::ledger::{now_secs, Ledger};
use crate::observe::{Count, Subject};
use crate::output::Printer;
use crate::policy::{Counts, EmptyHelpers, ExitReason, Params, Placement};
use crate::price::Prices;
use crate::target::Target;
use odseed_proto::bencode::Owned;
use odseed_proto::wire::ErrorCode;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Counts set by the test: every torrent gets the same.
#[derive(Clone)]
struct Script(Arc<Mutex<Result<Counts, String>>>);

impl Script {
    fn new(seeders: u32, leechers: u32) -> Script {
        let c = Counts { seeders, leechers, peers_connected: None, size: None };
        Script(Arc::new(Mutex::new(Ok(c))))
    }
}

impl Count for Script {
    fn counts(&mut self, subjects: &[Subject]) -> Vec<Result<Counts, String>> {
        subjects.iter().map(|_| self.0.lock().unwrap().clone()).collect()
    }
}

/// One test's world: a directory, fake agents, a fake region, a torrent.
struct World {
    dir: PathBuf,
    agents: FakeAgents,
    ec2: FakeEc2,
    target: Target,
}

impl World {
    fn new(instances: usize) -> World {
        let dir = std::env::temp_dir().join(format!("odseed-rounds-{}", odseed_proto::fsutil::random_hex(6).unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        let info = Owned::dict([
            ("length", Owned::Int(1 << 20)),
            ("name", Owned::str("t.bin")),
            ("piece length", Owned::Int(1 << 20)),
            ("pieces", Owned::Bytes(vec![7; 20])),
        ]);
        let bytes = Owned::dict([("info", info)]).encode();
        let meta = odseed_proto::metainfo::parse(&bytes).unwrap();
        World {
            dir,
            agents: FakeAgents::default(),
            ec2: FakeEc2::with_stopped(instances),
            target: Target { meta, bytes },
        }
    }

    fn config(&self, boards: &[&str]) -> Config {
        let boards = (boards.iter())
            .map(|name| BoardConfig {
                name: name.to_string(),
                url: format!("http://{name}:5050"),
                token_file: self.dir.join("token"),
                token: "token".into(),
                cert_sha256: None,
                plain_http: false,
                slots: 1,
                upload_kbps: 0,
            })
            .collect();
        Config { boards, ..Config::default() }
    }

    fn fleet(&self, max_instances: u32) -> Fleet {
        let pool = Ec2Pool {
            client: Box::new(self.ec2.clone()),
            tag: ("odseed:role".into(), "helper".into()),
            agent_port: 5050,
            token: "token".into(),
            token_file: self.dir.join("token"),
            pin: None,
            plain_http: false,
            instances: Vec::new(),
            unusable_until: None,
            failed: Vec::new(),
            prices: Prices::default(),
            upload_kbps: None,
        };
        let pools = if max_instances > 0 { vec![pool] } else { Vec::new() };
        Fleet {
            pools,
            max_instances,
            boot_timeout: Duration::from_secs(5),
            usage: BTreeMap::new(),
            bills: Vec::new(),
            stranded: Vec::new(),
            deadline: None,
            connect: Arc::new(self.agents.clone()),
            download_kbps: 0,
            credentials: None,
        }
    }

    fn ledger(&self) -> Ledger {
        Ledger::at(&self.dir.join("ledger.json"))
    }

    fn budget(&self, hours: f64) -> Budget {
        let c = BudgetConfig { instance_hours_per_month: Some(hours), ..BudgetConfig::default() };
        Budget::at(&self.dir.join("budget.json"), &c)
    }

    fn seeds(&self, name: &str) -> usize {
        self.agents.seeds(&format!("http://{name}:5050"))
    }

    fn instance_seeds(&self, k: usize) -> usize {
        self.agents.seeds(&format!("http://fake-{k}:5050"))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_options(ratio: f64) -> Options {
    Options {
        run: true,
        params: Params { ratio, min_size: 0, max_time: Duration::from_secs(600), cooldown: Duration::ZERO },
        placement: Placement::Fill,
        // These fakes say nothing of what they hold, and instances are taken as empty: engaged as
        // before the rule (allocate.rs tests it).
        empty_helpers: EmptyHelpers::Always,
        interval: Duration::from_secs(1),
        first_counts: None,
        once: false,
        dry_run: false,
        json: true,
        metrics_file: None,
        stage: Default::default(),
    }
}

/// Runs `f` with a prepared `run` loop over `w`'s torrent, counted by `script`.
fn with_run<T>(
    w: &World,
    cfg: &Config,
    fleet: Fleet,
    budget: Option<&Budget>,
    script: &Script,
    f: impl FnOnce(&mut Loop) -> T,
) -> T {
    let (o, ledger, printer) = (run_options(1.0), w.ledger(), Printer { json: true });
    let (_tx, stop) = mpsc::channel();
    let catalogue = Catalogue::one(w.target.clone(), None);
    let guard = Guard::new(fleet, &printer, &ledger, false);
    let mut l = Loop::new(&o, cfg, catalogue, Box::new(script.clone()), guard, budget, &stop);
    l.prepare();
    f(&mut l)
}

#[test]
fn boards_first_then_an_instance_and_everything_released_at_the_end() {
    let w = World::new(2);
    let cfg = w.config(&["b0"]);
    // Ratio 1, one seeder, four leechers: three needed; one board and one instance can be had.
    let script = Script::new(1, 4);
    with_run(&w, &cfg, w.fleet(1), None, &script, |l| {
        assert!(l.round().unwrap().is_none());
        assert_eq!((w.seeds("b0"), w.instance_seeds(0), w.instance_seeds(1)), (1, 1, 0));
        assert_eq!(w.ec2.states().iter().filter(|s| s.to_string() == "running").count(), 1);
        assert_eq!(w.ledger().entries().unwrap().len(), 2, "both recorded");
        // The guard releases both: the board's torrent is deleted, the instance stopped.
        l.guard.release();
    });
    assert_eq!((w.seeds("b0"), w.instance_seeds(0)), (0, 0));
    assert!(w.ec2.states().iter().all(|s| s.to_string() == "stopped"));
    assert!(w.ledger().entries().unwrap().is_empty());
}

#[test]
fn a_lost_board_is_replaced_and_released_once_it_answers() {
    let w = World::new(0);
    let cfg = w.config(&["b0", "b1"]);
    let script = Script::new(0, 1);
    with_run(&w, &cfg, w.fleet(0), None, &script, |l| {
        l.round().unwrap();
        assert_eq!((w.seeds("b0"), w.seeds("b1")), (1, 0));
        w.agents.at("http://b0:5050").state.lock().unwrap().down = true;
        l.round().unwrap();
        assert_eq!(w.seeds("b1"), 1, "b1 replaces the lost b0");
        let b0 = l.guard.helped.values().next().unwrap().pool.helpers.iter().find(|h| h.name == "b0").unwrap();
        assert!(b0.lost() && b0.engaged(), "b0 is lost, still engaged (in the ledger)");
        assert_eq!(w.ledger().entries().unwrap().len(), 2);
        // b0 answers again: it is found, and the one engaged last (b1) is released.
        w.agents.at("http://b0:5050").state.lock().unwrap().down = false;
        l.round().unwrap();
        assert_eq!((w.seeds("b0"), w.seeds("b1")), (1, 0));
        assert_eq!(w.ledger().entries().unwrap().len(), 1);
    });
}

#[test]
fn boards_that_fail_are_set_aside_and_others_used_in_the_same_round() {
    let w = World::new(0);
    let cfg = w.config(&["down", "refuses", "b2", "b3"]);
    w.agents.at("http://down:5050").state.lock().unwrap().down = true;
    w.agents.at("http://refuses:5050").state.lock().unwrap().refuse = Some(ErrorCode::UnsupportedTorrent);
    let script = Script::new(0, 2);
    with_run(&w, &cfg, w.fleet(0), None, &script, |l| {
        l.round().unwrap();
        assert_eq!((w.seeds("b2"), w.seeds("b3")), (1, 1), "two wanted, both had in the first round");
        let pool = &l.guard.helped.values().next().unwrap().pool;
        let of = |name: &str| pool.helpers.iter().find(|h| h.name == name).unwrap();
        assert!(of("down").resting(std::time::Instant::now()), "a board that does not answer rests");
        assert!(of("refuses").cannot(), "a board whose daemon cannot seed the torrent is never used for it");
        assert_eq!(w.ledger().entries().unwrap().len(), 2, "only what is engaged is in the ledger");
    });
}

#[test]
fn a_spent_budget_stops_the_instances_and_keeps_the_boards() {
    let w = World::new(1);
    let cfg = w.config(&["b0"]);
    let budget = w.budget(1.0);
    let script = Script::new(0, 2);
    with_run(&w, &cfg, w.fleet(1), Some(&budget), &script, |l| {
        l.round().unwrap();
        assert_eq!((w.seeds("b0"), w.instance_seeds(0)), (1, 1));
        // Another process spent the month's hours.
        let spent = format!(r#"{{"month":"{}","instance_seconds":3600}}"#, month_of(now_secs()));
        std::fs::write(w.dir.join("budget.json"), spent).unwrap();
        l.round().unwrap();
        assert_eq!(w.instance_seeds(0), 0, "the instance is released");
        assert_eq!(w.ec2.states()[0].to_string(), "stopped");
        assert_eq!(w.seeds("b0"), 1, "boards cost nothing: kept");
        assert_eq!(l.warned.budget.as_deref(), Some(month_of(now_secs()).as_str()), "said once");
        l.round().unwrap();
        assert_eq!(w.ec2.state.lock().unwrap().calls.iter().filter(|c| c.starts_with("start")).count(), 1);
    });
}

#[test]
fn a_refusing_region_is_set_aside_and_a_signal_releases_everything() {
    let w = World::new(1);
    w.ec2.state.lock().unwrap().refuse_start = Some("InsufficientInstanceCapacity".into());
    let cfg = w.config(&["b0"]);
    let (tx, stop) = mpsc::channel();
    // The signal comes before the first round ends: that round, then everything is released.
    tx.send(()).unwrap();
    let o = Options { first_counts: Some((0, 4)), ..run_options(1.0) };
    let end = keep(&o, &cfg, Catalogue::one(w.target.clone(), None), w.fleet(1), &w.ledger(), None, &stop).unwrap();
    assert!(matches!(end, End::Interrupted));
    assert_eq!(w.seeds("b0"), 0);
    assert!(w.ledger().entries().unwrap().is_empty());
    assert_eq!(w.ec2.states()[0].to_string(), "stopped", "a refused start leaves it stopped");
}

#[test]
fn run_ends_on_its_exit_conditions() {
    let w = World::new(0);
    let cfg = w.config(&["b0"]);
    let (_tx, stop) = mpsc::channel();
    // Enough seeders at the start: nothing to do.
    let o = Options { first_counts: Some((5, 2)), ..run_options(0.5) };
    let end = keep(&o, &cfg, Catalogue::one(w.target.clone(), None), w.fleet(0), &w.ledger(), None, &stop).unwrap();
    assert!(matches!(end, End::Normal(ExitReason::AlreadySufficient)));
    // Too small: min_size above the torrent's size.
    let mut o = Options { first_counts: Some((0, 4)), ..run_options(0.5) };
    o.params.min_size = 2 << 20;
    let end = keep(&o, &cfg, Catalogue::one(w.target.clone(), None), w.fleet(0), &w.ledger(), None, &stop).unwrap();
    assert!(matches!(end, End::Normal(ExitReason::TooSmall)));
    assert_eq!(w.seeds("b0"), 0);
}

#[test]
fn the_month_dollars_stop_the_instances_and_the_bytes_are_what_they_cost() {
    let w = World::new(2);
    let cfg = w.config(&["b0"]);
    let c = BudgetConfig { dollars_per_month: Some(1.0), ..BudgetConfig::default() };
    let budget = Budget::at(&w.dir.join("budget.json"), &c);
    let mut fleet = w.fleet(2);
    // $1 a GB out, nothing for time or addresses: the bytes are the bill.
    fleet.pools[0].prices = Prices { instance_per_hour: Some(0.0), ipv4_per_hour: 0.0, egress_per_gb: 1.0 };
    fleet.pools[0].upload_kbps = Some(500);
    let script = Script::new(0, 3);
    with_run(&w, &cfg, fleet, Some(&budget), &script, |l| {
        l.round().unwrap();
        assert_eq!((w.seeds("b0"), w.instance_seeds(0), w.instance_seeds(1)), (1, 1, 1));
        let limits = |url: &str| w.agents.at(url).state.lock().unwrap().limits.map(|l| l.upload_kbps);
        assert_eq!(
            (limits("http://fake-0:5050"), limits("http://b0:5050")),
            (Some(500), None),
            "the pool's cap, set on its instances"
        );
        // i-0's machine sends 1.5 GB: $1.50 of the month's $1.00.
        w.agents.at("http://fake-0:5050").state.lock().unwrap().usage.sent_bytes = 1_500_000_000;
        l.round().unwrap();
        let s = budget.standing_now().unwrap();
        assert!((s.dollars - 1.5).abs() < 0.015 && s.bytes_out == 1_500_000_000, "within 1%: {s:?}");
        let i0 = &s.instances["i-0"];
        assert!(
            (i0.dollars - 1.5).abs() < 0.015 && i0.region == "eu-west-3" && i0.bytes_out == 1_500_000_000,
            "{i0:?}"
        );
        assert_eq!((w.instance_seeds(0), w.instance_seeds(1)), (0, 0), "both instances released");
        assert!(w.ec2.states().iter().all(|s| s.to_string() == "stopped"));
        assert_eq!(w.seeds("b0"), 1, "the board seeds on");
        let bill = l.guard.fleet.bills.iter().find(|b| b.id == "i-0").unwrap();
        assert!((bill.dollars - 1.5).abs() < 1e-6 && bill.used.bytes_out == 1_500_000_000, "{bill:?}");
        assert!(l.warned.budget.is_some());
        l.round().unwrap();
        let starts = w.ec2.state.lock().unwrap().calls.iter().filter(|c| c.starts_with("start")).count();
        assert_eq!(starts, 2, "no instance is started again");
    });
    // A second run the same month starts none.
    let fresh = Budget::at(&w.dir.join("budget.json"), &c);
    with_run(&w, &cfg, w.fleet(2), Some(&fresh), &Script::new(0, 3), |l| {
        l.round().unwrap();
        assert_eq!((w.instance_seeds(0), w.instance_seeds(1)), (0, 0));
        l.guard.release();
    });
}
