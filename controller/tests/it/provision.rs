//! `odseed ec2 provision` and `deprovision` against moto as EC2 and S3: two regions from an empty
//! account, then a run that engages the provisioned instances over TLS with the pool's pin (their
//! agents real, on this machine, reached through `odseed:agent-url`), then nothing left behind.
//! Interrupted and killed provisions leave nothing running.

use crate::ec2_api::{client, states};
use crate::{wait_engaged, world, World};
use base64::Engine;
use odseed::ec2::Ec2;
use odseed_lab::testing::{agent_bin, Moto};

use odseed_proto::tls::Fingerprint;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// An image moto has in every region.
const AMI: &str = "ami-12c6146b";

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn provision(w: &World, cfg: &Path, region: &str, extra: &[&str]) -> Output {
    let agent = agent_bin();
    let mut args = vec![
        "ec2",
        "provision",
        "--region",
        region,
        "--count",
        "2",
        "--allow-from",
        "198.51.100.7/32",
        "--agent",
        agent.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    w.odseed(&args)
}

/// The instances provision made in a region (tag `odseed:provisioned=1`), not terminated.
fn provisioned(ec2: &Ec2) -> Vec<String> {
    let live = ["pending", "running", "stopping", "stopped"];
    ec2.describe(&[("tag:odseed:provisioned", &["1"]), ("instance-state-name", &live)])
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

fn xml(ec2: &Ec2, action: &str, params: &[(&str, &str)]) -> String {
    let p: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ec2.call(action, &p).unwrap()
}

#[test]
fn provision_two_regions_run_over_tls_then_deprovision_leaves_nothing() {
    let w = world("provision");
    let moto = Moto::start(&w.dir.path().join("moto")).unwrap();
    let cfg = w.write_config(&format!("[ec2]\nendpoint_url = \"{}\"\nrequest_timeout = 5\n", moto.url()));

    // No Debian image in moto: one clear line, nothing launched.
    let o = provision(&w, &cfg, "eu-west-3", &["--no-wait"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no Debian 13 image") && text(&o).contains("--ami"), "{}", text(&o));
    assert!(provisioned(&client(&moto, "eu-west-3")).is_empty());

    let mut pins = Vec::new();
    for region in ["eu-west-3", "us-east-1"] {
        let o = provision(&w, &cfg, region, &["--ami", AMI, "--no-wait"]);
        assert!(o.status.success(), "{region}: {}", text(&o));
        let ec2 = client(&moto, region);
        let ids = provisioned(&ec2);
        assert_eq!(ids.len(), 2, "{region}");
        let dir = w.dir.path().join(format!("ec2-{region}"));
        let cert = odseed_proto::tls::read_certs(&dir.join("cert.pem")).unwrap();
        let pin = Fingerprint::of(&cert[0]);
        for f in ["token", "cert.pem", "key.pem"] {
            let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join(f)).unwrap().permissions());
            assert_eq!(mode & 0o077, 0, "{f} is the user's alone");
        }
        // Tags, IMDSv2, stop on power-off, the security group's rules.
        let described = xml(&ec2, "DescribeInstances", &[("InstanceId.1", &ids[0])]);
        for part in [
            "<key>odseed:role</key><value>helper</value>",
            "<key>odseed:provisioned</key><value>1</value>",
            &format!("<key>odseed:cert-sha256</key><value>{pin}</value>"),
            "<httpTokens>required</httpTokens>",
        ] {
            assert!(described.contains(part), "{region}: {part} in {described}");
        }
        let shutdown = xml(
            &ec2,
            "DescribeInstanceAttribute",
            &[("InstanceId", &ids[0]), ("Attribute", "instanceInitiatedShutdownBehavior")],
        );
        assert!(shutdown.contains("<value>stop</value>"), "{shutdown}");
        let groups = xml(&ec2, "DescribeSecurityGroups", &[("GroupName.1", "odseed-helper")]);
        assert!(
            groups.contains("198.51.100.7/32") && groups.contains("0.0.0.0/0") && groups.contains("udp"),
            "{groups}"
        );
        // The user-data fetches the agent through a presigned URL, and it is the agent.
        let script = user_data(&ec2, &ids[0]);
        let (url, _) = fetched_by(&script, "agent");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        let fetched = ureq::get(url).call().unwrap().body_mut().with_config().limit(64 << 20).read_to_vec().unwrap();
        assert_eq!(fetched, std::fs::read(agent_bin()).unwrap(), "the presigned URL serves the agent");
        // The secrets are not in the user-data but in an object of their own, behind its own URL.
        let token = std::fs::read_to_string(dir.join("token")).unwrap().trim().to_string();
        assert!(!script.contains(&token) && !script.contains("PRIVATE KEY"), "{script}");
        let (secrets_url, secrets_sha) = fetched_by(&script, "secrets");
        let secrets = ureq::get(&secrets_url).call().unwrap().body_mut().read_to_string().unwrap();
        assert!(secrets.contains(&token) && secrets.contains("PRIVATE KEY"));
        assert_eq!(Fingerprint::of(secrets.as_bytes()).to_string(), secrets_sha);
        pins.push(pin);
    }
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(written.matches("[[ec2.pool]]").count(), 2, "{written}");
    assert!(pins.iter().all(|p| written.contains(&p.to_string())), "{written}");
    // A second provision in a region reuses its secrets and pool.
    let o = provision(&w, &cfg, "eu-west-3", &["--ami", AMI, "--no-wait"]);
    assert!(o.status.success() && text(&o).contains("already there"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap().matches("[[ec2.pool]]").count(), 2);

    // A run helps a real swarm with the provisioned Paris instances, over TLS with the pool's pin:
    // the swarm's boards, with the region's certificate, key and token, stand in for the
    // instances' agents (moto boots nothing), found through `odseed:agent-url`.
    let eu = client(&moto, "eu-west-3");
    let ids = provisioned(&eu);
    eu.stop(&ids).unwrap();
    let secrets = w.dir.path().join("ec2-eu-west-3");
    let read = |f: &str| std::fs::read_to_string(secrets.join(f)).unwrap();
    let spec =
        odseed_lab::swarm::Spec { board_tls: Some((read("cert.pem"), read("key.pem"))), ..crate::end_to_end_spec() };
    let mut swarm = odseed_lab::swarm::Swarm::start(&w.ns, w.dir.path(), &spec, &agent_bin()).unwrap();
    swarm.start_leechers(&spec).unwrap();
    swarm.wait_announced(Duration::from_secs(60)).unwrap();
    for (b, id) in swarm.boards.iter_mut().zip(&ids) {
        b.set_token(read("token").trim()).unwrap();
        assert_eq!(b.pin, Some(pins[0]));
        xml(&eu, "CreateTags", &[("ResourceId.1", id), ("Tag.1.Key", "odseed:agent-url"), ("Tag.1.Value", &b.url)]);
    }
    // Only the Paris pool for the run (the Virginia instances have no agent here).
    let paris_only = w.dir.path().join("paris.toml");
    let pool = written.split("[[ec2.pool]]").find(|p| p.contains("eu-west-3")).unwrap();
    // Provisioned instances start empty (these hold a copy): engaged all the same.
    let paris = format!(
        "[policy]\nempty_helpers = \"always\"\n[ec2]\nendpoint_url = \"{}\"\nmax_instances = 2\n[[ec2.pool]]{pool}",
        moto.url()
    );
    std::fs::write(&paris_only, paris).unwrap();
    let mut run = w.spawn_run("run", swarm.torrent_file(), &paris_only);
    wait_engaged(&run, 2);
    let status = run.wait_exit(Duration::from_secs(400)).unwrap_or_else(|| panic!("no end\n{}", run.log_text()));
    assert!(status.success(), "{}", run.log_text());
    let ev = crate::events(&run);
    assert_eq!(crate::named(&ev, "exit")[0]["reason"], "ratio_met", "{}", run.log_text());
    let mut engaged: Vec<&str> = crate::named(&ev, "engage").iter().filter_map(|e| e["helper"].as_str()).collect();
    engaged.sort();
    // (Paris has four: the second provision added two; the two with an agent here are engaged.)
    let mut want: Vec<&str> = ids.iter().take(swarm.boards.len()).map(String::as_str).collect();
    want.sort();
    assert_eq!(engaged, want, "the provisioned instances helped");
    assert!(swarm.boards.iter().all(|b| b.client().list().unwrap().is_empty()), "released");
    assert!(states(&eu, &ids).iter().all(|s| s == "stopped" || s == "stopping"));

    // Deprovision: terminated, the group and the S3 objects gone, as moto says.
    for region in ["eu-west-3", "us-east-1"] {
        let o = w.odseed(&["ec2", "deprovision", "--region", region, "--yes", "--config", cfg.to_str().unwrap()]);
        assert!(o.status.success(), "{region}: {}", text(&o));
        let ec2 = client(&moto, region);
        assert!(provisioned(&ec2).is_empty(), "{region}");
        let groups = ec2.call("DescribeSecurityGroups", &[("GroupName.1".into(), "odseed-helper".into())]);
        assert!(groups.is_err(), "{region}: the group is gone");
        let bucket = text(&o).split("deleted bucket ").nth(1).map(|b| b.trim().to_string()).unwrap();
        let listing = ureq::get(&format!("{}{bucket}", moto.url()))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap()
            .status();
        assert_eq!(listing.as_u16(), 404, "{region}: bucket {bucket} gone");
    }
    // An instance provision did not make is never touched.
    let other = crate::ec2_api::make_instances(&eu, 1, &[("odseed:role", "helper")]);
    let o = w.odseed(&["ec2", "deprovision", "--region", "eu-west-3", "--yes", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(states(&eu, &other), ["stopped"]);
}

#[test]
fn an_interrupted_or_killed_provision_leaves_nothing_running() {
    let w = world("provkill");
    let moto = Moto::start(&w.dir.path().join("moto")).unwrap();
    let cfg = w.write_config(&format!("[ec2]\nendpoint_url = \"{}\"\nrequest_timeout = 5\n", moto.url()));
    let eu = client(&moto, "eu-west-3");
    let agent = agent_bin();
    let args = |w: &World| -> Vec<String> {
        let _ = w;
        [
            "ec2",
            "provision",
            "--region",
            "eu-west-3",
            "--count",
            "2",
            "--allow-from",
            "198.51.100.7/32",
            "--ami",
            AMI,
            "--wait",
            "120",
            "--agent",
            agent.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let launched = |p: &odseed_lab::Proc| p.log_text().contains("launched ");
    // moto's instances never power themselves off: provision waits until interrupted.
    let a = args(&w);
    let mut p = w.spawn("interrupted", &a.iter().map(String::as_str).collect::<Vec<_>>());
    odseed_lab::wait_until(Duration::from_secs(30), "the launch", || launched(&p).then_some(())).unwrap();
    p.signal(libc::SIGINT);
    assert_eq!(p.wait_exit(Duration::from_secs(60)).and_then(|s| s.code()), Some(130), "{}", p.log_text());
    assert!(provisioned(&eu).is_empty(), "terminated: {}", p.log_text());
    assert!(ledger_empty(&w.ledger()));

    // kill -9: the ledger holds them; `odseed release` terminates them (half set up, they would
    // never finish).
    let mut p = w.spawn("killed", &a.iter().map(String::as_str).collect::<Vec<_>>());
    odseed_lab::wait_until(Duration::from_secs(30), "the launch", || launched(&p).then_some(())).unwrap();
    p.kill9();
    let ids = provisioned(&eu);
    assert_eq!(ids.len(), 2);
    assert!(!ledger_empty(&w.ledger()));
    let o = w.odseed(&["release", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(provisioned(&eu).is_empty(), "{:?}", states(&eu, &ids));
    assert!(ledger_empty(&w.ledger()));
    let _ = w.odseed(&["ec2", "deprovision", "--region", "eu-west-3", "--yes", "--config", cfg.to_str().unwrap()]);

    // Instances that do not stop themselves in time: named with their console output, terminated.
    let mut short: Vec<&str> = a.iter().map(String::as_str).collect();
    let at = short.iter().position(|s| *s == "120").unwrap();
    short[at] = "3";
    let o = w.odseed(&short);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("did not set itself up within 3 s; its console ends"), "{}", text(&o));
    assert!(text(&o).contains("no instance set itself up in 3 s"), "{}", text(&o));
    assert!(provisioned(&eu).is_empty(), "terminated");
    assert!(ledger_empty(&w.ledger()));
    // Every launch's secrets object is gone: deleted after the wait, or by deprovision after a kill.
    let all = eu.describe(&[("tag:odseed:provisioned", &["1"])]).unwrap();
    assert_eq!(all.len(), 6, "three launches of two");
    for i in all {
        let script = user_data(&eu, &i.id);
        let (url, _) = fetched_by(&script, "secrets");
        let got = ureq::get(&url).config().http_status_as_error(false).build().call().unwrap().status().as_u16();
        assert_ne!(got, 200, "{}: its secrets are still there", i.id);
    }
}

fn ledger_empty(path: &PathBuf) -> bool {
    std::fs::read_to_string(path).map_or(true, |t| !t.contains("\"name\""))
}

/// `scripts/trixie-instance`: a Debian 13 machine of the test's own (an overlay on the root
/// scripts/setup makes), to run commands in.
fn instance(state: &Path, user: Option<&str>, command: &[&str]) -> std::process::Command {
    let script = std::env::var_os("ODSEED_TRIXIE_INSTANCE").expect("ODSEED_TRIXIE_INSTANCE (scripts/test sets it)");
    let mut c = std::process::Command::new(script);
    c.arg(state);
    if let Some(u) = user {
        c.args(["--user", u]);
    }
    c.arg("--").args(command);
    c
}

/// Provision's user-data, run for real as cloud-init would (as root, once) on a Debian 13 machine
/// of the test's own: it fetches the agent from moto's S3 through the presigned URL, checks it,
/// installs and enables it; the agent then starts as its unit says and answers over TLS with the
/// pinned certificate. A binary whose SHA-256 is not the expected one is not installed.
#[test]
fn the_user_data_sets_up_a_debian_machine_for_real() {
    let w = world("userdata");
    let moto = Moto::start(&w.dir.path().join("moto")).unwrap();
    let cfg = w.write_config(&format!("[ec2]\nendpoint_url = \"{}\"\nrequest_timeout = 5\n", moto.url()));
    let o = provision(&w, &cfg, "eu-west-3", &["--ami", AMI, "--no-wait"]);
    assert!(o.status.success(), "{}", text(&o));
    let eu = client(&moto, "eu-west-3");
    let id = provisioned(&eu).remove(0);
    let script = user_data(&eu, &id);

    // A binary that is not the one provision put there: refused, nothing installed.
    let (_, sha) = fetched_by(&script, "agent");
    let bad = w.dir.path().join("bad");
    std::fs::create_dir_all(bad.join("upper/root")).unwrap();
    std::fs::write(bad.join("upper/root/user-data"), script.replace(&sha, &"0".repeat(64))).unwrap();
    let o = instance(&bad, None, &["/bin/bash", "/root/user-data"]).output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("FAILED: the agent fetched has SHA-256 {sha}, not {}", "0".repeat(64))),
        "{}",
        text(&o)
    );
    assert!(!bad.join("upper/usr/local/bin/odseed-agent").exists());

    // The real one.
    let vm = w.dir.path().join("vm");
    std::fs::create_dir_all(vm.join("upper/root")).unwrap();
    std::fs::write(vm.join("upper/root/user-data"), &script).unwrap();
    let o = instance(&vm, None, &["/bin/bash", "/root/user-data"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // In a chroot it does all but power off (on an instance, that stops it: InstanceInitiatedShutdownBehavior).
    assert!(
        text(&o).contains("odseed-setup: done (not booted with systemd, as in a chroot: not powering off)"),
        "{}",
        text(&o)
    );
    let upper = vm.join("upper");
    let wanted = std::fs::read_link(upper.join("etc/systemd/system/multi-user.target.wants/odseed-agent.service"));
    assert_eq!(wanted.unwrap(), Path::new("/etc/systemd/system/odseed-agent.service"), "enabled");
    let masked = std::fs::read_link(upper.join("etc/systemd/system/transmission-daemon.service")).unwrap();
    assert_eq!(masked, Path::new("/dev/null"), "the distribution's transmission service is masked");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(upper.join("etc/odseed/key.pem")).unwrap().permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o640);

    // Booted again: the agent as its unit runs it (user odseed; systemd's StateDirectory= made).
    let unit = std::fs::read_to_string(upper.join("etc/systemd/system/odseed-agent.service")).unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    let o = instance(&vm, None, &["/bin/sh", "-c", "install -d -o odseed -g odseed -m 0750 /var/lib/odseed"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut cmd = instance(&vm, Some("odseed:odseed"), &exec.split_whitespace().collect::<Vec<_>>());
    cmd.env("RUST_LOG", "info");
    let mut agent = odseed_lab::Proc::spawn("agent", cmd, &w.dir.path().join("vm-agent.log")).unwrap();
    let dir = w.dir.path().join("ec2-eu-west-3");
    let token = std::fs::read_to_string(dir.join("token")).unwrap().trim().to_string();
    let pin = Fingerprint::of(&odseed_proto::tls::read_certs(&dir.join("cert.pem")).unwrap()[0]);
    let c = odseed_proto::agent_client::AgentClient::pinned(
        "https://127.0.0.1:5050",
        &token,
        Some(pin),
        Duration::from_secs(5),
    );
    let health = odseed_lab::wait_until(Duration::from_secs(30), "the instance's agent over TLS", || c.health().ok())
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    assert!(health.daemon_version.unwrap_or_default().starts_with("4."), "Debian 13's transmission-daemon");
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(30)).is_some());
}

/// The URL and SHA-256 of what the user-data fetches as `what` (`agent`, `secrets`).
fn fetched_by(script: &str, what: &str) -> (String, String) {
    let line = script.lines().find(|l| l.starts_with(&format!("{what}=$(fetch '"))).expect("a fetch line");
    let parts: Vec<&str> = line.split('\'').collect();
    (parts[1].to_string(), parts[3].to_string())
}

/// An instance's user-data, as EC2 keeps it.
fn user_data(ec2: &Ec2, id: &str) -> String {
    let answer = xml(ec2, "DescribeInstanceAttribute", &[("InstanceId", id), ("Attribute", "userData")]);
    let b64 = answer.split("<value>").nth(1).and_then(|v| v.split('<').next()).expect("userData in the answer");
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap()).unwrap()
}
