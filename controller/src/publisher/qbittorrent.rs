//! The publisher's qBittorrent, over its WebUI API v2 (qBittorrent 4.1 and later).
//!
//! - `torrents/info`: the torrents. `num_seeds` and `num_leechs` are the peers connected now,
//!   complete or not (libtorrent's `num_seeds`, and `num_peers - num_seeds`: half-open connections
//!   do not count); `num_complete` and `num_incomplete` are what its trackers last said, used only
//!   while it has a working tracker (`tracker` set), since it reports 0 before any answer.
//! - `torrents/trackers`: a torrent's announce URLs (DHT, PeX and LSD rows left out), asked once
//!   per torrent and again when its `trackers_count` changes.
//! - `torrents/export`: its copy of a torrent (qBittorrent 4.5 and later), for a torrent found by
//!   name or from the catalogue.
//!
//! Sign-in is `auth/login`, whose session cookie (`SID`, or `QBT_SID_<port>` from 5.2) goes with
//! every call. Without a username odseed signs in to nothing, for a qBittorrent that lets clients
//! on localhost skip authentication. A session that expired (403) is renewed once per call. No
//! `Origin` or `Referer` is sent, so its CSRF check has nothing to refuse.

use super::http::{self, MAX_ANSWER_BYTES};
use super::{Entry, Publisher};
use odseed_proto::transmission::http1;
use odseed_proto::InfoHash;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::MAX_TORRENT_BYTES;
/// How long a ban is waited out before odseed asks again.
const RETRY_BANNED: Duration = Duration::from_secs(600);
/// At most this many torrents' trackers are asked for in one listing (the rest next time).
const TRACKER_LOOKUPS_PER_LIST: usize = 50;

/// Why a sign-in failed.
enum SignIn {
    /// A wrong username or password.
    Credentials(String),
    /// The address is banned (403).
    Banned(String),
    /// Down, or not qBittorrent: tried again at the next call.
    Other(String),
}

/// A refusal remembered.
enum Refusal {
    Credentials(String),
    Banned(Instant, String),
}

pub struct Qbittorrent {
    /// The WebUI's root, without a trailing `/`.
    base: String,
    credentials: Option<(String, String)>,
    /// The session cookie, `name=value`.
    session: Mutex<Option<String>>,
    /// A refused sign-in: not tried again (see [`Qbittorrent::login`]), since qBittorrent bans an
    /// address after 5 failures (for an hour by default), the user's own browser included.
    refused: Mutex<Option<Refusal>>,
    /// Per torrent: its `trackers_count` when asked, and its announce URLs.
    trackers: Mutex<HashMap<InfoHash, (u64, Vec<String>)>>,
}

/// What a GET came back with.
enum Got {
    Body(http1::Response),
    NotFound,
}

impl Qbittorrent {
    pub fn new(url: &str, credentials: Option<(&str, &str)>) -> Qbittorrent {
        Qbittorrent {
            base: url.trim_end_matches('/').to_string(),
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            session: Mutex::new(None),
            refused: Mutex::new(None),
            trackers: Mutex::new(HashMap::new()),
        }
    }

    /// Signs in; keeps the session cookie. A wrong username or password is not tried again by
    /// this process (qBittorrent bans an address after 5 failures, and its count of them only
    /// resets at a good login or the ban's end); a ban is waited out for [`RETRY_BANNED`].
    fn login(&self) -> Result<(), String> {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match refused.as_ref() {
            Some(Refusal::Credentials(why)) => {
                return Err(format!("{why}; not tried again until odseed restarts (qBittorrent bans after 5)"))
            }
            Some(Refusal::Banned(at, why)) if at.elapsed() < RETRY_BANNED => {
                let left = RETRY_BANNED.saturating_sub(at.elapsed()).as_secs();
                return Err(format!("{why} (not asked again for {left} s)"));
            }
            _ => {}
        }
        let (result, refusal) = match self.sign_in() {
            Ok(()) => (Ok(()), None),
            Err(SignIn::Credentials(why)) => (Err(why.clone()), Some(Refusal::Credentials(why))),
            Err(SignIn::Banned(why)) => (Err(why.clone()), Some(Refusal::Banned(Instant::now(), why))),
            Err(SignIn::Other(why)) => (Err(why), None),
        };
        *refused = refusal;
        result
    }

    fn sign_in(&self) -> Result<(), SignIn> {
        let Some((user, password)) = &self.credentials else { return Ok(()) };
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("username", user)
            .append_pair("password", password)
            .finish();
        let url = format!("{}/api/v2/auth/login", self.base);
        let headers = [("Content-Type", "application/x-www-form-urlencoded")];
        let resp =
            http::send(&self.name(), "POST", &url, &headers, body.as_bytes(), 64 << 10).map_err(SignIn::Other)?;
        let text = String::from_utf8_lossy(&resp.body);
        let wrong = || SignIn::Credentials(format!("{} refused the username/password of [client]", self.name()));
        // 4.x to 5.1: 200 "Ok." or "Fails."; 5.2 and later: 204, or 401 for a wrong password.
        match resp.status {
            200 if text.trim() == "Fails." => return Err(wrong()),
            401 => return Err(wrong()),
            403 => {
                return Err(SignIn::Banned(format!(
                    "{} refuses to sign odseed in (403): it bans an address for a while after too many \
                     failed logins",
                    self.name()
                )))
            }
            s if !(200..300).contains(&s) => {
                return Err(SignIn::Other(format!("{} answered HTTP {s} to auth/login", self.name())))
            }
            _ => {}
        }
        let cookie = resp.cookie(|n| n == "SID" || n.starts_with("QBT_SID"));
        // "Ok." (or 204) with a cookie; a qBittorrent that skips authentication for this address
        // signs in without one, and needs none.
        if cookie.is_none() && !(text.trim() == "Ok." || resp.status == 204) {
            return Err(SignIn::Other(format!(
                "{} did not sign odseed in: it answered \"{}\" (is this qBittorrent's WebUI?)",
                self.name(),
                odseed_proto::printable::printable_line(&text, 60)
            )));
        }
        // Signed in: the cookie, or none needed (an empty one, not sent).
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(cookie.unwrap_or_default());
        Ok(())
    }

    /// GETs `path` (under `/api/v2/`), signing in first if there is no session, and once more if
    /// the session has expired.
    fn get(&self, path: &str, max: u64) -> Result<Got, String> {
        let url = format!("{}/api/v2/{path}", self.base);
        let mut signed_in = false;
        loop {
            let cookie = self.session.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if cookie.is_none() && self.credentials.is_some() && !signed_in {
                self.login()?;
                signed_in = true;
                continue;
            }
            let headers: Vec<(&str, &str)> =
                cookie.iter().filter(|c| !c.is_empty()).map(|c| ("Cookie", c.as_str())).collect();
            let resp = http::send(&self.name(), "GET", &url, &headers, b"", max)?;
            match resp.status {
                200 => return Ok(Got::Body(resp)),
                404 => return Ok(Got::NotFound),
                403 if self.credentials.is_some() && !signed_in => {
                    *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    self.login()?;
                    signed_in = true;
                }
                403 if self.credentials.is_none() => {
                    return Err(format!(
                        "{} refused odseed (403): give [client] a username and password_file, or let \
                         qBittorrent skip authentication for clients on localhost",
                        self.name()
                    ))
                }
                403 => return Err(format!("{} refused odseed's session just after signing in (403)", self.name())),
                s => return Err(format!("{} answered HTTP {s} to {}", self.name(), path_only(path))),
            }
        }
    }

    /// `torrents/info`, for `hashes` if given.
    fn info(&self, hashes: Option<&[InfoHash]>) -> Result<Vec<Value>, String> {
        let path = match hashes {
            Some(h) => {
                let list = h.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("|");
                format!("torrents/info?hashes={}", form_urlencoded::byte_serialize(list.as_bytes()).collect::<String>())
            }
            None => "torrents/info".to_string(),
        };
        let Got::Body(resp) = self.get(&path, MAX_ANSWER_BYTES)? else {
            return Err(format!("{} has no torrents/info: is this qBittorrent's WebUI?", self.name()));
        };
        match http::json(&self.name(), "torrents/info", &resp)? {
            Value::Array(list) => Ok(list),
            _ => Err(format!("{} answered torrents/info with JSON that is not a list", self.name())),
        }
    }

    /// A torrent's announce URLs, from the cache while its `trackers_count` is the same.
    /// At most `budget` of them are asked in one listing; the others get the tracker it works
    /// with, if any, until a later listing asks.
    fn announce_urls(&self, hash: &InfoHash, count: u64, current: &str, budget: &mut usize) -> Vec<String> {
        if let Some((n, urls)) = self.trackers.lock().unwrap_or_else(|e| e.into_inner()).get(hash) {
            if *n == count {
                return urls.clone();
            }
        }
        let fallback = || (!current.is_empty()).then(|| current.to_string()).into_iter().collect();
        if *budget == 0 {
            return fallback();
        }
        *budget -= 1;
        let asked = self.get(&format!("torrents/trackers?hash={hash}"), 1 << 20).and_then(|got| match got {
            Got::Body(resp) => http::json(&self.name(), "torrents/trackers", &resp),
            Got::NotFound => Err("gone".into()),
        });
        let urls: Vec<String> = match asked {
            Ok(Value::Array(rows)) => rows
                .iter()
                .filter_map(|r| r.get("url")?.as_str())
                .filter(|u| u.contains("://"))
                .map(str::to_string)
                .collect(),
            // No answer this time: the tracker it works with, if any, and again next time.
            _ => return fallback(),
        };
        self.trackers.lock().unwrap_or_else(|e| e.into_inner()).insert(*hash, (count, urls.clone()));
        urls
    }
}

/// The path of `path_and_query`, for a message.
fn path_only(p: &str) -> &str {
    p.split('?').next().unwrap_or(p)
}

impl Publisher for Qbittorrent {
    fn name(&self) -> String {
        format!("qBittorrent at {}", crate::ec2::credentials::redacted(&self.base))
    }

    fn entries(&self, hashes: Option<&[InfoHash]>) -> Result<Vec<Entry>, String> {
        let list = self.info(hashes)?;
        let mut entries = Vec::with_capacity(list.len());
        let mut budget = TRACKER_LOOKUPS_PER_LIST;
        for t in &list {
            let Some(mut e) = entry(t) else { continue };
            let current = t.get("tracker").and_then(Value::as_str).unwrap_or_default();
            // Its trackers are asked for only where they are used: the torrents seeded (the
            // catalogue) and those asked for by hash.
            e.trackers = if e.seeding || hashes.is_some() {
                let count = t.get("trackers_count").and_then(Value::as_u64).unwrap_or(0);
                self.announce_urls(&e.hash, count, current, &mut budget)
            } else {
                (!current.is_empty()).then(|| current.to_string()).into_iter().collect()
            };
            entries.push(e);
        }
        let known: std::collections::HashSet<InfoHash> = entries.iter().map(|e| e.hash).collect();
        if hashes.is_none() {
            self.trackers.lock().unwrap_or_else(|e| e.into_inner()).retain(|h, _| known.contains(h));
        }
        Ok(entries)
    }

    fn leechers(&self, hashes: Option<&[InfoHash]>) -> Result<HashMap<InfoHash, u32>, String> {
        let list = self.info(hashes)?;
        let count = |t: &Value| {
            let hash = InfoHash::from_hex_any_case(t.get("hash")?.as_str()?).ok()?;
            Some((hash, u32::try_from(t.get("num_leechs")?.as_u64()?).unwrap_or(u32::MAX)))
        };
        Ok(list.iter().filter_map(count).collect())
    }

    fn torrent(&self, hash: &InfoHash, _file: Option<&Path>) -> Result<Vec<u8>, String> {
        match self.get(&format!("torrents/export?hash={hash}"), MAX_TORRENT_BYTES)? {
            Got::Body(resp) => Ok(resp.body),
            Got::NotFound => Err(format!(
                "{} has no torrent {hash} to export (torrents/export needs qBittorrent 4.5 or later)",
                self.name()
            )),
        }
    }
}

/// An [`Entry`] from one row of `torrents/info` (its trackers are filled in after).
fn entry(t: &Value) -> Option<Entry> {
    let hash = InfoHash::from_hex_any_case(t.get("hash")?.as_str()?).ok()?;
    let uint = |k: &str| t.get(k).and_then(Value::as_u64);
    let text = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or_default();
    let progress = t.get("progress").and_then(Value::as_f64).unwrap_or(0.0);
    // Seeding or queued to; not paused (4.x), stopped (5.x), checking or in error.
    let seeding = progress >= 1.0 && matches!(text("state"), "uploading" | "stalledUP" | "queuedUP" | "forcedUP");
    let mut groups: Vec<String> =
        Some(text("category")).filter(|c| !c.is_empty()).map(str::to_string).into_iter().collect();
    groups.extend(text("tags").split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string));
    let (seeds, leechs) = (uint("num_seeds"), uint("num_leechs"));
    let count = |k: &str| t.get(k).and_then(Value::as_i64).and_then(|n| u32::try_from(n).ok());
    let tracker_counts = match (text("tracker").is_empty(), count("num_complete"), count("num_incomplete")) {
        (false, Some(s), Some(l)) => Some((s, l)),
        _ => None,
    };
    Some(Entry {
        hash,
        name: text("name").to_string(),
        size: uint("total_size").or_else(|| uint("size")).unwrap_or(0),
        seeding,
        groups,
        trackers: Vec::new(),
        file: None,
        peers_connected: seeds.zip(leechs).map(|(s, l)| s.saturating_add(l)),
        leechers: leechs,
        tracker_counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_from_torrents_info() {
        let row = |state: &str, progress: f64, tracker: &str| {
            json!({"hash": "DDC8B56DF1A23353ADAF01D4E1682E31A124ADAE", "name": "payload.bin", "size": 5,
                   "total_size": 7, "progress": progress, "state": state, "category": "pub",
                   "tags": "odseed, x", "num_seeds": 2, "num_leechs": 3, "num_complete": 9,
                   "num_incomplete": 11, "tracker": tracker, "trackers_count": 1})
        };
        let e = entry(&row("stalledUP", 1.0, "http://t/announce")).unwrap();
        assert_eq!(e.hash.to_string(), "ddc8b56df1a23353adaf01d4e1682e31a124adae");
        assert_eq!((e.name.as_str(), e.size, e.seeding), ("payload.bin", 7, true));
        assert_eq!(e.groups, ["pub", "odseed", "x"]);
        assert_eq!((e.peers_connected, e.leechers, e.tracker_counts), (Some(5), Some(3), Some((9, 11))));
        assert_eq!(entry(&row("stalledUP", 1.0, "")).unwrap().tracker_counts, None, "no tracker has answered");
        for (state, progress) in [("pausedUP", 1.0), ("stoppedUP", 1.0), ("downloading", 0.5), ("checkingUP", 1.0)] {
            assert!(!entry(&row(state, progress, "")).unwrap().seeding, "{state}");
        }
        assert!(entry(&row("queuedUP", 1.0, "")).unwrap().seeding);
        assert!(entry(&json!({"hash": "nothex"})).is_none());
        let bare = entry(&json!({"hash": "DDC8B56DF1A23353ADAF01D4E1682E31A124ADAE"})).unwrap();
        assert_eq!((bare.groups.len(), bare.peers_connected, bare.seeding), (0, None, false));
    }
}
