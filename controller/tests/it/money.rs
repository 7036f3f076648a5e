//! Money, end to end: a swarm whose EC2 helpers (moto instances whose agents are real agents in
//! the namespace) upload real bytes to real leechers, at a test price of egress high enough that a
//! MiB costs a dollar. The month's dollars run out mid-run: the instances are stopped, said once,
//! none started again; the board seeds on; the dollars are the bytes at their price; the budget
//! file holds across a kill -9; a second run the same month starts no instance.

use crate::ec2::Cloud;
use crate::{events, named, world};
use odseed_lab::swarm::{Spec, Swarm};
use odseed_lab::wait_until;
use serde_json::Value;
use std::time::Duration;

/// Dollars a GB out: 1,000, so 1 MB costs $1.
const PER_GB: f64 = 1000.0;

fn budget(w: &crate::World) -> Value {
    let path = w.state_home().join("odseed/budget.json");
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("budget.json: {e}"))).unwrap()
}

#[test]
fn the_months_dollars_stop_the_instances_within_a_round_and_are_the_bytes_at_their_price() {
    let w = world("money");
    let spec =
        Spec { size: 8 << 20, leechers: 3, boards: 3, origin_kbps: 20, helper_kbps: 300, ..crate::end_to_end_spec() };
    let mut swarm = Swarm::start(&w.ns, w.dir.path(), &spec, &odseed_lab::testing::agent_bin()).unwrap();
    swarm.start_leechers(&spec).unwrap();
    swarm.wait_announced(Duration::from_secs(60)).unwrap();
    let cloud = Cloud::start(&w);
    // board0 is a board; the agents of boards 1 and 2 are two instances' agents.
    let ids = cloud.instances_for("eu-west-3", &mut swarm.boards[1..3]);
    let board = &swarm.boards[0];
    let cfg = format!(
        "[[board]]\nname = \"board0\"\nurl = \"{}\"\ntoken_file = \"{}\"\n{}instance_per_hour = 0\nipv4_per_hour = 0\n\
         egress_per_gb = {PER_GB}\n[budget]\ndollars_per_month = 3.0\n",
        board.url,
        board.root.join("token").display(),
        cloud.config(&cloud.moto.url(), &["eu-west-3"], 2, 60),
    );
    let cfg = w.write_config(&cfg);
    let torrent = swarm.torrent_file().to_str().unwrap().to_string();
    let args = ["run", &torrent, "1", "--interval", "2", "--min-size", "0", "--max-time", "300", "--json", "--config"];
    let args: Vec<&str> = [&args[..], &[cfg.to_str().unwrap()]].concat();

    // The month's $3 run out mid-run: the instances are stopped before the month is crossed by
    // more than a round's spending.
    let mut run = w.spawn("run", &args);
    wait_until(Duration::from_secs(200), "the instances stopped for money", || {
        run.log_text().contains("EC2 budget for").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log_tail(40)));
    wait_until(Duration::from_secs(60), "both instances stopped", || {
        let states = crate::ec2_api::states(&cloud.ec2("eu-west-3"), &ids);
        states.iter().all(|s| s == "stopped" || s == "stopping").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log_tail(40)));
    assert_eq!(run.log_text().matches("EC2 budget for").count(), 1, "said once\n{}", run.log_tail(40));
    let hash = swarm.torrent().meta.info_hash;
    assert!(board.client().get(&hash).unwrap().is_some(), "the board seeds on");
    // No instance is started again (two rounds later).
    let engaged = |p: &odseed_lab::Proc| {
        named(&events(p), "engage").iter().filter(|e| e["helper"].as_str().is_some_and(|h| h.starts_with("i-"))).count()
    };
    let before = engaged(&run);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(engaged(&run), before, "{}", run.log_tail(20));
    run.signal(libc::SIGTERM);
    run.wait_exit(Duration::from_secs(60)).expect("the run ends");
    let ev = events(&run);
    let month = budget(&w);
    let (dollars, bytes) = (month["dollars"].as_f64().unwrap(), month["bytes_out"].as_u64().unwrap());
    eprintln!("month: ${dollars:.3} for {bytes} B out; over the $3.00 by ${:.3}", dollars - 3.0);
    // The dollars are the bytes at their price (time and addresses cost nothing here), within 1%.
    let priced = bytes as f64 / 1e9 * PER_GB;
    assert!((dollars - priced).abs() <= priced * 0.01, "${dollars} for {bytes} B (${priced})");
    // Over by at most about a round's spending: two instances at 300 kB/s each for a 2-s round.
    assert!(dollars - 3.0 < 2.0 * 0.3 * 2.0 * 2.0, "${dollars}");
    let costs = named(&ev, "ec2_cost");
    assert!(!costs.is_empty(), "{}", run.log_tail(20));
    for c in &costs {
        let (b, d) = (c["bytes_out"].as_u64().unwrap() as f64, c["dollars"].as_f64().unwrap());
        assert!((d - b / 1e9 * PER_GB).abs() <= 0.01 * d.max(0.01), "{c}");
    }

    // `odseed status`: the month's dollars, per region and per instance.
    let out = w.odseed(&["status", "--json", "--config", cfg.to_str().unwrap()]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let b = &status["budget"];
    assert!((b["dollars"].as_f64().unwrap() - dollars).abs() < 1e-6, "{b}");
    let per: f64 = b["instances"].as_array().unwrap().iter().map(|i| i["dollars"].as_f64().unwrap()).sum();
    assert!((per - dollars).abs() <= 0.01 * dollars, "the instances' dollars add up to the month's: {b}");
    assert_eq!(b["regions"][0]["name"], "eu-west-3", "{b}");
    assert!(b["instances"].as_array().unwrap().iter().all(|i| ids.contains(&i["name"].as_str().unwrap().to_string())));

    // Another run the same month starts none, though its first round wants three helpers; killed
    // with -9, it leaves the budget file as it was.
    let seen = dollars;
    let again_args: Vec<&str> = [&args[..3], &["0", "3"], &args[3..]].concat();
    let mut again = w.spawn("again", &again_args);
    wait_until(Duration::from_secs(60), "a round", || (!named(&events(&again), "poll").is_empty()).then_some(()))
        .unwrap_or_else(|e| panic!("{e}\n{}", again.log_tail(20)));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(engaged(&again), 0, "{}", again.log_tail(20));
    again.kill9();
    assert!((budget(&w)["dollars"].as_f64().unwrap() - seen).abs() < 1e-9);
    assert!(w.odseed(&["release", "--config", cfg.to_str().unwrap()]).status.success());
}
