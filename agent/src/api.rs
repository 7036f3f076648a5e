//! The agent's HTTP API v1: routes -> handlers, auth, input checks, and the one place where errors
//! become statuses. Every route but `/v1/health` needs `Authorization: Bearer <token>`.

use crate::daemon::Supervisor;
use crate::metrics::{Metrics, Snapshot};
use crate::state::Desired;
use odseed_proto::fsutil::constant_time_eq;
use odseed_proto::infohash::InfoHash;
use odseed_proto::metainfo::{self, MetainfoError};
use odseed_proto::transmission::torrent::{Status, TorrentInfo, LOCAL_ERROR};
use odseed_proto::wire::{ErrorBody, ErrorCode, Health, Torrent, TorrentState};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use tiny_http::{Header, Method, Request, Response};

/// Declared request bodies above this are refused without being read (see [`Api::serve`]).
pub const ABANDON_ABOVE: u64 = 64 << 20;

/// Fields asked of the daemon for each torrent.
const FIELDS: &[&str] =
    &["hashString", "status", "percentDone", "peersConnected", "rateUpload", "uploadedEver", "error", "errorString"];

/// Everything a handler needs.
pub struct Api {
    pub token: String,
    pub desired: Arc<Desired>,
    pub supervisor: Arc<Supervisor>,
    pub metrics: Metrics,
    pub max_torrent_bytes: u64,
    pub leaked: std::sync::atomic::AtomicU64,
}

/// An answer before it is written.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: Option<&'static str>,
}

impl Reply {
    fn into_response(self) -> Response<std::io::Cursor<Vec<u8>>> {
        let mut resp = Response::from_data(self.body).with_status_code(self.status);
        if self.status != 204 {
            resp.add_header(header("Content-Type", self.content_type));
        }
        if let Some(allow) = self.allow {
            resp.add_header(header("Allow", allow));
        }
        resp
    }
}

/// A refusal: machine code (which gives the HTTP status) and a message for a person.
#[derive(Debug)]
struct ApiError {
    code: ErrorCode,
    message: String,
    allow: Option<&'static str>,
}

fn err(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError { code, message: message.into(), allow: None }
}

fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError { allow: Some(allow), ..err(ErrorCode::MethodNotAllowed, format!("this route allows {allow}")) }
}

fn json(status: u16, v: &impl serde::Serialize) -> Reply {
    // Serialising our own plain structs cannot fail.
    let body = serde_json::to_vec(v).unwrap_or_default();
    Reply { status, content_type: "application/json", body, allow: None }
}

type Result<T> = std::result::Result<T, ApiError>;

impl Api {
    /// Answers one request; never panics on any input.
    ///
    /// A request that declares a body over [`ABANDON_ABOVE`] is answered 413 and then never dropped:
    /// tiny_http 0.12 discards an unread body on drop with `vec![0; Content-Length]`, which aborts the
    /// process for a huge declared length. The leak is a thread and a socket of tiny_http's;
    /// [`Api::leaked`] counts them so the agent can restart cleanly (state is on disk) before they
    /// add up. Smaller bodies over `max_torrent_bytes` get an ordinary 413 (the discard is bounded).
    pub fn serve(&self, mut req: Request) {
        if self.must_abandon(&req) {
            return self.refuse_oversized(req);
        }
        let (reply, failure) = match self.route(&mut req) {
            Ok(r) => (r, None),
            Err(e) => {
                let body = ErrorBody { error: e.code, message: e.message.clone() };
                (Reply { allow: e.allow, ..json(e.code.status(), &body) }, Some(e))
            }
        };
        self.metrics.count(reply.status);
        let who = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        match failure {
            Some(e) => {
                let level = if e.code.status() >= 500 { log::Level::Error } else { log::Level::Warn };
                let (method, url, status) = (req.method(), req.url(), e.code.status());
                log::log!(level, "api: {method} {url} from {who}: {status} {}: {}", e.code, e.message)
            }
            None => log::debug!("api: {} {} from {who}: {}", req.method(), req.url(), reply.status),
        }
        if let Err(e) = req.respond(reply.into_response()) {
            log::debug!("api: could not send the answer to {who}: {e}");
        }
    }

    /// True for a request whose declared body is too large to let tiny_http discard it.
    pub fn must_abandon(&self, req: &Request) -> bool {
        req.body_length().is_some_and(|n| n as u64 > ABANDON_ABOVE.max(self.max_torrent_bytes))
    }

    fn refuse_oversized(&self, req: Request) {
        let e = err(ErrorCode::TooLarge, format!("a .torrent may be at most {} bytes", self.max_torrent_bytes));
        log::warn!(
            "api: {} {} from {}: 413 too_large: declared {} bytes; connection abandoned",
            req.method(),
            req.url(),
            req.remote_addr().map(|a| a.to_string()).unwrap_or_default(),
            req.body_length().unwrap_or(0)
        );
        self.metrics.count(413);
        let reply = json(e.code.status(), &ErrorBody { error: e.code, message: e.message });
        let stream = req.upgrade("close", reply.into_response());
        std::mem::forget(stream);
        self.leaked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Oversized requests abandoned so far (see [`Api::serve`]).
    pub fn leaked(&self) -> u64 {
        self.leaked.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn route(&self, req: &mut Request) -> Result<Reply> {
        let path = req.url().split('?').next().unwrap_or_default().to_string();
        // HEAD is GET without the body (tiny_http leaves the body out).
        let method = match req.method() {
            Method::Head => Method::Get,
            m => m.clone(),
        };
        if path == "/v1/health" {
            return match method {
                Method::Get => Ok(json(200, &self.health())),
                _ => Err(method_not_allowed("GET, HEAD")),
            };
        }
        self.authorize(req)?;
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (parts.as_slice(), method) {
            (["metrics"], Method::Get) => Ok(self.metrics_text()),
            (["metrics"], _) => Err(method_not_allowed("GET, HEAD")),
            (["v1", "torrents"], Method::Get) => Ok(json(200, &self.torrents(None))),
            (["v1", "torrents"], _) => Err(method_not_allowed("GET, HEAD")),
            (["v1", "torrents", hash], m) if !hash.is_empty() => {
                if !matches!(m, Method::Get | Method::Put | Method::Delete) {
                    return Err(method_not_allowed("GET, HEAD, PUT, DELETE"));
                }
                let hash = InfoHash::from_hex(hash).map_err(|e| err(ErrorCode::BadInfoHash, e.to_string()))?;
                match m {
                    Method::Put => self.put(req, hash),
                    Method::Delete => self.delete(hash),
                    _ => self.torrents(Some(hash)).pop().map(|t| json(200, &t)).ok_or_else(|| not_seeded(&hash)),
                }
            }
            _ => Err(err(ErrorCode::NotFound, format!("no route {path:?}"))),
        }
    }

    fn authorize(&self, req: &Request) -> Result<()> {
        let given = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str());
        let token = given.and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
        if constant_time_eq(token.trim().as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else if given.is_none() {
            Err(err(ErrorCode::Unauthorized, "missing `Authorization: Bearer <token>`"))
        } else {
            Err(err(ErrorCode::Unauthorized, "wrong token"))
        }
    }

    fn health(&self) -> Health {
        Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            daemon: self.supervisor.state(),
            torrents: self.desired.len(),
        }
    }

    fn put(&self, req: &mut Request, hash: InfoHash) -> Result<Reply> {
        let max = self.max_torrent_bytes;
        let too_large = || err(ErrorCode::TooLarge, format!("a .torrent may be at most {max} bytes"));
        let mut body = Vec::new();
        req.as_reader()
            .take(max + 1)
            .read_to_end(&mut body)
            .map_err(|e| err(ErrorCode::BadBody, format!("cannot read the body: {e}")))?;
        if body.len() as u64 > max {
            return Err(too_large());
        }
        let meta = metainfo::parse(&body).map_err(|e| match e {
            MetainfoError::UnsafePath(_) => err(ErrorCode::UnsafePath, e.to_string()),
            _ => err(ErrorCode::BadTorrent, e.to_string()),
        })?;
        if meta.info_hash != hash {
            return Err(err(
                ErrorCode::HashMismatch,
                format!("the body's info hash is {}, the path's {hash}", meta.info_hash),
            ));
        }
        let new = self
            .desired
            .insert(&meta, &body)
            .map_err(|e| err(ErrorCode::StateWrite, format!("cannot record {hash}: {e}")))?;
        if new {
            log::info!("api: asked to seed {hash} ({:?})", meta.name);
            self.supervisor.notify();
        }
        let torrent = self.torrents(Some(hash)).pop().ok_or_else(|| not_seeded(&hash))?;
        Ok(json(if new { 201 } else { 200 }, &torrent))
    }

    fn delete(&self, hash: InfoHash) -> Result<Reply> {
        match self.desired.remove(&hash) {
            Ok(true) => {
                log::info!("api: asked to stop seeding {hash}");
                self.supervisor.notify();
                Ok(Reply { status: 204, content_type: "", body: Vec::new(), allow: None })
            }
            Ok(false) => Err(not_seeded(&hash)),
            Err(e) => Err(err(ErrorCode::StateWrite, format!("cannot forget {hash}: {e}"))),
        }
    }

    /// The sessions (all, or one), merged with what the daemon reports while it runs.
    fn torrents(&self, only: Option<InfoHash>) -> Vec<Torrent> {
        let entries = match only {
            Some(h) => self.desired.get(&h).map(|e| vec![(h, e)]).unwrap_or_default(),
            None => self.desired.snapshot(),
        };
        if entries.is_empty() {
            return Vec::new();
        }
        let hashes: Vec<InfoHash> = entries.iter().map(|(h, _)| *h).collect();
        let live: HashMap<InfoHash, TorrentInfo> =
            match self.supervisor.client().map(|c| c.torrent_get(Some(&hashes), FIELDS)) {
                Some(Ok(list)) => list.into_iter().filter_map(|t| t.hash().map(|h| (h, t))).collect(),
                Some(Err(e)) => {
                    log::warn!("api: cannot read the daemon's torrents: {e}");
                    HashMap::new()
                }
                None => HashMap::new(),
            };
        entries
            .into_iter()
            .map(|(h, e)| {
                let refused = self.supervisor.error_for(&h);
                to_torrent(h, e.name, live.get(&h), refused)
            })
            .collect()
    }

    fn metrics_text(&self) -> Reply {
        let torrents = self.torrents(None);
        let snapshot =
            Snapshot { torrents: &torrents, daemon: self.supervisor.state(), restarts: self.supervisor.restarts() };
        let body = self.metrics.render(&snapshot).into_bytes();
        Reply { status: 200, content_type: "text/plain; version=0.0.4", body, allow: None }
    }
}

fn not_seeded(hash: &InfoHash) -> ApiError {
    err(ErrorCode::NotFound, format!("{hash} is not seeded here"))
}

fn header(name: &str, value: &str) -> Header {
    // Names and values here are ASCII constants of ours, always valid.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|_| unreachable!("invalid header {name}"))
}

/// One session from the daemon's `torrent-get` entry (`None`: not in the daemon yet).
fn to_torrent(info_hash: InfoHash, name: String, live: Option<&TorrentInfo>, refused: Option<String>) -> Torrent {
    let state = match (refused.is_some(), live) {
        (true, _) => TorrentState::Error,
        (false, None) => TorrentState::Queued,
        (false, Some(t)) if t.error() == Some(LOCAL_ERROR) => TorrentState::Error,
        (false, Some(t)) => match t.status() {
            Some(Status::Stopped) => TorrentState::Stopped,
            Some(Status::Verifying) => TorrentState::Verifying,
            Some(Status::Downloading) => TorrentState::Downloading,
            Some(Status::Seeding) => TorrentState::Seeding,
            _ => TorrentState::Queued,
        },
    };
    let daemon_error = live.and_then(TorrentInfo::error_string).filter(|s| !s.is_empty());
    let num = |f: fn(&TorrentInfo) -> Option<u64>| live.and_then(f).unwrap_or(0);
    Torrent {
        info_hash,
        name,
        state,
        percent_done: live.and_then(TorrentInfo::percent_done).unwrap_or(0.0).clamp(0.0, 1.0),
        peers: num(TorrentInfo::peers_connected).min(u64::from(u32::MAX)) as u32,
        upload_bps: num(TorrentInfo::rate_upload),
        uploaded_bytes: num(TorrentInfo::uploaded_ever),
        error: refused.or(daemon_error.map(str::to_string)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn maps_daemon_states() {
        let h = InfoHash::from_bytes([0; 20]);
        let t = |v: Value| to_torrent(h, "n".into(), Some(&TorrentInfo::from_json(v)), None).state;
        assert_eq!(t(json!({"status": 6, "error": 0})), TorrentState::Seeding);
        assert_eq!(t(json!({"status": 2})), TorrentState::Verifying);
        assert_eq!(t(json!({"status": 4})), TorrentState::Downloading);
        assert_eq!(t(json!({"status": 0})), TorrentState::Stopped);
        assert_eq!(t(json!({"status": 6, "error": 2, "errorString": "tracker down"})), TorrentState::Seeding);
        assert_eq!(t(json!({"status": 0, "error": 3, "errorString": "No data found"})), TorrentState::Error);
        assert_eq!(to_torrent(h, "n".into(), None, None).state, TorrentState::Queued);
        let refused = to_torrent(h, "n".into(), None, Some("bad".into()));
        assert_eq!((refused.state, refused.error.as_deref()), (TorrentState::Error, Some("bad")));
    }
}
