//! Deluge as the lab's origin: deluged (BitTorrent on one address, its daemon port on 127.0.0.1)
//! and deluge-web on 127.0.0.1:8112 of the namespace, sharing one config dir (so the web UI knows
//! the daemon), with the web UI's own default password, "deluge".

use super::web;
use crate::process::Proc;
use odseed_proto::InfoHash;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

pub const PASSWORD: &str = "deluge";
const WEB_PORT: u16 = 8112;
const DAEMON_PORT: u16 = 58846;
const PEER_PORT: u16 = 6891;

pub struct Deluge {
    pub data_dir: PathBuf,
    /// deluged's config dir; its `state/` holds a copy of each torrent.
    pub config_dir: PathBuf,
    url: String,
    session: Mutex<Option<String>>,
    daemon: Proc,
    web: Proc,
    web_program: PathBuf,
    root: PathBuf,
}

impl Deluge {
    /// Starts `deluged` and `deluge-web` (found beside `daemon`) under `root`, bound to `ip`, its
    /// upload capped at `up_kbps` (1000 bytes/s; 0: none).
    pub fn start(daemon: &Path, root: &Path, ip: Ipv4Addr, up_kbps: u32) -> Result<Deluge, String> {
        let (data_dir, config_dir) = (root.join("data"), root.join("config"));
        for d in [&data_dir, &config_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("Deluge: {}: {e}", d.display()))?;
        }
        // Its settings before it starts: nothing of it reaches beyond the namespace's addresses, not
        // even once (DHT, UPnP, NAT-PMP, LSD, PeX, the new-release check), and its peer port is
        // on `ip`. Deluge fills in the keys not given.
        let core = json!({
            "dht": false, "upnp": false, "natpmp": false, "lsd": false, "utpex": false,
            "new_release_check": false, "ignore_limits_on_local_network": false, "random_port": false,
            "listen_ports": [PEER_PORT, PEER_PORT], "listen_interface": ip.to_string(),
            "outgoing_interface": ip.to_string(),
            "max_upload_speed": if up_kbps > 0 { f64::from(up_kbps) * 1000.0 / 1024.0 } else { -1.0 },
        });
        let text = format!("{}{}", json!({"file": 1, "format": 1}), core);
        std::fs::write(config_dir.join("core.conf"), text).map_err(|e| format!("Deluge: core.conf: {e}"))?;
        let mut cmd = Command::new(daemon);
        cmd.arg("-d").arg("-c").arg(&config_dir).args(["-p", &DAEMON_PORT.to_string(), "-u", "127.0.0.1"]);
        cmd.args(["-i", &ip.to_string(), "-o", &ip.to_string(), "-L", "warning"]).env("HOME", root);
        let daemon_proc = Proc::spawn("deluged", cmd, &root.join("deluged.log"))?;
        // deluge-web makes its list of daemons from deluged's auth file: start it once that exists.
        crate::wait_until(Duration::from_secs(30), "deluged's auth file", || {
            std::fs::metadata(config_dir.join("auth")).ok().filter(|m| m.len() > 0)
        })
        .map_err(|e| format!("{e}: {}", daemon_proc.log_tail(10)))?;
        let web_program = daemon.with_file_name("deluge-web");
        let web_proc = spawn_web(&web_program, &config_dir, root)?;
        let d = Deluge {
            data_dir,
            config_dir,
            url: format!("http://127.0.0.1:{WEB_PORT}/json"),
            session: Mutex::new(None),
            daemon: daemon_proc,
            web: web_proc,
            web_program,
            root: root.to_path_buf(),
        };
        crate::wait_until(Duration::from_secs(60), "deluge-web connected to deluged", || d.connect().ok())
            .map_err(|e| format!("{e}: {} {}", d.daemon.log_tail(5), d.web.log_tail(5)))?;
        // What deluged made of core.conf, checked: a key it did not take would be set here.
        let config = d.call("core.get_config", json!([]))?;
        let unset: Vec<&str> = (core.as_object().into_iter().flatten())
            .filter(|(k, v)| config.get(k.as_str()) != Some(v))
            .map(|(k, _)| k.as_str())
            .collect();
        if !unset.is_empty() {
            return Err(format!("deluged did not take {unset:?} from core.conf"));
        }
        Ok(d)
    }

    /// Stops deluge-web and starts it again: every session it had is gone.
    pub fn restart(&mut self) -> Result<(), String> {
        self.web.stop(Duration::from_secs(10));
        self.web = spawn_web(&self.web_program, &self.config_dir, &self.root)?;
        crate::wait_until(Duration::from_secs(60), "deluge-web again", || self.connect().ok())
            .map_err(|e| format!("{e}: {}", self.web.log_tail(5)))
    }

    /// deluge-web's JSON-RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn connect(&self) -> Result<(), String> {
        let resp = web::send(
            "POST",
            &self.url,
            &[("Content-Type", "application/json")],
            json!({"method": "auth.login", "params": [PASSWORD], "id": 1}).to_string().as_bytes(),
        )?;
        let cookie = resp.cookie(|n| n == "_session_id").ok_or("no session cookie")?;
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(cookie);
        let hosts = self.call("web.get_hosts", json!([]))?;
        let id = hosts[0][0].as_str().ok_or("deluge-web lists no daemon")?.to_string();
        self.call("web.connect", json!([id]))?;
        match self.call("web.connected", json!([]))? {
            Value::Bool(true) => Ok(()),
            _ => Err("deluge-web is not connected to deluged".into()),
        }
    }

    pub fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        let cookie = self.session.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
        let body = json!({"method": method, "params": params, "id": 2}).to_string();
        let resp = web::send(
            "POST",
            &self.url,
            &[("Content-Type", "application/json"), ("Cookie", &cookie)],
            body.as_bytes(),
        )?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| format!("deluge-web {method}: {e}"))?;
        match &v["error"] {
            Value::Null => Ok(v["result"].clone()),
            e => Err(format!("deluge-web {method}: {e}")),
        }
    }

    pub fn version(&self) -> String {
        self.call("daemon.get_version", json!([])).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// Adds a torrent whose content is in `data_dir`, seeding it without a check.
    pub fn add(&self, metainfo: &[u8]) -> Result<(), String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(metainfo);
        let options =
            json!({"download_location": self.data_dir.to_string_lossy(), "seed_mode": true, "add_paused": false});
        self.call("core.add_torrent_file", json!(["t.torrent", b64, options])).map(drop)
    }

    /// Gives a torrent a label (the Label plugin, enabled here).
    pub fn set_label(&self, hash: &InfoHash, label: &str) -> Result<(), String> {
        self.call("core.enable_plugin", json!(["Label"]))?;
        crate::wait_until(Duration::from_secs(20), "the Label plugin", || {
            let _ = self.call("label.add", json!([label]));
            self.call("label.set_torrent", json!([hash.to_string(), label])).ok()
        })
        .map(drop)
    }

    fn status(&self, hash: &InfoHash, keys: &[&str]) -> Value {
        self.call("core.get_torrent_status", json!([hash.to_string(), keys])).unwrap_or(Value::Null)
    }

    pub fn announced(&self, hash: &InfoHash) -> bool {
        self.status(hash, &["tracker_status"])["tracker_status"].as_str().is_some_and(|s| s.contains("Announce OK"))
    }

    pub fn reannounce(&self, hash: &InfoHash) {
        let _ = self.call("core.force_reannounce", json!([[hash.to_string()]]));
    }

    /// Bytes per second it uploads now, and has uploaded in all.
    pub fn upload(&self, hash: &InfoHash) -> (u64, u64) {
        let t = self.status(hash, &["upload_payload_rate", "total_uploaded"]);
        (num(&t["upload_payload_rate"]), num(&t["total_uploaded"]))
    }

    /// Each peer's address and the bytes per second sent to it now.
    pub fn sending_to(&self, hash: &InfoHash) -> Vec<(String, u64)> {
        let t = self.status(hash, &["peers"]);
        (t["peers"].as_array().into_iter().flatten())
            .filter_map(|p| Some((p["ip"].as_str()?.to_string(), num(&p["up_speed"]))))
            .collect()
    }

    /// The leechers connected to it now.
    pub fn leechers(&self, hash: &InfoHash) -> u64 {
        num(&self.status(hash, &["num_peers"])["num_peers"])
    }

    /// Stops the web UI (as a client that goes away mid-run); deluged stays.
    pub fn stop(&mut self) {
        self.web.stop(Duration::from_secs(10));
    }
}

/// A count or rate Deluge gives as an integer or a float.
fn num(v: &Value) -> u64 {
    v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)).unwrap_or(0)
}

fn spawn_web(program: &Path, config_dir: &Path, root: &Path) -> Result<Proc, String> {
    let mut cmd = Command::new(program);
    cmd.arg("-d").arg("-c").arg(config_dir).args(["-i", "127.0.0.1", "-p", &WEB_PORT.to_string(), "-L", "warning"]);
    cmd.env("HOME", root);
    Proc::spawn("deluge-web", cmd, &root.join("deluge-web.log"))
}
