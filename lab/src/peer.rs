//! A plain transmission-daemon (an origin seeder or a leecher), started the same way the agent
//! starts its own (`odseed_proto::transmission::launch`), bound to one host address of the namespace.

use odseed_proto::transmission::launch::{launch, stop_child};
use odseed_proto::transmission::DaemonConfig;
use odseed_proto::transmission::{Client, TorrentInfo};
use odseed_proto::InfoHash;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

pub struct Peer {
    pub name: String,
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    client: Arc<Client>,
    child: Child,
    password: Option<String>,
}

impl Peer {
    /// Starts a daemon under `dir/<name>` bound to `ip`, with `extra` settings.json keys
    /// (e.g. `{"speed-limit-down": 500, "speed-limit-down-enabled": true}`).
    pub fn start(dir: &Path, name: &str, ip: Ipv4Addr, extra: Value) -> Result<Peer, String> {
        Peer::start_program(dir, name, ip, extra, &DaemonConfig::default().program)
    }

    /// [`Peer::start`] with another transmission-daemon `program`.
    pub fn start_program(dir: &Path, name: &str, ip: Ipv4Addr, extra: Value, program: &Path) -> Result<Peer, String> {
        let root = dir.join(name);
        let data_dir = root.join("data");
        std::fs::create_dir_all(&data_dir).map_err(|e| format!("{name}: {e}"))?;
        let d = DaemonConfig {
            program: program.to_path_buf(),
            peer_port: 51413,
            bind_address: ip.into(),
            ..DaemonConfig::default()
        };
        let (child, client) = launch(&d, &data_dir, &root.join("config"), &extra, None, Some(&root.join("daemon.log")))
            .map_err(|e| format!("{name}: {e}"))?;
        let password = extra.get("rpc-password").and_then(Value::as_str).map(str::to_string);
        Ok(Peer { name: name.to_string(), ip, data_dir, client, child, password })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Adds a torrent (seeding it if its content is already in `data_dir`).
    pub fn add(&self, metainfo: &[u8]) -> Result<InfoHash, String> {
        let dir = self.data_dir.to_string_lossy();
        self.client.torrent_add(metainfo, &dir).map(|a| a.info_hash).map_err(|e| format!("{}: {e}", self.name))
    }

    /// `fields` (RPC names) of one torrent.
    pub fn info(&self, hash: &InfoHash, fields: &[&str]) -> Option<TorrentInfo> {
        self.client.torrent_get(Some(&[*hash]), fields).ok()?.into_iter().next()
    }

    /// What its daemon says of a torrent that does not progress: status, peers, last announce.
    pub fn describe(&self, hash: &InfoHash) -> String {
        let fields = ["status", "percentDone", "error", "errorString", "peers", "trackerStats"];
        let args = json!({"ids": [hash.to_string()], "fields": fields});
        let Ok(answer) = self.client.call("torrent-get", args) else { return format!("{}: no answer", self.name) };
        let t = &answer["torrents"][0];
        let peers: Vec<&str> =
            t["peers"].as_array().into_iter().flatten().filter_map(|p| p["address"].as_str()).collect();
        let tracker = &t["trackerStats"][0];
        format!(
            "{}: status {} done {} error {} {:?}, peers [{}], last announce {} ({} peers)",
            self.name,
            t["status"],
            t["percentDone"],
            t["error"],
            t["errorString"].as_str().unwrap_or_default(),
            peers.join(" "),
            tracker["lastAnnounceResult"],
            tracker["lastAnnouncePeerCount"]
        )
    }

    /// Who it sends `hash` to now: each peer's address and bytes per second to it.
    pub fn sending_to(&self, hash: &InfoHash) -> Vec<(String, u64)> {
        let args = json!({"ids": [hash.to_string()], "fields": ["peers"]});
        let Ok(answer) = self.client.call("torrent-get", args) else { return Vec::new() };
        (answer["torrents"][0]["peers"].as_array().into_iter().flatten())
            .filter_map(|p| Some((p["address"].as_str()?.to_string(), p["rateToPeer"].as_u64()?)))
            .collect()
    }

    /// 0.0 to 1.0.
    pub fn percent_done(&self, hash: &InfoHash) -> f64 {
        self.info(hash, &["percentDone"]).and_then(|t| t.percent_done()).unwrap_or(0.0)
    }

    /// Bytes per second it uploads now, and has uploaded in all.
    pub fn upload(&self, hash: &InfoHash) -> (u64, u64) {
        let t = self.info(hash, &["rateUpload", "uploadedEver"]).unwrap_or_default();
        (t.rate_upload().unwrap_or(0), t.uploaded_ever().unwrap_or(0))
    }

    /// True once its first announce of `hash` succeeded (the tracker counts it).
    pub fn announced(&self, hash: &InfoHash) -> bool {
        self.info(hash, &["trackerStats"]).is_some_and(|t| t.announced())
    }

    /// Its RPC's username and password, if it was started with a known password.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.password.as_deref().map(|p| ("odseed", p))
    }

    /// A `[transmission]` section for the controller's config, as if this peer were the publisher's
    /// own client (the password goes to `dir/<name>.password`).
    pub fn as_publisher(&self, dir: &Path) -> Result<String, String> {
        let (_, password) = self.credentials().ok_or("this peer was started without a known password")?;
        let file = dir.join(format!("{}.password", self.name));
        std::fs::write(&file, password).map_err(|e| e.to_string())?;
        Ok(format!(
            "[transmission]\nurl = \"{}\"\nusername = \"odseed\"\npassword_file = \"{}\"\n",
            self.client.url(),
            file.display()
        ))
    }

    /// Stops its daemon (a publisher's client that goes away).
    pub fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }

    /// Asks for an announce now (the tracker's interval is long).
    pub fn reannounce(&self, hash: &InfoHash) {
        let _ = self.client.call("torrent-reannounce", json!({ "ids": [hash.to_string()] }));
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}
