//! odseed-agent's integration tests: the real agent binary, a real transmission-daemon and
//! opentracker, each test inside a network namespace of its own (so ports never clash and no packet
//! leaves the machine). Tests that touch the daemon run against transmission-daemon 3.00 and 4.x
//! (`odseed_lab::each_daemon!`: `<test>::transmission_3` and `<test>::transmission_4`).

#[macro_use]
extern crate odseed_lab;

mod api;
mod bad_input;
mod config;
mod faults;
mod hostile;
mod inventory;
mod seeding;
mod tls;
mod transmission;
mod usage;

use odseed_lab::testing::Daemon;
use odseed_lab::{content, wait_until, Agent, AgentOptions, Netns, TempDir};
use odseed_proto::agent_client::AgentClient;
use odseed_proto::bencode::Owned;
use odseed_proto::wire::{Torrent, TorrentState};
use odseed_proto::InfoHash;
use std::path::Path;
use std::time::Duration;

/// The agent binary cargo built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_odseed-agent"))
}

/// A test's world: its namespace, its temp dir, and the transmission-daemon its agents run.
/// Declare it first so it is dropped last.
pub struct World {
    pub dir: TempDir,
    pub ns: Netns,
    pub daemon: Daemon,
}

/// A world whose agents run Debian 12's transmission-daemon 3.00.
pub fn world(name: &str) -> World {
    world_with(name, Daemon::T3)
}

pub fn world_with(name: &str, daemon: Daemon) -> World {
    let _ = env_logger::builder().is_test(true).try_init();
    World { ns: Netns::enter().expect("network namespace"), dir: TempDir::new(name).expect("temp dir"), daemon }
}

impl World {
    /// An agent under the world's dir running the world's daemon.
    pub fn agent(&self, name: &str, o: &AgentOptions) -> Agent {
        let o = AgentOptions { program: self.daemon.program(), ..o.clone() };
        Agent::start(bin(), &self.dir.path().join(name), &o).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A torrent of `size` bytes whose content is written into `dir` (so a daemon there can seed it).
/// It announces to an address with nothing behind it unless the test starts a tracker there.
pub fn torrent_in(dir: &Path, name: &str, size: u64) -> content::Made {
    content::make(dir, name, size, size ^ 0x5eed, &["http://10.77.0.1:6969/announce".into()]).expect("content")
}

/// A torrent whose info dict is exactly `info`, for hand-made bad ones.
pub fn raw_torrent(info: Owned) -> (InfoHash, Vec<u8>) {
    let raw = info.encode();
    let hash = InfoHash::from_bytes(sha1_smol::Sha1::from(&raw).digest().bytes());
    (hash, Owned::dict([("announce", Owned::str("http://10.77.0.1:6969/announce")), ("info", info)]).encode())
}

/// Waits until the agent reports `hash` as seeding; the session.
pub fn seeding(c: &AgentClient, hash: &InfoHash) -> Torrent {
    let what = format!("{hash} to be seeding");
    wait_until(Duration::from_secs(60), &what, || {
        c.get(hash).ok().flatten().filter(|t| t.state == TorrentState::Seeding)
    })
    .unwrap_or_else(|e| panic!("{e}; last seen: {:?}", c.get(hash)))
}

/// Sends a request with an optional token; the status and body as text.
pub fn send(url: &str, method: &str, token: Option<&str>, body: Option<&[u8]>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into();
    let auth = token.map(|t| format!("Bearer {t}"));
    let result = match (method, body) {
        ("PUT" | "POST", b) => {
            let mut r = if method == "PUT" { agent.put(url) } else { agent.post(url) };
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send(b.unwrap_or_default())
        }
        _ => {
            let mut r = if method == "DELETE" { agent.delete(url) } else { agent.get(url) };
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
    };
    let mut resp = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default())
}

/// The `error` code of an error body.
pub fn code(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body}"));
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "no message in {body}");
    v["error"].as_str().unwrap_or_default().to_string()
}
