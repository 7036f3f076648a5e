//! A leecher of the lab's swarm, whichever client it runs: transmission-daemon (a [`Peer`]) or
//! libtorrent (`libtorrent_peer.py` on Debian's python3-libtorrent, which most real swarms' clients
//! are built on). Both stay in the swarm once complete, seeding, and both are read the same way:
//! a [`Sample`] per torrent.

use crate::process::Proc;
use crate::Peer;
use base64::Engine;
use odseed_proto::InfoHash;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Which client a leecher runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Transmission,
    Libtorrent,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Transmission => "transmission",
            Kind::Libtorrent => "libtorrent",
        }
    }

    /// "transmission" or "libtorrent".
    pub fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "transmission" => Ok(Kind::Transmission),
            "libtorrent" => Ok(Kind::Libtorrent),
            _ => Err(format!("unknown leecher client {s:?} (transmission or libtorrent)")),
        }
    }
}

/// What a leecher has of one torrent, now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// 0.0 to 1.0.
    pub done: f64,
    /// Bytes downloaded so far (all of it, wasted included).
    pub downloaded: u64,
    /// The pieces it has, a bitfield (BEP 3: piece 0 is the high bit of byte 0).
    pub pieces: Vec<u8>,
    /// The peers it is receiving from now, or has received from.
    pub receiving_from: Vec<Ipv4Addr>,
    /// Peers connected.
    pub peers: usize,
    /// An announce succeeded.
    pub announced: bool,
}

pub struct Leecher {
    pub name: String,
    pub kind: Kind,
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    inner: Inner,
}

enum Inner {
    Transmission(Peer),
    Libtorrent { proc: Proc, add_dir: PathBuf, status: PathBuf },
}

const LIBTORRENT_PEER: &str = include_str!("libtorrent_peer.py");

impl Leecher {
    /// Starts `kind` under `dir/<name>`, bound to `ip`, with Transmission's kB/s caps (1000 bytes/s,
    /// 0 = none) on its download and upload; `program` is the transmission-daemon to run.
    pub fn start(
        dir: &Path,
        name: &str,
        kind: Kind,
        ip: Ipv4Addr,
        (down_kbps, up_kbps): (u32, u32),
        program: &Path,
    ) -> Result<Leecher, String> {
        let inner = match kind {
            Kind::Transmission => {
                let limit = |d: &str, kbps: u32| {
                    [(format!("speed-limit-{d}"), json!(kbps)), (format!("speed-limit-{d}-enabled"), json!(kbps > 0))]
                };
                let settings: serde_json::Map<String, Value> =
                    limit("down", down_kbps).into_iter().chain(limit("up", up_kbps)).collect();
                Inner::Transmission(Peer::start_program(dir, name, ip, Value::Object(settings), program)?)
            }
            Kind::Libtorrent => {
                let root = dir.join(name);
                let add_dir = root.join("add");
                std::fs::create_dir_all(&add_dir).map_err(|e| format!("{name}: {e}"))?;
                std::fs::create_dir_all(root.join("data")).map_err(|e| format!("{name}: {e}"))?;
                let script = root.join("libtorrent_peer.py");
                std::fs::write(&script, LIBTORRENT_PEER).map_err(|e| format!("{name}: {e}"))?;
                let status = root.join("status.json");
                let mut cmd = std::process::Command::new("/usr/bin/python3");
                cmd.arg("-u").arg(&script).arg(&add_dir).arg(&status).arg(root.join("data")).arg(ip.to_string());
                cmd.arg((u64::from(down_kbps) * 1000).to_string()).arg((u64::from(up_kbps) * 1000).to_string());
                let proc = Proc::spawn(name, cmd, &root.join("libtorrent.log"))?;
                Inner::Libtorrent { proc, add_dir, status }
            }
        };
        let data_dir = dir.join(name).join("data");
        Ok(Leecher { name: name.to_string(), kind, ip, data_dir, inner })
    }

    /// Gives it a torrent (its bytes) to download.
    pub fn add(&self, metainfo: &[u8]) -> Result<(), String> {
        match &self.inner {
            Inner::Transmission(p) => p.add(metainfo).map(|_| ()),
            Inner::Libtorrent { add_dir, .. } => {
                let hash = odseed_proto::metainfo::parse(metainfo).map_err(|e| e.to_string())?.info_hash;
                let file = add_dir.join(format!("{hash}.torrent"));
                odseed_proto::fsutil::write_atomic(&file, metainfo, 0o644).map_err(|e| format!("{}: {e}", self.name))
            }
        }
    }

    /// What it has of `hash` now (None: it does not answer, or does not have the torrent yet).
    pub fn sample(&self, hash: &InfoHash) -> Option<Sample> {
        match &self.inner {
            Inner::Transmission(p) => transmission_sample(p, hash),
            Inner::Libtorrent { status, .. } => {
                let text = std::fs::read_to_string(status).ok()?;
                let all: Value = serde_json::from_str(&text).ok()?;
                libtorrent_sample(all.get(hash.to_string())?)
            }
        }
    }

    /// 0.0 to 1.0.
    pub fn percent_done(&self, hash: &InfoHash) -> f64 {
        self.sample(hash).map_or(0.0, |s| s.done)
    }

    /// True once its first announce of `hash` succeeded.
    pub fn announced(&self, hash: &InfoHash) -> bool {
        self.sample(hash).is_some_and(|s| s.announced)
    }

    /// What it says of a torrent that does not progress.
    pub fn describe(&self, hash: &InfoHash) -> String {
        match &self.inner {
            Inner::Transmission(p) => p.describe(hash),
            Inner::Libtorrent { proc, .. } => match self.sample(hash) {
                Some(s) => format!(
                    "{} (libtorrent): done {:.3}, {} peers, receiving from [{}], announced {}",
                    self.name,
                    s.done,
                    s.peers,
                    s.receiving_from.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(" "),
                    s.announced
                ),
                None => format!("{} (libtorrent): no status; log: {}", self.name, proc.log_tail(3)),
            },
        }
    }
}

fn transmission_sample(p: &Peer, hash: &InfoHash) -> Option<Sample> {
    let fields = ["percentDone", "downloadedEver", "pieces", "peers", "peersConnected", "trackerStats"];
    let answer = p.client().call("torrent-get", json!({"ids": [hash.to_string()], "fields": fields})).ok()?;
    let t = answer.get("torrents")?.get(0)?;
    let info = odseed_proto::transmission::TorrentInfo::from_json(t.clone());
    let peers = t["peers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let receiving_from = peers
        .iter()
        .filter(|p| p["rateToClient"].as_u64().unwrap_or(0) > 0)
        .filter_map(|p| p["address"].as_str()?.parse().ok())
        .collect();
    Some(Sample {
        done: info.percent_done()?,
        downloaded: t["downloadedEver"].as_u64().unwrap_or(0),
        pieces: base64::engine::general_purpose::STANDARD.decode(t["pieces"].as_str().unwrap_or_default()).ok()?,
        receiving_from,
        peers: info.peers_connected().unwrap_or(0) as usize,
        announced: info.announced(),
    })
}

fn libtorrent_sample(t: &Value) -> Option<Sample> {
    let peers = t["peers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let receiving_from = peers
        .iter()
        .filter(|p| p[1].as_u64().unwrap_or(0) > 0 || p[2].as_u64().unwrap_or(0) > 0)
        .filter_map(|p| p[0].as_str()?.parse().ok())
        .collect();
    let hex = t["pieces"].as_str()?;
    let pieces =
        (0..hex.len() / 2).map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect::<Option<_>>()?;
    Some(Sample {
        done: t["done"].as_f64()?,
        downloaded: t["downloaded"].as_u64().unwrap_or(0),
        pieces,
        receiving_from,
        peers: peers.len(),
        announced: t["announced"].as_bool().unwrap_or(false),
    })
}
