//! qBittorrent (qbittorrent-nox) as the lab's origin: a profile of its own, its WebUI on
//! 127.0.0.1:8080 of the namespace (user admin, password adminadmin: qBittorrent 4.x's own
//! default, so no hash is computed here), BitTorrent on one address, no DHT, PeX, LSD or UPnP.

use super::web;
use crate::process::Proc;
use odseed_proto::InfoHash;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

pub const USER: &str = "admin";
pub const PASSWORD: &str = "adminadmin";
/// PBKDF2-SHA512 of "adminadmin", as qBittorrent 4.2 and later store it.
const PASSWORD_PBKDF2: &str = "@ByteArray(ARQ77eY1NUZaQsuDHbIMCA==:0WMRkYTUWVT9wVvdDtHAjU9b3b7uB8NR1Gur2hmQCvCDpm39Q+PsJRJPaCU51dEiz+dTzh8qbPsL8WkFljQYFQ==)";
const WEBUI_PORT: u16 = 8080;
const PEER_PORT: u16 = 6890;

pub struct Qbittorrent {
    pub data_dir: PathBuf,
    url: String,
    session: Mutex<Option<String>>,
    proc: Proc,
    /// How to start it again: the program and its profile dir.
    program: PathBuf,
    root: PathBuf,
}

impl Qbittorrent {
    /// Starts `program` (qbittorrent-nox) under `root`, bound to `ip`, its upload capped at
    /// `up_kbps` (1000 bytes/s, as Transmission counts; 0: none).
    pub fn start(program: &Path, root: &Path, ip: Ipv4Addr, up_kbps: u32) -> Result<Qbittorrent, String> {
        let data_dir = root.join("data");
        let config = root.join("qBittorrent/config");
        for d in [&data_dir, &config] {
            std::fs::create_dir_all(d).map_err(|e| format!("qBittorrent: {}: {e}", d.display()))?;
        }
        let conf = format!(
            "[LegalNotice]\nAccepted=true\n\n\
             [BitTorrent]\nSession\\DHTEnabled=false\nSession\\PeXEnabled=false\nSession\\LSDEnabled=false\n\
             Session\\Port={PEER_PORT}\nSession\\InterfaceAddress={ip}\nSession\\AnnounceIP={ip}\n\
             Session\\DefaultSavePath={}\nSession\\QueueingSystemEnabled=false\n\
             Session\\IgnoreLimitsOnLAN=false\nSession\\AnonymousModeEnabled=false\n\n\
             [Network]\nPortForwardingEnabled=false\n\n\
             [Preferences]\nWebUI\\Enabled=true\nWebUI\\Address=127.0.0.1\nWebUI\\Port={WEBUI_PORT}\n\
             WebUI\\Username={USER}\nWebUI\\Password_PBKDF2=\"{PASSWORD_PBKDF2}\"\nWebUI\\UseUPnP=false\n\
             WebUI\\LocalHostAuth=true\nWebUI\\CSRFProtection=true\nWebUI\\HostHeaderValidation=true\n\
             General\\Locale=en\n",
            data_dir.display()
        );
        std::fs::write(config.join("qBittorrent.conf"), conf).map_err(|e| format!("qBittorrent config: {e}"))?;
        let q = Qbittorrent {
            data_dir,
            url: format!("http://127.0.0.1:{WEBUI_PORT}"),
            session: Mutex::new(None),
            proc: spawn(program, root)?,
            program: program.to_path_buf(),
            root: root.to_path_buf(),
        };
        q.wait_ready()?;
        if up_kbps > 0 {
            q.post("transfer/setUploadLimit", &format!("limit={}", u64::from(up_kbps) * 1000))?;
        }
        Ok(q)
    }

    fn wait_ready(&self) -> Result<(), String> {
        crate::wait_until(Duration::from_secs(60), "qBittorrent's WebUI", || self.login().ok())
            .map_err(|e| format!("{e}: {}", self.proc.log_tail(10)))
    }

    /// Stops it and starts it again with the same profile: every WebUI session it had is gone.
    pub fn restart(&mut self) -> Result<(), String> {
        self.proc.stop(Duration::from_secs(10));
        self.proc = spawn(&self.program, &self.root)?;
        self.wait_ready()
    }

    /// The WebUI's root URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn version(&self) -> String {
        self.get("app/version").map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default()
    }

    fn login(&self) -> Result<(), String> {
        let body = format!("username={USER}&password={PASSWORD}");
        let headers = [("Content-Type", "application/x-www-form-urlencoded")];
        let resp = web::send("POST", &format!("{}/api/v2/auth/login", self.url), &headers, body.as_bytes())?;
        let cookie = resp.cookie(|n| n == "SID" || n.starts_with("QBT_SID")).ok_or("no session cookie")?;
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(cookie);
        Ok(())
    }

    fn call(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let cookie = self.session.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
        let headers = [("Cookie", cookie.as_str()), ("Content-Type", content_type)];
        let resp = web::send(method, &format!("{}/api/v2/{path}", self.url), &headers, body)?;
        match resp.status {
            200 => Ok(resp.body),
            s => Err(format!("qBittorrent {path}: HTTP {s}: {}", String::from_utf8_lossy(&resp.body))),
        }
    }

    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        self.call("GET", path, "text/plain", b"")
    }

    fn post(&self, path: &str, form: &str) -> Result<Vec<u8>, String> {
        self.call("POST", path, "application/x-www-form-urlencoded", form.as_bytes())
    }

    fn json(&self, path: &str) -> Value {
        self.get(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null)
    }

    /// Adds a torrent whose content is in `data_dir`, seeding it without a check.
    pub fn add(&self, metainfo: &[u8], category: Option<&str>) -> Result<(), String> {
        let dir = self.data_dir.to_string_lossy().into_owned();
        let mut fields = vec![("savepath", dir.as_str()), ("skip_checking", "true")];
        if let Some(c) = category {
            fields.push(("category", c));
        }
        let (content_type, body) = web::multipart(&fields, "torrents", "t.torrent", metainfo);
        let answer = self.call("POST", "torrents/add", &content_type, &body)?;
        match String::from_utf8_lossy(&answer).trim() {
            "Ok." => Ok(()),
            other => Err(format!("qBittorrent torrents/add: {other}")),
        }
    }

    /// One row of `torrents/info`.
    pub fn info(&self, hash: &InfoHash) -> Value {
        self.json(&format!("torrents/info?hashes={hash}")).get(0).cloned().unwrap_or(Value::Null)
    }

    /// Sets a torrent's category (made first) or adds a tag.
    pub fn set_group(&self, hash: &InfoHash, category: Option<&str>, tag: Option<&str>) -> Result<(), String> {
        if let Some(c) = category {
            let _ = self.post("torrents/createCategory", &format!("category={c}&savePath="));
            self.post("torrents/setCategory", &format!("hashes={hash}&category={c}"))?;
        }
        if let Some(t) = tag {
            self.post("torrents/addTags", &format!("hashes={hash}&tags={t}"))?;
        }
        Ok(())
    }

    pub fn announced(&self, hash: &InfoHash) -> bool {
        let rows = self.json(&format!("torrents/trackers?hash={hash}"));
        rows.as_array()
            .into_iter()
            .flatten()
            .any(|r| r["url"].as_str().is_some_and(|u| u.starts_with("http")) && r["status"].as_i64() == Some(2))
    }

    pub fn reannounce(&self, hash: &InfoHash) {
        let _ = self.post("torrents/reannounce", &format!("hashes={hash}"));
    }

    /// Bytes per second it uploads now, and has uploaded in all.
    pub fn upload(&self, hash: &InfoHash) -> (u64, u64) {
        let t = self.info(hash);
        (t["upspeed"].as_u64().unwrap_or(0), t["uploaded"].as_u64().unwrap_or(0))
    }

    /// Each peer's address and the bytes per second sent to it now.
    pub fn sending_to(&self, hash: &InfoHash) -> Vec<(String, u64)> {
        let v = self.json(&format!("sync/torrentPeers?hash={hash}&rid=0"));
        let peers = v["peers"].as_object().cloned().unwrap_or_default();
        peers.into_iter().filter_map(|(addr, p)| Some((addr, p["up_speed"].as_u64()?))).collect()
    }

    /// The leechers connected to it now.
    pub fn leechers(&self, hash: &InfoHash) -> u64 {
        self.info(hash)["num_leechs"].as_u64().unwrap_or(0)
    }

    /// Stops it (as a client that goes away mid-run).
    pub fn stop(&mut self) {
        self.proc.stop(Duration::from_secs(10));
    }
}

fn spawn(program: &Path, root: &Path) -> Result<Proc, String> {
    let mut cmd = Command::new(program);
    cmd.arg(format!("--profile={}", root.display())).env("HOME", root);
    Proc::spawn("qbittorrent", cmd, &root.join("qbittorrent.log"))
}
