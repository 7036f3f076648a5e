//! odseed's integration tests: the real `odseed` binary against real agents, transmission-daemons and
//! opentracker, each test in a network namespace of its own.

#[macro_use]
extern crate odseed_lab;

mod aws_credentials;
mod bad_input;
mod boards;
mod compat;
mod ec2;
mod ec2_api;
mod ec2_faults;
mod faults;
mod lab;
mod money;
mod provision;
mod publisher;
mod stage;
mod tls;
mod tracker;
mod watch;

use odseed_lab::{Netns, Proc, TempDir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn odseed_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_odseed"))
}

/// A test's world: temp dir (with the ledger under it) and namespace. Dropped last.
pub struct World {
    pub dir: TempDir,
    pub ns: Netns,
}

pub fn world(name: &str) -> World {
    World { ns: Netns::enter().expect("network namespace"), dir: TempDir::new(name).expect("temp dir") }
}

impl World {
    pub fn state_home(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn ledger(&self) -> PathBuf {
        self.state_home().join("odseed/ledger.json")
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("odseed.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs in the world's XDG dirs, with made-up AWS credentials in a file of its own (moto takes
    /// any) and none from the environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(odseed_bin());
        let creds = self.dir.path().join("aws-credentials");
        if !creds.exists() {
            std::fs::write(&creds, "[default]\naws_access_key_id = AKIDODSEEDTEST\naws_secret_access_key = made-up\naws_session_token = made-up-too\n")
                .unwrap();
        }
        c.args(args).env("XDG_STATE_HOME", self.state_home()).env("XDG_CONFIG_HOME", self.dir.path().join("config"));
        // Nothing of the machine's AWS set-up: no variable, no file, no instance metadata.
        for (var, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
            c.env_remove(var);
        }
        c.env("AWS_SHARED_CREDENTIALS_FILE", creds).env("AWS_CONFIG_FILE", self.aws_config());
        c.env("AWS_EC2_METADATA_DISABLED", "true");
        c
    }

    /// The AWS config file odseed reads here (none unless a test writes it).
    pub fn aws_config(&self) -> PathBuf {
        self.dir.path().join("aws-config")
    }

    /// The AWS credentials file odseed reads here; a test that writes it first replaces the
    /// made-up keys.
    pub fn aws_credentials(&self) -> PathBuf {
        self.dir.path().join("aws-credentials")
    }

    /// Runs odseed to its end.
    pub fn odseed(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run odseed")
    }

    /// Starts odseed in the background (stdout and stderr in one log).
    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        Proc::spawn(name, self.command(args), &self.dir.path().join(format!("{name}.log"))).unwrap()
    }
}

/// The JSON events a run printed so far.
pub fn events(p: &Proc) -> Vec<Value> {
    p.log_text().lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect()
}

impl World {
    /// A swarm with its leechers announced, and a controller config naming its boards.
    pub fn swarm(&self, spec: &odseed_lab::swarm::Spec) -> (odseed_lab::swarm::Swarm, PathBuf) {
        let mut swarm =
            odseed_lab::swarm::Swarm::start(&self.ns, self.dir.path(), spec, &odseed_lab::testing::agent_bin())
                .unwrap();
        swarm.start_leechers(spec).unwrap();
        swarm.wait_announced(std::time::Duration::from_secs(60)).unwrap();
        let cfg = self.write_config(&swarm.controller_config());
        (swarm, cfg)
    }
}

impl World {
    /// `odseed run TORRENT 1` every second, for at most 400 s, in JSON, with config `cfg`.
    pub fn spawn_run(&self, name: &str, torrent: &Path, cfg: &Path) -> Proc {
        let (torrent, cfg) = (torrent.to_str().unwrap(), cfg.to_str().unwrap());
        let args =
            ["run", torrent, "1", "--interval", "1", "--min-size", "0", "--max-time", "400", "--json", "--config", cfg];
        self.spawn(name, &args)
    }
}

/// The end-to-end swarm: 4 MiB, a slow origin, three leechers, two helpers (boards or instances).
pub fn end_to_end_spec() -> odseed_lab::swarm::Spec {
    odseed_lab::swarm::Spec {
        size: 4 << 20,
        leechers: 3,
        boards: 2,
        origin_kbps: 100,
        helper_kbps: 0,
        leecher_kbps: 400,
        leecher_up_kbps: 0,
        daemon: None,
        board_tls: None,
        torrents: 1,
        leecher_clients: Vec::new(),
        piece_size: None,
        empty_boards: 0,
        webseed_kbps: None,
        origin_client: Default::default(),
        origin_program: None,
    }
}

/// Waits until a run has printed at least `n` engage events.
pub fn wait_engaged(run: &Proc, n: usize) {
    odseed_lab::wait_until(std::time::Duration::from_secs(60), &format!("{n} helpers engaged"), || {
        (named(&events(run), "engage").len() >= n).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log_text()));
}

pub fn named<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == event).collect()
}

/// Peer `peer` (a made-up one: nothing listens on its port) announces `hash` to the HTTP tracker at
/// `announce_url`, with `left` bytes to go and `event` (started, stopped...).
pub fn announce(announce_url: &str, hash: odseed_proto::InfoHash, peer: usize, left: u64, event: &str) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(5))).build().into();
    let hash: String = hash.as_bytes().iter().map(|b| format!("%{b:02X}")).collect();
    let url = format!(
        "{announce_url}?info_hash={hash}&peer_id=-OD0001-{peer:012}&port={}&uploaded=0&downloaded=0&left={left}&event={event}&compact=1",
        7000 + peer
    );
    agent.get(&url).call().unwrap();
}
