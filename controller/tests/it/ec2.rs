//! EC2 helpers end to end: moto as EC2, real agents as the instances' agents (found through the
//! `odseed:agent-url` tag). Whatever ends a run, every instance it started is stopped, as moto says.

use crate::ec2_api::{client, make_instances, states};
use crate::{events, named, wait_engaged, world, World};
use odseed::ec2::Ec2;
use odseed_lab::testing::Moto;
use odseed_lab::{content, Agent, AgentOptions};
use std::path::PathBuf;
use std::time::Duration;

pub const TOKEN: &str = "pool-token-0123456789abcdef";

/// moto, and the token file the pools' agents share.
pub struct Cloud {
    pub moto: Moto,
    pub token_file: PathBuf,
}

impl Cloud {
    pub fn start(w: &World) -> Cloud {
        let moto = Moto::start(&w.dir.path().join("moto")).unwrap();
        let token_file = w.dir.path().join("pool.token");
        std::fs::write(&token_file, TOKEN).unwrap();
        Cloud { moto, token_file }
    }

    pub fn ec2(&self, region: &str) -> Ec2 {
        client(&self.moto, region)
    }

    /// One tagged, stopped instance per agent in `region`, its agent-url the agent's (whose token
    /// becomes the pool's).
    pub fn instances_for(&self, region: &str, agents: &mut [Agent]) -> Vec<String> {
        let ec2 = self.ec2(region);
        agents
            .iter_mut()
            .flat_map(|a| {
                a.set_token(TOKEN).unwrap();
                make_instances(&ec2, 1, &[("odseed:role", "helper"), ("odseed:agent-url", &a.url)])
            })
            .collect()
    }

    /// `[ec2]` with one pool per region, through `endpoint` (moto, or a proxy in front of it).
    pub fn config(&self, endpoint: &str, regions: &[&str], max_instances: u32, boot_timeout: u64) -> String {
        // The instances' agents hold the content, but nothing says so to odseed: engaged as empty.
        let mut c = format!(
            "[policy]\nmin_size = 0\nempty_helpers = \"always\"\n[ec2]\nendpoint_url = \"{endpoint}\"\nmax_instances = {max_instances}\nboot_timeout = {boot_timeout}\nrequest_timeout = 3\n"
        );
        for r in regions {
            c += &format!("[[ec2.pool]]\nregion = \"{r}\"\ntoken_file = \"{}\"\n", self.token_file.display());
        }
        c
    }
}

/// Agents on 127.0.0.1 (no swarm) and a torrent whose tracker does not answer: the first round's
/// counts (`1 4` leechers) make the run engage, the rounds after are blind and hold.
pub fn idle_agents(w: &World, n: usize) -> (Vec<Agent>, PathBuf) {
    agents_serving(w, n, None)
}

/// As [`idle_agents`]; with `tls`, each agent serves that certificate and key (PEM), as the
/// instances of one provisioned pool do.
pub fn agents_serving(w: &World, n: usize, tls: Option<(&str, &str)>) -> (Vec<Agent>, PathBuf) {
    let agents: Vec<Agent> = (0..n)
        .map(|i| {
            let root = w.dir.path().join(format!("agent{i}"));
            if let Some((cert, key)) = tls {
                std::fs::create_dir_all(root.join("tls")).unwrap();
                std::fs::write(root.join("tls/cert.pem"), cert).unwrap();
                std::fs::write(root.join("tls/key.pem"), key).unwrap();
            }
            let o = AgentOptions { tls: tls.is_some(), ..AgentOptions::default() };
            Agent::start(&odseed_lab::testing::agent_bin(), &root, &o).unwrap()
        })
        .collect();
    let made =
        content::make(&agents[0].data_dir, "t.bin", 300_000, 7, &["http://127.0.0.1:9/announce".into()]).unwrap();
    for a in &agents[1..] {
        std::fs::copy(agents[0].data_dir.join("t.bin"), a.data_dir.join("t.bin")).unwrap();
    }
    let torrent = w.dir.path().join("t.torrent");
    std::fs::write(&torrent, &made.bytes).unwrap();
    (agents, torrent)
}

pub fn run_args<'a>(torrent: &'a str, cfg: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", torrent, "1", "1", "4", "--interval", "1", "--min-size", "0", "--json", "--config", cfg];
    a.extend_from_slice(extra);
    a
}

fn all_stopped(ec2: &Ec2, ids: &[String]) -> bool {
    states(ec2, ids).iter().all(|s| s == "stopped" || s == "stopping")
}

#[test]
fn a_run_starts_tagged_instances_in_two_regions_and_stops_every_one() {
    let w = world("ec2e2e");
    let spec = crate::end_to_end_spec();
    let (mut swarm, _) = w.swarm(&spec);
    let cloud = Cloud::start(&w);
    let paris = cloud.instances_for("eu-west-3", &mut swarm.boards[0..1]);
    let virginia = cloud.instances_for("us-east-1", &mut swarm.boards[1..2]);
    let (eu, us) = (cloud.ec2("eu-west-3"), cloud.ec2("us-east-1"));
    let untagged = make_instances(&eu, 1, &[]);
    let builder = make_instances(&eu, 1, &[("odseed:role", "builder"), ("odseed:agent-url", &swarm.boards[0].url)]);
    let cfg = w.write_config(&cloud.config(&cloud.moto.url(), &["eu-west-3", "us-east-1"], 2, 60));
    let mut run = w.spawn_run("run", swarm.torrent_file(), &cfg);

    // Three leechers, one seeder, at most two instances: one in each region.
    wait_engaged(&run, 2);
    assert_eq!(states(&eu, &paris), ["running"]);
    assert_eq!(states(&us, &virginia), ["running"]);
    assert_eq!(states(&eu, &untagged), ["stopped"], "an untagged instance is never touched");
    assert_eq!(states(&eu, &builder), ["stopped"], "an instance with another tag is never touched");
    let ledger = std::fs::read_to_string(w.ledger()).unwrap();
    assert!(ledger.contains(&paris[0]) && ledger.contains("\"region\": \"us-east-1\""), "{ledger}");

    let status =
        run.wait_exit(Duration::from_secs(400)).unwrap_or_else(|| panic!("the run did not end\n{}", run.log_text()));
    assert!(status.success(), "{status}\n{}", run.log_text());
    let ev = events(&run);
    assert_eq!(named(&ev, "exit")[0]["reason"], "ratio_met", "{}", run.log_text());
    let mut engaged: Vec<&str> = named(&ev, "engage").iter().filter_map(|e| e["helper"].as_str()).collect();
    engaged.sort();
    let mut want = vec![paris[0].as_str(), virginia[0].as_str()];
    want.sort();
    assert_eq!(engaged, want);
    assert!(all_stopped(&eu, &paris) && all_stopped(&us, &virginia), "every instance stopped");
    assert!(swarm.boards.iter().all(|b| b.client().list().unwrap().is_empty()), "the torrent removed from the agents");
    assert!(std::fs::read_to_string(w.ledger()).unwrap().contains("\"helpers\": []"));
    let usage: Vec<&str> = named(&ev, "ec2_usage").iter().filter_map(|e| e["region"].as_str()).collect();
    assert_eq!(usage, ["eu-west-3", "us-east-1"], "instance-seconds per region");
}

#[test]
fn every_way_a_run_ends_leaves_its_instances_stopped() {
    let w = world("ec2exits");
    let (mut agents, torrent) = idle_agents(&w, 3);
    let cloud = Cloud::start(&w);
    let a = cloud.instances_for("eu-west-3", &mut agents[0..1]);
    let b = cloud.instances_for("ap-south-1", &mut agents[1..2]);
    // A second one in Paris: max_instances 2 and the spread over regions leave it stopped.
    let spare = cloud.instances_for("eu-west-3", &mut agents[2..3]);
    let (eu, ap) = (cloud.ec2("eu-west-3"), cloud.ec2("ap-south-1"));
    let cfg = w.write_config(&cloud.config(&cloud.moto.url(), &["eu-west-3", "ap-south-1"], 2, 30));
    let (torrent, cfg) = (torrent.to_str().unwrap(), cfg.to_str().unwrap());
    let running =
        || states(&eu, &a) == ["running"] && states(&ap, &b) == ["running"] && states(&eu, &spare) == ["stopped"];
    let stopped = || all_stopped(&eu, &a) && all_stopped(&ap, &b) && all_stopped(&eu, &spare);

    for (how, signal, code) in [("max_time", 0, 0), ("SIGINT", libc::SIGINT, 130), ("SIGTERM", libc::SIGTERM, 130)] {
        let extra: &[&str] = if signal == 0 { &["--max-time", "4"] } else { &[] };
        let mut run = w.spawn(how, &run_args(torrent, cfg, extra));
        wait_engaged(&run, 2);
        assert!(running(), "{how}: both started\n{}", run.log_text());
        if signal != 0 {
            run.signal(signal);
        }
        let status = run.wait_exit(Duration::from_secs(60)).unwrap_or_else(|| panic!("{how}: no exit"));
        assert_eq!(status.code(), Some(code), "{how}\n{}", run.log_text());
        assert!(stopped(), "{how}: every instance stopped\n{}", run.log_text());
        assert!(agents.iter().all(|a| a.client().list().unwrap().is_empty()), "{how}: torrent removed");
    }

    // An error: the ledger is damaged under the run. It releases everything and exits 1.
    let mut run = w.spawn("error", &run_args(torrent, cfg, &[]));
    wait_engaged(&run, 2);
    std::fs::write(w.ledger(), b"{damaged").unwrap();
    let status = run.wait_exit(Duration::from_secs(60)).expect("the run stops on the damaged ledger");
    assert_eq!(status.code(), Some(1), "{}", run.log_text());
    assert!(run.log_text().contains("is damaged"), "{}", run.log_text());
    assert!(stopped(), "the error stopped every instance\n{}", run.log_text());
    assert!(std::fs::read(w.ledger()).unwrap() == b"{damaged", "a damaged ledger is never overwritten");
    std::fs::remove_file(w.ledger()).unwrap();

    // kill -9: nothing is released until `odseed release`, which stops both.
    let mut run = w.spawn("kill9", &run_args(torrent, cfg, &[]));
    wait_engaged(&run, 2);
    run.kill9();
    assert!(running(), "kill -9 stops nothing");
    // `odseed status` shows each region's instances, their states, and the ledger's dead run.
    let out = w.odseed(&["status", "--json", "--config", cfg]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (pool, id) in status["ec2"].as_array().unwrap().iter().zip([&a[0], &b[0]]) {
        let found = pool["instances"].as_array().unwrap().iter().find(|i| i["id"] == id.as_str()).cloned();
        assert_eq!(found.map(|i| i["state"].clone()), Some("running".into()), "{status}");
    }
    assert_eq!(status["ledger"].as_array().unwrap().len(), 2, "{status}");
    assert!(status["ledger"].as_array().unwrap().iter().all(|e| e["owner_alive"] == false), "{status}");
    let human = String::from_utf8_lossy(&w.odseed(&["status", "--config", cfg]).stdout).into_owned();
    assert!(human.contains(&format!("eu-west-3        {:<22} running", a[0])), "{human}");
    let out = w.odseed(&["release", "--json", "--config", cfg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stopped(), "odseed release stops what a killed run started");
    assert!(std::fs::read_to_string(w.ledger()).unwrap().contains("\"helpers\": []"));
}

#[test]
fn an_instance_whose_agent_never_answers_is_replaced_and_one_gone_silent_is_stopped() {
    let w = world("ec2boot");
    let (mut agents, torrent) = idle_agents(&w, 1);
    let cloud = Cloud::start(&w);
    let eu = cloud.ec2("eu-west-3");
    // Made first, so listed (and tried) first: its agent URL answers nothing.
    let dead = make_instances(&eu, 1, &[("odseed:role", "helper"), ("odseed:agent-url", "http://127.0.0.1:9")]);
    let good = cloud.instances_for("eu-west-3", &mut agents[0..1]);
    let cfg = w.write_config(&cloud.config(&cloud.moto.url(), &["eu-west-3"], 1, 3));
    let mut run = w.spawn("boot", &run_args(torrent.to_str().unwrap(), cfg.to_str().unwrap(), &[]));
    wait_engaged(&run, 1);
    let ev = events(&run);
    assert_eq!(named(&ev, "engage")[0]["helper"], good[0].as_str());
    let faults: Vec<&str> = named(&ev, "fault").iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(
        faults.iter().any(|f| f.contains(&dead[0]) && f.contains("healthy agent within 3s; stopped")),
        "{faults:?}\n{}",
        run.log_text()
    );
    assert_eq!(states(&eu, &dead), ["stopped"]);
    assert_eq!(states(&eu, &good), ["running"]);

    // Its agent goes silent: a round later the instance is stopped and leaves the ledger.
    agents[0].kill9();
    odseed_lab::wait_until(Duration::from_secs(30), "the silent instance to be stopped", || {
        all_stopped(&eu, &good).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log_text()));
    let ledger = std::fs::read_to_string(w.ledger()).unwrap();
    assert!(!ledger.contains(&good[0]), "{ledger}");
    run.signal(libc::SIGINT);
    assert_eq!(run.wait_exit(Duration::from_secs(60)).and_then(|s| s.code()), Some(130));
    assert!(all_stopped(&eu, &good) && all_stopped(&eu, &dead));

    // A signal while an instance boots: it is stopped and the run ends at once.
    let cfg = w.write_config(&cloud.config(&cloud.moto.url(), &["eu-west-3"], 1, 120));
    let mut run = w.spawn("booting", &run_args(torrent.to_str().unwrap(), cfg.to_str().unwrap(), &[]));
    odseed_lab::wait_until(Duration::from_secs(30), "an instance to boot", || {
        (states(&eu, &dead) == ["running"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log_text()));
    run.signal(libc::SIGTERM);
    let status = run.wait_exit(Duration::from_secs(30)).unwrap_or_else(|| panic!("no exit\n{}", run.log_text()));
    assert_eq!(status.code(), Some(130), "{}", run.log_text());
    assert!(run.log_text().contains("interrupted while it booted; stopped"), "{}", run.log_text());
    assert!(all_stopped(&eu, &good) && all_stopped(&eu, &dead));

    // max_time is a hard limit: a boot is not waited for past it.
    let mut run = w.spawn("late", &run_args(torrent.to_str().unwrap(), cfg.to_str().unwrap(), &["--max-time", "3"]));
    let status =
        run.wait_exit(Duration::from_secs(30)).unwrap_or_else(|| panic!("no exit at max_time\n{}", run.log_text()));
    assert!(status.success(), "{}", run.log_text());
    assert!(run.log_text().contains("still booting at max_time; stopped"), "{}", run.log_text());
    assert!(all_stopped(&eu, &good) && all_stopped(&eu, &dead));
}

#[test]
fn instances_are_engaged_over_tls_with_the_pools_pinned_certificate() {
    use odseed_proto::tls::{pem, self_signed, Fingerprint};
    let w = world("ec2tls");
    // One certificate for the pool, as `odseed ec2 provision` makes it.
    let (cert, key) = self_signed("odseed-pool").unwrap();
    let pin = Fingerprint::of(&cert);
    let (cert, key) = (pem("CERTIFICATE", &cert), pem("PRIVATE KEY", &key));
    let (mut agents, torrent) = agents_serving(&w, 2, Some((&cert, &key)));
    assert!(agents.iter().all(|a| a.pin == Some(pin) && a.url.starts_with("https://")));
    let cloud = Cloud::start(&w);
    let ids = cloud.instances_for("eu-west-3", &mut agents);
    let eu = cloud.ec2("eu-west-3");
    let pool = cloud.config(&cloud.moto.url(), &["eu-west-3"], 2, 30);
    let cfg = w.write_config(&format!("{pool}cert_sha256 = \"{pin}\"\n"));
    let (torrent, cfg) = (torrent.to_str().unwrap(), cfg.to_str().unwrap());

    let mut run = w.spawn("tls", &run_args(torrent, cfg, &[]));
    wait_engaged(&run, 2);
    assert!(agents.iter().all(|a| a.client().list().unwrap().len() == 1), "{}", run.log_text());
    let ledger = std::fs::read_to_string(w.ledger()).unwrap();
    assert_eq!(ledger.matches(&pin.to_string()).count(), 2, "the ledger keeps each pin: {ledger}");

    // A run killed -9: `odseed release` reaches the agents with the pins the ledger kept, even
    // with a config whose pool names none.
    run.kill9();
    let bare = w.write_config(&pool);
    let o = w.odseed(&["release", "--config", bare.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(agents.iter().all(|a| a.client().list().unwrap().is_empty()), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(all_stopped(&eu, &ids));

    // A pool whose pin is not the agents' certificate: nothing is engaged, no token is sent.
    let wrong = w.write_config(&format!("{pool}cert_sha256 = \"{}\"\n", Fingerprint::of(b"x")));
    let o = w.odseed(&run_args(torrent, wrong.to_str().unwrap(), &["--once"]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("\"event\":\"engage\""), "{out}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cert_sha256") || out.contains("cert_sha256"),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(agents.iter().all(|a| a.client().list().unwrap().is_empty()));
    odseed_lab::wait_until(Duration::from_secs(30), "the instances to stop", || all_stopped(&eu, &ids).then_some(()))
        .unwrap();
}
