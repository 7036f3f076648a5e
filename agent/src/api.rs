//! The agent's HTTP API v1: routes -> handlers, auth, input checks, and the one place where errors
//! become statuses. Every route but `/v1/health` needs `Authorization: Bearer <token>`.

use crate::config::Config;
use crate::daemon::Supervisor;
use crate::http::{Body, BodyError, Handler, Request, Response};
use crate::inventory::{AdmitError, Inventory};
use crate::limits::MAX_KBPS;
use crate::metrics::{Metrics, Snapshot};
use crate::ratelog::RateLog;
use crate::state::{Bounds, Desired, InsertError};
use odseed_proto::fsutil::constant_time_eq;
use odseed_proto::infohash::InfoHash;
use odseed_proto::metainfo::{self, MetainfoError};
use odseed_proto::printable::Printable;
use odseed_proto::transmission::torrent::{Status, TorrentInfo, LOCAL_ERROR};
use odseed_proto::wire::{ErrorCode, Health, Limits, Torrent, TorrentState, Usage};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Fields asked of the daemon for each torrent.
const FIELDS: &[&str] =
    &["hashString", "status", "percentDone", "peersConnected", "rateUpload", "uploadedEver", "error", "errorString"];

/// Everything a handler needs.
pub struct Api {
    pub token: String,
    pub desired: Arc<Desired>,
    pub inventory: Arc<Inventory>,
    pub supervisor: Arc<Supervisor>,
    pub metrics: Metrics,
    pub max_torrent_bytes: u64,
    pub bounds: Bounds,
    pub data_dir: PathBuf,
    /// Refusals of requests without the token, logged at most once a minute (anyone can send them).
    pub unauthenticated: RateLog,
    /// Held while a large `.torrent` is read and parsed: one at a time, so that concurrent `PUT`s
    /// of large ones cost the memory of one.
    pub large_body: std::sync::Mutex<()>,
}

/// A `.torrent` larger than this is read while no other large one is (1 MiB: most are far smaller).
const LARGE_BODY: u64 = 1 << 20;

impl Api {
    pub fn new(
        token: String,
        desired: Arc<Desired>,
        inventory: Arc<Inventory>,
        supervisor: Arc<Supervisor>,
        cfg: &Config,
    ) -> Api {
        Api {
            token,
            desired,
            inventory,
            supervisor,
            metrics: Metrics::default(),
            max_torrent_bytes: cfg.max_torrent_bytes,
            bounds: Bounds { max_torrents: cfg.max_torrents, max_total_bytes: cfg.max_total_torrent_bytes },
            data_dir: cfg.data_dir.clone(),
            unauthenticated: RateLog::new(Duration::from_secs(60)),
            large_body: std::sync::Mutex::new(()),
        }
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

type Result<T> = std::result::Result<T, ApiError>;

/// Requests the API answers, as the routes see them (HEAD is GET without the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Put,
    Delete,
    Other,
}

impl Handler for Api {
    /// Answers one request; never panics on any input.
    fn handle(&self, req: &Request, body: &mut Body<'_>) -> Response {
        let authorized = self.authorized(req);
        let (resp, failure) = match self.route(req, authorized, body) {
            Ok(r) => (r, None),
            Err(e) => {
                let resp = Response { allow: e.allow, ..Response::error(e.code, &e.message) };
                (resp, Some(e))
            }
        };
        self.metrics.count(resp.status);
        let (method, target, peer) = (Printable(&req.head.method), Printable(&req.head.target), req.peer);
        match failure {
            Some(e) if !authorized => {
                if let Some(n) = self.unauthenticated.hit() {
                    let (status, code, msg) = (e.code.status(), e.code, &e.message);
                    log::warn!("api: {method} {target} from {peer}: {status} {code}: {msg} (unauthenticated; {n} in the last minute)");
                }
                // A client without the token gets no kept-alive connection to hold.
                Response { close: true, ..resp }
            }
            Some(e) => {
                let level = if e.code.status() >= 500 { log::Level::Error } else { log::Level::Warn };
                log::log!(level, "api: {method} {target} from {peer}: {} {}: {}", e.code.status(), e.code, e.message);
                resp
            }
            None => {
                log::debug!("api: {method} {target} from {peer}: {}", resp.status);
                resp
            }
        }
    }

    fn refused(&self, peer: SocketAddr, code: ErrorCode, message: &str) -> Response {
        self.metrics.count(code.status());
        if let Some(n) = self.unauthenticated.hit() {
            log::warn!(
                "api: request from {peer} refused: {} {code}: {message} ({n} in the last minute)",
                code.status()
            );
        }
        Response { close: true, ..Response::error(code, message) }
    }

    fn tick(&self) {
        if let Some(n) = self.unauthenticated.due() {
            log::warn!("api: {n} more request(s) without the token refused in the last minute");
        }
    }
}

impl Api {
    fn route(&self, req: &Request, authorized: bool, body: &mut Body<'_>) -> Result<Response> {
        let path = req.head.path();
        let method = match req.head.method.as_str() {
            "GET" | "HEAD" => Method::Get,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        };
        if path == "/v1/health" {
            return match method {
                Method::Get => Ok(Response::json(200, &self.health())),
                _ => Err(method_not_allowed("GET, HEAD")),
            };
        }
        if !authorized {
            return Err(match req.head.authorization {
                None => err(ErrorCode::Unauthorized, "missing `Authorization: Bearer <token>`"),
                Some(_) => err(ErrorCode::Unauthorized, "wrong token"),
            });
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (parts.as_slice(), method) {
            (["metrics"], Method::Get) => Ok(self.metrics_text()),
            (["metrics"], _) => Err(method_not_allowed("GET, HEAD")),
            (["v1", "limits"], Method::Get) => Ok(Response::json(200, &self.supervisor.limits())),
            (["v1", "limits"], Method::Put) => self.set_limits(body),
            (["v1", "limits"], _) => Err(method_not_allowed("GET, HEAD, PUT")),
            (["v1", "content"], Method::Get) => Ok(Response::json(200, &self.inventory.list())),
            (["v1", "content"], _) => Err(method_not_allowed("GET, HEAD")),
            (["v1", "usage"], Method::Get) => Ok(Response::json(200, &self.usage())),
            (["v1", "usage"], _) => Err(method_not_allowed("GET, HEAD")),
            (["v1", "torrents"], Method::Get) => Ok(Response::json(200, &self.torrents(None))),
            (["v1", "torrents"], _) => Err(method_not_allowed("GET, HEAD")),
            (["v1", "torrents", hash], m) if !hash.is_empty() => {
                if m == Method::Other {
                    return Err(method_not_allowed("GET, HEAD, PUT, DELETE"));
                }
                let hash = InfoHash::from_hex(hash).map_err(|e| err(ErrorCode::BadInfoHash, e.to_string()))?;
                match m {
                    Method::Put => self.put(body, hash),
                    Method::Delete => self.delete(hash),
                    _ => self
                        .torrents(Some(hash))
                        .pop()
                        .map(|t| Response::json(200, &t))
                        .ok_or_else(|| not_seeded(&hash)),
                }
            }
            _ => Err(err(ErrorCode::NotFound, format!("no route \"{}\"", Printable(path)))),
        }
    }

    fn authorized(&self, req: &Request) -> bool {
        let given = req.head.authorization.as_deref().unwrap_or_default();
        let token = given.strip_prefix(b"Bearer ").unwrap_or_default().trim_ascii();
        constant_time_eq(token, self.token.as_bytes())
    }

    /// `PUT /v1/limits`: `{"upload_kbps": N, "download_kbps": M}`, a body of at most 1 KiB.
    fn set_limits(&self, body: &mut Body<'_>) -> Result<Response> {
        const MAX: u64 = 1024;
        let body = body.read(MAX).map_err(|e| match e {
            BodyError::TooLarge { declared } => {
                err(ErrorCode::TooLarge, format!("limits are at most {MAX} bytes of JSON; this is {declared}"))
            }
            BodyError::Timeout => err(ErrorCode::Timeout, "the body came too slowly"),
            BodyError::Broken => err(ErrorCode::BadBody, "the connection broke while the body was read"),
        })?;
        let l: Limits = serde_json::from_slice(&body).map_err(|e| {
            err(ErrorCode::BadBody, format!("limits must be {{\"upload_kbps\": N, \"download_kbps\": M}}: {e}"))
        })?;
        for (key, v) in [("upload_kbps", l.upload_kbps), ("download_kbps", l.download_kbps)] {
            if v > MAX_KBPS {
                return Err(err(ErrorCode::BadBody, format!("{key} is at most {MAX_KBPS} (0: no cap), got {v}")));
            }
        }
        self.supervisor.set_limits(l).map_err(|e| err(ErrorCode::StateWrite, e))?;
        Ok(Response::json(200, &l))
    }

    fn usage(&self) -> Usage {
        Usage { uploaded_bytes: self.supervisor.uploaded_total(), sent_bytes: self.supervisor.sent_total() }
    }

    fn health(&self) -> Health {
        Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            daemon: self.supervisor.state(),
            torrents: self.desired.len(),
            daemon_version: self.supervisor.version().map(|v| v.text),
        }
    }

    fn put(&self, body: &mut Body<'_>, hash: InfoHash) -> Result<Response> {
        let max = self.max_torrent_bytes;
        let body_error = |e| match e {
            BodyError::TooLarge { declared } => {
                err(ErrorCode::TooLarge, format!("a .torrent may be at most {max} bytes; this one is {declared}"))
            }
            BodyError::Timeout => err(ErrorCode::Timeout, "the body came too slowly"),
            BodyError::Broken => err(ErrorCode::BadBody, "the connection broke while the body was read"),
        };
        // No room: the body is dropped as it comes, never held.
        if let Err(e) = self.desired.has_room(&hash, body.declared(), self.bounds) {
            body.discard(max).map_err(body_error)?;
            return Err(err(ErrorCode::TooManyTorrents, e.to_string()));
        }
        let _one_at_a_time =
            (body.declared() > LARGE_BODY).then(|| self.large_body.lock().unwrap_or_else(|e| e.into_inner()));
        let body = body.read(max).map_err(body_error)?;
        let meta = metainfo::parse(&body).map_err(|e| match e {
            MetainfoError::UnsafePath(_) => err(ErrorCode::UnsafePath, e.to_string()),
            MetainfoError::Unsupported(_) => err(ErrorCode::UnsupportedTorrent, e.to_string()),
            _ => err(ErrorCode::BadTorrent, e.to_string()),
        })?;
        if let Some(v) = self.supervisor.version().filter(|v| meta.hybrid && !v.opens_hybrid()) {
            return Err(err(
                ErrorCode::UnsupportedTorrent,
                format!(
                    "a hybrid v1+v2 torrent (BEP 52): transmission-daemon {} here cannot open it (4.0 and later can)",
                    v.text
                ),
            ));
        }
        if meta.info_hash != hash {
            return Err(err(
                ErrorCode::HashMismatch,
                format!("the body's info hash is {}, the path's {hash}", meta.info_hash),
            ));
        }
        crate::content::check_paths(&self.data_dir, &meta).map_err(|e| err(ErrorCode::UnsafePath, e))?;
        let new = self.inventory.admit(&meta, &body, self.bounds).map_err(|e| match e {
            AdmitError::NoSpace(m) => err(ErrorCode::NoSpace, format!("cannot seed {hash}: {m}")),
            AdmitError::Insert(InsertError::Full(m)) => err(ErrorCode::TooManyTorrents, m),
            AdmitError::Insert(e @ InsertError::Overlap { .. }) => {
                err(ErrorCode::FilesOverlap, format!("cannot seed {hash}: {e}"))
            }
            AdmitError::Insert(InsertError::Io(e)) => err(ErrorCode::StateWrite, format!("cannot record {hash}: {e}")),
        })?;
        if new {
            log::info!("api: asked to seed {hash} ({:?})", meta.name);
            self.supervisor.notify();
        }
        let torrent = self.torrents(Some(hash)).pop().ok_or_else(|| not_seeded(&hash))?;
        Ok(Response::json(if new { 201 } else { 200 }, &torrent))
    }

    fn delete(&self, hash: InfoHash) -> Result<Response> {
        match self.inventory.release(&hash) {
            Ok(true) => {
                log::info!("api: asked to stop seeding {hash}");
                self.supervisor.notify();
                Ok(Response::new(204, "", Vec::new()))
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

    fn metrics_text(&self) -> Response {
        let torrents = self.torrents(None);
        let snapshot = Snapshot {
            torrents: &torrents,
            daemon: self.supervisor.state(),
            restarts: self.supervisor.restarts(),
            uploaded_total: self.supervisor.uploaded_total(),
            sent_total: self.supervisor.sent_total(),
        };
        let body = self.metrics.render(&snapshot).into_bytes();
        Response::new(200, "text/plain; version=0.0.4", body)
    }
}

fn not_seeded(hash: &InfoHash) -> ApiError {
    err(ErrorCode::NotFound, format!("{hash} is not seeded here"))
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
