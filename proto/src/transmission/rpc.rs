//! A blocking client for Transmission's RPC (rpc-spec, as Transmission 3.00 speaks it: camelCase and
//! dashed field names). Owns the `X-Transmission-Session-Id` handshake (409 -> retry once with the new
//! id) and Basic auth. Used by the agent for its own daemon and by the controller for the publisher's.

use super::http1;
use super::torrent::TorrentInfo;
use crate::infohash::InfoHash;
use base64::Engine;
use serde_json::{json, Value};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

const SESSION_HEADER: &str = "X-Transmission-Session-Id";
/// Answers larger than this are refused (a torrent-get of every field of thousands of torrents fits).
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// What went wrong talking to Transmission. Messages name the URL or the RPC method, never a password.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The HTTP exchange failed (refused, timed out, broken answer).
    Http { url: String, detail: String },
    /// Transmission refused the credentials (401).
    Unauthorized { url: String },
    /// An HTTP status other than 200/409/401.
    Status { url: String, status: u16 },
    /// The RPC answered, but with a `result` other than "success".
    Rpc { method: String, result: String },
    /// The answer was not the JSON the spec describes.
    BadAnswer { method: String, detail: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Http { url, detail } => write!(f, "Transmission RPC at {url}: {detail}"),
            Error::Unauthorized { url } => write!(f, "Transmission RPC at {url} refused the username/password (401)"),
            Error::Status { url, status } => write!(f, "Transmission RPC at {url} answered HTTP {status}"),
            Error::Rpc { method, result } => write!(f, "Transmission RPC {method} failed: {result}"),
            Error::BadAnswer { method, detail } => {
                write!(f, "Transmission RPC {method} gave a malformed answer: {detail}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The outcome of `torrent-add`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub info_hash: InfoHash,
    /// False when Transmission already had it (`torrent-duplicate`).
    pub new: bool,
}

/// A Transmission RPC endpoint.
pub struct Client {
    url: String,
    authorization: Option<String>,
    session_id: Mutex<Option<String>>,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `url` (e.g. `http://127.0.0.1:9091/transmission/rpc`), with Basic auth if given.
    pub fn new(url: &str, credentials: Option<(&str, &str)>, timeout: Duration) -> Client {
        let authorization = credentials.map(|(user, pass)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            format!("Basic {token}")
        });
        Client { url: url.to_string(), authorization, session_id: Mutex::new(None), timeout }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with `arguments` and returns the answer's `arguments`.
    pub fn call(&self, method: &str, arguments: Value) -> Result<Value, Error> {
        self.call_within(method, arguments, self.timeout)
    }

    fn call_within(&self, method: &str, arguments: Value, timeout: Duration) -> Result<Value, Error> {
        let body = json!({ "method": method, "arguments": arguments }).to_string();
        // One retry: the first call of a session (or after a daemon restart) gets 409 and the id.
        for _ in 0..2 {
            let session = self.session_id.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(id) = &session {
                headers.push((SESSION_HEADER, id));
            }
            if let Some(auth) = &self.authorization {
                headers.push(("Authorization", auth));
            }
            let resp = http1::request("POST", &self.url, &headers, body.as_bytes(), timeout, MAX_ANSWER_BYTES)
                .map_err(|e| Error::Http { url: self.url.clone(), detail: e.to_string() })?;
            match resp.status {
                409 => {
                    let id = resp.header(SESSION_HEADER).ok_or_else(|| bad(method, "409 without a session id"))?;
                    *self.session_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.to_string());
                    continue;
                }
                401 => return Err(Error::Unauthorized { url: self.url.clone() }),
                200 => return parse_answer(method, &String::from_utf8_lossy(&resp.body)),
                status => return Err(Error::Status { url: self.url.clone(), status }),
            }
        }
        Err(bad(method, "409 twice in a row"))
    }

    /// `session-get`: the daemon's settings (used as a readiness probe too).
    pub fn session_get(&self) -> Result<Value, Error> {
        self.call("session-get", json!({}))
    }

    /// `torrent-add` with the raw `.torrent` bytes, downloading to / seeding from `download_dir`.
    pub fn torrent_add(&self, metainfo: &[u8], download_dir: &str) -> Result<Added, Error> {
        let metainfo = base64::engine::general_purpose::STANDARD.encode(metainfo);
        self.add(json!({ "metainfo": metainfo, "download-dir": download_dir, "paused": false }))
    }

    /// `torrent-add` of a `.torrent` file the daemon reads itself (no copy of it in the request).
    pub fn torrent_add_file(&self, path: &str, download_dir: &str) -> Result<Added, Error> {
        self.add(json!({ "filename": path, "download-dir": download_dir, "paused": false }))
    }

    fn add(&self, arguments: Value) -> Result<Added, Error> {
        let args = self.call("torrent-add", arguments)?;
        let (entry, new) = match (args.get("torrent-added"), args.get("torrent-duplicate")) {
            (Some(t), _) => (t, true),
            (None, Some(t)) => (t, false),
            _ => return Err(bad("torrent-add", "neither torrent-added nor torrent-duplicate")),
        };
        let hash = entry.get("hashString").and_then(Value::as_str).unwrap_or_default();
        let info_hash = InfoHash::from_hex_any_case(hash).map_err(|e| bad("torrent-add", &e.to_string()))?;
        Ok(Added { info_hash, new })
    }

    /// `torrent-get` of `fields` (RPC names, e.g. `percentDone`) for `ids` (all torrents when
    /// `None`); in each entry, the fields not asked for are `None`.
    pub fn torrent_get(&self, ids: Option<&[InfoHash]>, fields: &[&str]) -> Result<Vec<TorrentInfo>, Error> {
        self.torrent_get_within(self.timeout, ids, fields)
    }

    /// [`Client::torrent_get`] with a timeout of its own (a liveness probe that reads something).
    pub fn torrent_get_within(
        &self,
        timeout: Duration,
        ids: Option<&[InfoHash]>,
        fields: &[&str],
    ) -> Result<Vec<TorrentInfo>, Error> {
        let mut args = json!({ "fields": fields });
        if let Some(ids) = ids {
            args["ids"] = json!(ids.iter().map(|h| h.to_string()).collect::<Vec<_>>());
        }
        match self.call_within("torrent-get", args, timeout)?.get_mut("torrents").map(Value::take) {
            Some(Value::Array(list)) => Ok(list.into_iter().map(TorrentInfo::from_json).collect()),
            _ => Err(bad("torrent-get", "no `torrents` list")),
        }
    }

    /// `torrent-verify`: re-check the data on disk against the piece hashes.
    pub fn torrent_verify(&self, ids: &[InfoHash]) -> Result<(), Error> {
        self.call_on("torrent-verify", ids, json!({}))
    }

    /// `torrent-start`: a torrent being verified starts when the verification is done.
    pub fn torrent_start(&self, ids: &[InfoHash]) -> Result<(), Error> {
        self.call_on("torrent-start", ids, json!({}))
    }

    /// `torrent-remove` keeping the data on disk.
    pub fn torrent_remove(&self, ids: &[InfoHash]) -> Result<(), Error> {
        self.call_on("torrent-remove", ids, json!({ "delete-local-data": false }))
    }

    /// A method whose arguments are `ids` (as hash strings) and `extra`, answered with no fields.
    fn call_on(&self, method: &str, ids: &[InfoHash], mut extra: Value) -> Result<(), Error> {
        let ids: Vec<String> = ids.iter().map(|h| h.to_string()).collect();
        extra["ids"] = json!(ids);
        self.call(method, extra).map(drop)
    }
}

fn bad(method: &str, detail: &str) -> Error {
    Error::BadAnswer { method: method.into(), detail: detail.into() }
}

/// An RPC answer's `arguments`, or the error its `result` says.
pub fn parse_answer(method: &str, text: &str) -> Result<Value, Error> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| bad(method, &e.to_string()))?;
    match v.get("result").and_then(Value::as_str) {
        Some("success") => Ok(v.get_mut("arguments").map(Value::take).unwrap_or(json!({}))),
        Some(other) => Err(Error::Rpc { method: method.into(), result: other.chars().take(200).collect() }),
        None => Err(bad(method, "no `result`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_answers() {
        assert_eq!(parse_answer("m", r#"{"result":"success","arguments":{"a":1}}"#).unwrap(), json!({"a":1}));
        assert_eq!(parse_answer("m", r#"{"result":"success"}"#).unwrap(), json!({}));
        let e = parse_answer("torrent-add", r#"{"result":"invalid or corrupt torrent file"}"#).unwrap_err();
        assert_eq!(e.to_string(), "Transmission RPC torrent-add failed: invalid or corrupt torrent file");
        assert!(matches!(parse_answer("m", "<html>"), Err(Error::BadAnswer { .. })));
        assert!(matches!(parse_answer("m", "{}"), Err(Error::BadAnswer { .. })));
    }

    #[test]
    fn refused_connection_names_the_url() {
        // Port 9 on loopback: nothing listens there in a test namespace or on a normal machine.
        let c = Client::new("http://127.0.0.1:9/transmission/rpc", Some(("u", "secret")), Duration::from_secs(2));
        let msg = c.session_get().unwrap_err().to_string();
        assert!(msg.contains("127.0.0.1:9") && !msg.contains("secret"), "{msg}");
    }
}
