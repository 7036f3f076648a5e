//! The publisher's Deluge, over deluge-web's JSON-RPC (`POST /json`; Deluge 2.x).
//!
//! - `auth.login` with the web UI's password gives the `_session_id` cookie; `web.connected`,
//!   `web.get_hosts` and `web.connect` attach the web UI to its first daemon when it is not yet.
//! - `core.get_torrents_status`: the torrents. `num_seeds` and `num_peers` are the peers connected
//!   now, complete and not (Deluge's `num_peers` already leaves the seeds out); `total_seeds` and
//!   `total_peers` are what its trackers last said (-1 until one answers). `label` is the Label
//!   plugin's, when it is enabled.
//! - Deluge 2.0 gives no copy of a torrent over JSON-RPC: odseed reads the one deluged keeps in
//!   its state directory (`[client] state_dir`), for a torrent found by name or from the catalogue.
//!
//! Every answer is HTTP 200 with `{result, error, id}`; error code 1 (not authenticated: the
//! session expired, or deluge-web restarted) signs in again once per call, and an unknown
//! `core.` method (the web UI lost its daemon) connects again once.

use super::http::{self, MAX_ANSWER_BYTES};
use super::{Entry, Publisher};
use odseed_proto::InfoHash;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const KEYS: [&str; 10] = [
    "name",
    "total_size",
    "progress",
    "state",
    "num_seeds",
    "num_peers",
    "total_seeds",
    "total_peers",
    "label",
    "trackers",
];

pub struct Deluge {
    url: String,
    password: String,
    state_dir: PathBuf,
    /// The session cookie, `_session_id=...`.
    session: Mutex<Option<String>>,
    id: AtomicU64,
}

/// How a call failed.
enum Failed {
    /// JSON-RPC error code 1: sign in again.
    NotSignedIn,
    /// JSON-RPC error code 2 on a `core.` method: the web UI has no daemon; connect again.
    NoDaemon,
    Other(String),
}

impl Deluge {
    /// `password` None: Deluge's own default, "deluge".
    pub fn new(url: &str, password: Option<&str>, state_dir: PathBuf) -> Deluge {
        Deluge {
            url: url.to_string(),
            password: password.unwrap_or("deluge").to_string(),
            state_dir,
            session: Mutex::new(None),
            id: AtomicU64::new(1),
        }
    }

    fn cookie(&self) -> Option<String> {
        self.session.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One JSON-RPC call as it is, with the session if there is one.
    fn call_once(&self, method: &str, params: Value, max: u64) -> Result<(Value, Option<String>), Failed> {
        let id = self.id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "method": method, "params": params, "id": id }).to_string();
        let cookie = self.cookie();
        let mut headers = vec![("Content-Type", "application/json"), ("Accept", "application/json")];
        if let Some(c) = &cookie {
            headers.push(("Cookie", c.as_str()));
        }
        let resp =
            http::send(&self.name(), "POST", &self.url, &headers, body.as_bytes(), max).map_err(Failed::Other)?;
        if resp.status != 200 {
            return Err(Failed::Other(format!("{} answered HTTP {} to {method}", self.name(), resp.status)));
        }
        let v = http::json(&self.name(), method, &resp).map_err(Failed::Other)?;
        let set = resp.cookie(|n| n == "_session_id");
        match v.get("error") {
            None | Some(Value::Null) => {}
            Some(e) => {
                let code = e.get("code").and_then(Value::as_i64);
                let message = e.get("message").and_then(Value::as_str).unwrap_or("no message");
                return Err(match code {
                    Some(1) => Failed::NotSignedIn,
                    Some(2) if method.starts_with("core.") => Failed::NoDaemon,
                    _ => Failed::Other(format!(
                        "{} failed {method}: {}",
                        self.name(),
                        odseed_proto::printable::printable_line(message, 200)
                    )),
                });
            }
        }
        match v.get("result") {
            Some(r) if v.get("id").and_then(Value::as_u64) == Some(id) => Ok((r.clone(), set)),
            _ => Err(Failed::Other(format!("{} answered {method} with no result for its id", self.name()))),
        }
    }

    fn other(e: Failed, name: &str, method: &str) -> String {
        match e {
            Failed::Other(s) => s,
            Failed::NotSignedIn => format!("{name} says odseed is not signed in, just after signing in ({method})"),
            Failed::NoDaemon => format!("{name} is connected to no deluged ({method})"),
        }
    }

    fn login(&self) -> Result<(), String> {
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let (ok, cookie) = self
            .call_once("auth.login", json!([self.password]), 64 << 10)
            .map_err(|e| Self::other(e, &self.name(), "auth.login"))?;
        match (ok, cookie) {
            (Value::Bool(true), Some(c)) => {
                *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
                Ok(())
            }
            (Value::Bool(true), None) => Err(format!("{} signed odseed in but set no session cookie", self.name())),
            _ => Err(format!("{} refused the password of [client] (auth.login)", self.name())),
        }
    }

    /// Attaches the web UI to its first daemon, unless it is already.
    fn connect(&self) -> Result<(), String> {
        let call =
            |m: &str, p: Value| self.call_once(m, p, 1 << 20).map(|r| r.0).map_err(|e| Self::other(e, &self.name(), m));
        if call("web.connected", json!([]))? == Value::Bool(true) {
            return Ok(());
        }
        let hosts = call("web.get_hosts", json!([]))?;
        let first = hosts.as_array().and_then(|h| h.first()).and_then(|h| h.get(0)).and_then(Value::as_str);
        let Some(id) = first else {
            return Err(format!("{} knows no deluged to connect to (add one in its Connection Manager)", self.name()));
        };
        call("web.connect", json!([id]))?;
        Ok(())
    }

    /// A call, signing in and connecting the web UI to its daemon as needed (each once).
    fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        if self.cookie().is_none() {
            self.login()?;
            self.connect()?;
        }
        let (mut signed_in, mut connected) = (false, false);
        loop {
            match self.call_once(method, params.clone(), MAX_ANSWER_BYTES) {
                Ok((v, _)) => return Ok(v),
                Err(Failed::NotSignedIn) if !signed_in => {
                    signed_in = true;
                    self.login()?;
                    self.connect()?;
                }
                Err(Failed::NoDaemon) if !connected => {
                    connected = true;
                    self.connect()?;
                }
                Err(e) => return Err(Self::other(e, &self.name(), method)),
            }
        }
    }

    /// `core.get_torrents_status` for `hashes` (all if None), with `keys`.
    fn status(&self, hashes: Option<&[InfoHash]>, keys: &[&str]) -> Result<Vec<(InfoHash, Value)>, String> {
        let filter = match hashes {
            Some(h) => json!({ "id": h.iter().map(|h| h.to_string()).collect::<Vec<_>>() }),
            None => json!({}),
        };
        let v = self.call("core.get_torrents_status", json!([filter, keys]))?;
        let Value::Object(map) = v else {
            return Err(format!("{} answered core.get_torrents_status with JSON that is not an object", self.name()));
        };
        Ok(map.into_iter().filter_map(|(k, v)| Some((InfoHash::from_hex_any_case(&k).ok()?, v))).collect())
    }
}

impl Publisher for Deluge {
    fn name(&self) -> String {
        format!("Deluge at {}", crate::ec2::credentials::redacted(&self.url))
    }

    fn entries(&self, hashes: Option<&[InfoHash]>) -> Result<Vec<Entry>, String> {
        let list = self.status(hashes, &KEYS)?;
        Ok(list.into_iter().map(|(h, t)| entry(h, &t, &self.state_dir)).collect())
    }

    fn leechers(&self, hashes: Option<&[InfoHash]>) -> Result<HashMap<InfoHash, u32>, String> {
        let list = self.status(hashes, &["num_peers"])?;
        let count =
            |(h, t): (InfoHash, Value)| Some((h, u32::try_from(t.get("num_peers")?.as_u64()?).unwrap_or(u32::MAX)));
        Ok(list.into_iter().filter_map(count).collect())
    }
}

/// An [`Entry`] from one torrent's status; its `.torrent` is deluged's copy in `state_dir`.
fn entry(hash: InfoHash, t: &Value, state_dir: &std::path::Path) -> Entry {
    let uint = |k: &str| t.get(k).and_then(Value::as_u64);
    let text = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or_default();
    let progress = t.get("progress").and_then(Value::as_f64).unwrap_or(0.0);
    // Seeding, or queued to (complete); not paused, checking or in error.
    let seeding = progress >= 100.0 && matches!(text("state"), "Seeding" | "Queued");
    let count = |k: &str| t.get(k).and_then(Value::as_i64).and_then(|n| u32::try_from(n).ok());
    let trackers = t.get("trackers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let (seeds, peers) = (uint("num_seeds"), uint("num_peers"));
    Entry {
        hash,
        name: text("name").to_string(),
        size: uint("total_size").unwrap_or(0),
        seeding,
        groups: Some(text("label")).filter(|l| !l.is_empty()).map(str::to_string).into_iter().collect(),
        trackers: trackers.iter().filter_map(|t| Some(t.get("url")?.as_str()?.to_string())).collect(),
        file: Some(state_dir.join(format!("{hash}.torrent"))),
        peers_connected: seeds.zip(peers).map(|(s, p)| s.saturating_add(p)),
        leechers: peers,
        tracker_counts: count("total_seeds").zip(count("total_peers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_from_get_torrents_status() {
        let hash = InfoHash::from_bytes([0xdd; 20]);
        let t = |state: &str, progress: f64, total_seeds: i64| {
            entry(
                hash,
                &json!({"name": "payload.bin", "total_size": 7, "progress": progress, "state": state,
                        "num_seeds": 1, "num_peers": 4, "total_seeds": total_seeds, "total_peers": 6,
                        "label": "pub", "trackers": [{"url": "http://t/announce", "tier": 0}]}),
                std::path::Path::new("/s"),
            )
        };
        let e = t("Seeding", 100.0, 2);
        assert_eq!(
            (e.name.as_str(), e.size, e.seeding, e.groups.as_slice()),
            ("payload.bin", 7, true, &["pub".to_string()][..])
        );
        assert_eq!(e.trackers, ["http://t/announce"]);
        assert_eq!(e.file, Some(PathBuf::from(format!("/s/{hash}.torrent"))));
        assert_eq!((e.peers_connected, e.leechers, e.tracker_counts), (Some(5), Some(4), Some((2, 6))));
        assert_eq!(t("Seeding", 100.0, -1).tracker_counts, None, "no tracker has answered");
        assert!(t("Queued", 100.0, 2).seeding);
        for (state, progress) in [("Paused", 100.0), ("Downloading", 50.0), ("Checking", 100.0), ("Error", 100.0)] {
            assert!(!t(state, progress, 2).seeding, "{state}");
        }
        let bare = entry(hash, &json!({}), std::path::Path::new("/s"));
        assert_eq!((bare.groups.len(), bare.peers_connected, bare.seeding), (0, None, false));
    }
}
