//! The swarm's origin: the publisher's own client, any of the three odseed asks (Transmission,
//! qBittorrent, Deluge), bound to the origin's address and seeding the lab's torrents. The lab
//! measures through it (what it uploads, to whom) and gives `odseed` its `[client]` section.

pub mod deluge;
pub mod qbittorrent;
mod web;

use crate::Peer;
use odseed_proto::InfoHash;
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Which client the origin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OriginClient {
    #[default]
    Transmission,
    Qbittorrent,
    Deluge,
}

impl OriginClient {
    /// Its name in odseed's `[client] kind` and in `--origin-client`.
    pub fn as_str(self) -> &'static str {
        match self {
            OriginClient::Transmission => "transmission",
            OriginClient::Qbittorrent => "qbittorrent",
            OriginClient::Deluge => "deluge",
        }
    }

    pub fn parse(s: &str) -> Option<OriginClient> {
        [OriginClient::Transmission, OriginClient::Qbittorrent, OriginClient::Deluge]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// The program started for it when none is named (on PATH).
    pub fn default_program(self) -> PathBuf {
        match self {
            OriginClient::Transmission => odseed_proto::transmission::DaemonConfig::default().program,
            OriginClient::Qbittorrent => "qbittorrent-nox".into(),
            OriginClient::Deluge => "deluged".into(),
        }
    }
}

pub enum Origin {
    Transmission(Peer),
    Qbittorrent(qbittorrent::Qbittorrent),
    Deluge(deluge::Deluge),
}

/// What the origin does for one torrent now.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Bytes per second it uploads.
    pub rate_upload: u64,
    /// Bytes it has uploaded in all.
    pub uploaded: u64,
    /// Leechers connected to it.
    pub leechers: u64,
}

impl Origin {
    /// Starts `kind` (its `program`) under `dir/origin`, bound to `ip`, its upload capped at
    /// `up_kbps` (1000 bytes/s; 0: none).
    pub fn start(kind: OriginClient, program: &Path, dir: &Path, ip: Ipv4Addr, up_kbps: u32) -> Result<Origin, String> {
        match kind {
            OriginClient::Transmission => {
                let mut settings = json!({ "speed-limit-up": up_kbps, "speed-limit-up-enabled": up_kbps > 0 });
                settings["rpc-password"] = json!(odseed_proto::fsutil::random_hex(12).map_err(|e| e.to_string())?);
                Ok(Origin::Transmission(Peer::start_program(dir, "origin", ip, settings, program)?))
            }
            OriginClient::Qbittorrent => qbittorrent::Qbittorrent::start(program, &dir.join("origin"), ip, up_kbps)
                .map(Origin::Qbittorrent)
                .map_err(|e| hint(e, "qbittorrent-nox")),
            OriginClient::Deluge => deluge::Deluge::start(program, &dir.join("origin"), ip, up_kbps)
                .map(Origin::Deluge)
                .map_err(|e| hint(e, "deluged deluge-web")),
        }
    }

    pub fn kind(&self) -> OriginClient {
        match self {
            Origin::Transmission(_) => OriginClient::Transmission,
            Origin::Qbittorrent(_) => OriginClient::Qbittorrent,
            Origin::Deluge(_) => OriginClient::Deluge,
        }
    }

    /// "Transmission 4.0.6", "qBittorrent v4.5.2", "Deluge 2.0.3": what the report names.
    pub fn describe(&self) -> String {
        match self {
            Origin::Transmission(p) => {
                let v = p.client().session_get().ok().and_then(|v| v["version"].as_str().map(str::to_string));
                let v = v.unwrap_or_default();
                format!("Transmission {}", v.split_whitespace().next().unwrap_or_default()).trim().to_string()
            }
            Origin::Qbittorrent(q) => format!("qBittorrent {}", q.version()).trim().to_string(),
            Origin::Deluge(d) => format!("Deluge {}", d.version()).trim().to_string(),
        }
    }

    /// Where it keeps the content it seeds.
    pub fn data_dir(&self) -> &Path {
        match self {
            Origin::Transmission(p) => &p.data_dir,
            Origin::Qbittorrent(q) => &q.data_dir,
            Origin::Deluge(d) => &d.data_dir,
        }
    }

    /// Adds a torrent whose content is in [`Origin::data_dir`].
    pub fn add(&self, metainfo: &[u8]) -> Result<(), String> {
        match self {
            Origin::Transmission(p) => p.add(metainfo).map(drop),
            Origin::Qbittorrent(q) => q.add(metainfo, None),
            Origin::Deluge(d) => d.add(metainfo),
        }
    }

    /// True once its announce of `hash` succeeded.
    pub fn announced(&self, hash: &InfoHash) -> bool {
        match self {
            Origin::Transmission(p) => p.announced(hash),
            Origin::Qbittorrent(q) => q.announced(hash),
            Origin::Deluge(d) => d.announced(hash),
        }
    }

    /// Asks it to announce `hash` now.
    pub fn reannounce(&self, hash: &InfoHash) {
        match self {
            Origin::Transmission(p) => p.reannounce(hash),
            Origin::Qbittorrent(q) => q.reannounce(hash),
            Origin::Deluge(d) => d.reannounce(hash),
        }
    }

    /// Bytes per second it uploads now, and has uploaded in all.
    pub fn upload(&self, hash: &InfoHash) -> (u64, u64) {
        match self {
            Origin::Transmission(p) => p.upload(hash),
            Origin::Qbittorrent(q) => q.upload(hash),
            Origin::Deluge(d) => d.upload(hash),
        }
    }

    /// Who it sends `hash` to now: each peer's address and bytes per second to it.
    pub fn sending_to(&self, hash: &InfoHash) -> Vec<(String, u64)> {
        match self {
            Origin::Transmission(p) => p.sending_to(hash),
            Origin::Qbittorrent(q) => q.sending_to(hash),
            Origin::Deluge(d) => d.sending_to(hash),
        }
    }

    pub fn stats(&self, hash: &InfoHash) -> Stats {
        let (rate_upload, uploaded) = self.upload(hash);
        let leechers = match self {
            Origin::Transmission(p) => {
                p.info(hash, &["peersGettingFromUs", "peers"]).and_then(|t| t.local_leechers()).unwrap_or(0)
            }
            Origin::Qbittorrent(q) => q.leechers(hash),
            Origin::Deluge(d) => d.leechers(hash),
        };
        Stats { rate_upload, uploaded, leechers }
    }

    /// Puts a torrent in a group: Transmission's label, qBittorrent's category, Deluge's label.
    pub fn set_label(&self, hash: &InfoHash, label: &str) -> Result<(), String> {
        match self {
            Origin::Transmission(p) => p
                .client()
                .call("torrent-set", json!({"ids": [hash.to_string()], "labels": [label]}))
                .map(drop)
                .map_err(|e| e.to_string()),
            Origin::Qbittorrent(q) => q.set_group(hash, Some(label), None),
            Origin::Deluge(d) => d.set_label(hash, label),
        }
    }

    /// Its URL and credentials, as odseed's `[client]` takes them.
    pub fn url(&self) -> String {
        match self {
            Origin::Transmission(p) => p.client().url().to_string(),
            Origin::Qbittorrent(q) => q.url().to_string(),
            Origin::Deluge(d) => d.url().to_string(),
        }
    }

    /// (username, password); Deluge's username is empty (its web UI has a password only).
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            Origin::Transmission(p) => p.credentials(),
            Origin::Qbittorrent(_) => Some((qbittorrent::USER, qbittorrent::PASSWORD)),
            Origin::Deluge(_) => Some(("", deluge::PASSWORD)),
        }
    }

    /// A `[client]` section for odseed's config, the password in `dir/origin.password`.
    pub fn as_publisher(&self, dir: &Path) -> Result<String, String> {
        let (user, password) = self.credentials().ok_or("the origin was started without a known password")?;
        let file = dir.join("origin.password");
        std::fs::write(&file, password).map_err(|e| e.to_string())?;
        let mut section = format!("[client]\nkind = \"{}\"\nurl = \"{}\"\n", self.kind().as_str(), self.url());
        if !user.is_empty() {
            section += &format!("username = \"{user}\"\n");
        }
        section += &format!("password_file = \"{}\"\n", file.display());
        if let Origin::Deluge(d) = self {
            section += &format!("state_dir = \"{}\"\n", d.config_dir.join("state").display());
        }
        Ok(section)
    }

    /// Restarts qBittorrent, or Deluge's web UI: the sessions they had are gone, as after a
    /// timeout. Transmission's sessions are its RPC's 409 handshake, tested with the daemon.
    pub fn restart(&mut self) -> Result<(), String> {
        match self {
            Origin::Transmission(_) => Err("the lab does not restart a Transmission origin".into()),
            Origin::Qbittorrent(q) => q.restart(),
            Origin::Deluge(d) => d.restart(),
        }
    }

    /// Stops the client (its web UI, for Deluge): a publisher's client that goes away.
    pub fn stop(&mut self) {
        match self {
            Origin::Transmission(p) => p.stop(),
            Origin::Qbittorrent(q) => q.stop(),
            Origin::Deluge(d) => d.stop(),
        }
    }
}

/// `e`, with what to install when the program is missing.
fn hint(e: String, packages: &str) -> String {
    if e.contains("No such file") {
        format!("{e} (install it: apt-get install {packages})")
    } else {
        e
    }
}
