//! A whole swarm in one network namespace: opentracker, an origin seeder, leechers, and boards
//! (agents holding a copy of the content, not yet engaged). Each host has its own address, so
//! Transmission treats them as distinct peers; bandwidth is capped with Transmission's own limits.

use crate::content::{self, Made};
use crate::{Agent, AgentOptions, Netns, Peer, Tracker};
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The shape of a swarm.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spec {
    pub size: u64,
    pub leechers: usize,
    pub boards: usize,
    /// Caps in Transmission's kB/s (1000 bytes/s; 0 = none): the origin's and each board's upload,
    /// each leecher's download.
    pub origin_kbps: u32,
    pub helper_kbps: u32,
    pub leecher_kbps: u32,
    /// Upload cap of each leecher (0 = none).
    pub leecher_up_kbps: u32,
    /// The transmission-daemon of the origin, the leechers and the boards (None: the one on PATH).
    pub daemon: Option<PathBuf>,
    /// The boards' API over TLS with this certificate and key (PEM), as a provisioned EC2 pool's
    /// agents share them (None: plain HTTP).
    pub board_tls: Option<(String, String)>,
}

impl Spec {
    fn program(&self) -> PathBuf {
        self.daemon.clone().unwrap_or_else(|| odseed_proto::transmission::DaemonConfig::default().program)
    }
}

pub struct Swarm {
    pub tracker: Tracker,
    pub origin: Peer,
    pub leechers: Vec<Peer>,
    pub boards: Vec<Agent>,
    pub torrent: Made,
    /// The .torrent file, for `odseed run`.
    pub torrent_file: PathBuf,
    dir: PathBuf,
}

/// Host addresses: the tracker, the origin, leecher i, board i.
pub fn tracker_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 1)
}
pub fn origin_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 2)
}
pub fn leecher_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 1, 10 + i as u8)
}
pub fn board_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 2, 10 + i as u8)
}

fn limit(direction: &str, kbps: u32) -> serde_json::Value {
    json!({ format!("speed-limit-{direction}"): kbps, format!("speed-limit-{direction}-enabled"): kbps > 0 })
}

impl Swarm {
    /// Builds the swarm under `dir` (tracker, origin seeding, boards idle); leechers are added by
    /// [`Swarm::start_leechers`], so a test can look at the swarm before the crowd arrives.
    pub fn start(ns: &Netns, dir: &Path, spec: &Spec, agent_bin: &Path) -> Result<Swarm, String> {
        for ip in [tracker_ip(), origin_ip()]
            .into_iter()
            .chain((0..spec.leechers).map(leecher_ip))
            .chain((0..spec.boards).map(board_ip))
        {
            ns.add_host(ip)?;
        }
        let mut origin_settings = limit("up", spec.origin_kbps);
        origin_settings["rpc-password"] = json!(odseed_proto::fsutil::random_hex(12).map_err(|e| e.to_string())?);
        let origin = Peer::start_program(dir, "origin", origin_ip(), origin_settings, &spec.program())?;
        let announce = format!("http://{}:6969/announce", tracker_ip());
        let torrent = content::make(&origin.data_dir, "payload.bin", spec.size, 0x0d5eed, &[announce])?;
        let torrent_file = dir.join("payload.torrent");
        std::fs::write(&torrent_file, &torrent.bytes).map_err(|e| format!("torrent file: {e}"))?;
        let tracker = Tracker::start(&dir.join("tracker"), tracker_ip(), 6969, &[torrent.meta.info_hash])?;
        origin.add(&torrent.bytes)?;
        let mut boards = Vec::new();
        for i in 0..spec.boards {
            let o = AgentOptions {
                host: board_ip(i),
                listen: board_ip(i),
                upload_kbps: spec.helper_kbps,
                program: spec.program(),
                tls: spec.board_tls.is_some(),
                ..AgentOptions::default()
            };
            let root = dir.join(format!("board{i}"));
            std::fs::create_dir_all(root.join("data")).map_err(|e| e.to_string())?;
            if let Some((cert, key)) = &spec.board_tls {
                std::fs::create_dir_all(root.join("tls")).map_err(|e| e.to_string())?;
                std::fs::write(root.join("tls/cert.pem"), cert).map_err(|e| format!("board certificate: {e}"))?;
                odseed_proto::fsutil::write_atomic(&root.join("tls/key.pem"), key.as_bytes(), 0o600)
                    .map_err(|e| format!("board key: {e}"))?;
            }
            std::fs::copy(origin.data_dir.join("payload.bin"), root.join("data/payload.bin"))
                .map_err(|e| format!("copy content: {e}"))?;
            boards.push(Agent::start(agent_bin, &root, &o)?);
        }
        let leechers = Vec::new();
        Ok(Swarm { tracker, origin, leechers, boards, torrent, torrent_file, dir: dir.to_path_buf() })
    }

    /// Starts the leechers and gives them the torrent.
    pub fn start_leechers(&mut self, spec: &Spec) -> Result<(), String> {
        for i in 0..spec.leechers {
            let mut settings = limit("down", spec.leecher_kbps);
            if let (Some(s), Some(up)) = (settings.as_object_mut(), limit("up", spec.leecher_up_kbps).as_object()) {
                s.extend(up.clone());
            }
            let p = Peer::start_program(&self.dir, &format!("leecher{i}"), leecher_ip(i), settings, &spec.program())?;
            p.add(&self.torrent.bytes)?;
            self.leechers.push(p);
        }
        Ok(())
    }

    /// Waits until the origin and every leecher have announced (so a scrape counts them all).
    pub fn wait_announced(&self, timeout: std::time::Duration) -> Result<(), String> {
        let hash = self.torrent.meta.info_hash;
        let peers = || std::iter::once(&self.origin).chain(&self.leechers);
        crate::wait_until(timeout, "every peer's first announce", || peers().all(|p| p.announced(&hash)).then_some(()))
    }

    /// A controller config naming every board (and its token file).
    pub fn controller_config(&self) -> String {
        self.boards
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let pin = a.pin.map(|p| format!("cert_sha256 = \"{p}\"\n")).unwrap_or_default();
                format!(
                    "[[board]]\nname = \"board{i}\"\nurl = \"{}\"\ntoken_file = \"{}\"\n{pin}",
                    a.url,
                    a.root.join("token").display()
                )
            })
            .collect()
    }

    /// The leechers whose file differs from the origin's, byte for byte.
    pub fn mismatched(&self) -> Result<Vec<String>, String> {
        let want =
            std::fs::read(self.origin.data_dir.join("payload.bin")).map_err(|e| format!("origin's file: {e}"))?;
        Ok(self
            .leechers
            .iter()
            .filter(|l| std::fs::read(l.data_dir.join("payload.bin")).map_or(true, |got| got != want))
            .map(|l| l.name.clone())
            .collect())
    }

    /// The directory it lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True once every leecher has the whole file.
    pub fn all_complete(&self) -> bool {
        self.leechers.iter().all(|l| l.percent_done(&self.torrent.meta.info_hash) >= 1.0)
    }
}
