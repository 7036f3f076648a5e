//! A blocking client of the agent HTTP API v1 (the controller's way to a helper; tests use it too).
//! Errors name the agent's URL and the API's error code; the token never appears in them.

use crate::infohash::InfoHash;
use crate::pinned::{HandshakeFailed, PinnedTls};
use crate::tls::Fingerprint;
use crate::wire::{Content, ErrorBody, ErrorCode, Health, Limits, Torrent, Usage};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Connector, TcpConnector};

/// Answers larger than this are refused.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// What went wrong asking an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No answer: refused, timed out, or the connection broke. `sent`: the request may have
    /// reached the agent (anything but a refused or failed connection).
    Unreachable { url: String, detail: String, sent: bool },
    /// An error status, with the agent's error code and message when it sent them.
    Status { url: String, status: u16, code: Option<ErrorCode>, message: String },
    /// An answer that is not the API's JSON.
    BadAnswer { url: String, detail: String },
    /// An `https://` agent whose TLS failed: its certificate is not the pinned one, nothing is
    /// pinned, or the handshake broke. Nothing was sent over it.
    Tls { url: String, detail: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreachable { url, detail, .. } => write!(f, "agent {url} unreachable: {detail}"),
            Error::Status { url, status, code: Some(code), message } => {
                write!(f, "agent {url} answered {status} {code}: {message}")
            }
            Error::Status { url, status, code: None, message } => write!(f, "agent {url} answered {status}: {message}"),
            Error::BadAnswer { url, detail } => write!(f, "agent {url} gave a malformed answer: {detail}"),
            Error::Tls { url, detail } => write!(f, "agent {url}: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Whether the agent may have done what was asked although this side saw a failure: the
    /// connection broke or timed out after the request went out, the agent failed on its side, or it
    /// answered success in a form not understood. A change asked for must then be treated as made
    /// until it is undone.
    pub fn maybe_applied(&self) -> bool {
        match self {
            Error::Unreachable { sent, .. } => *sent,
            Error::Status { status, .. } => *status >= 500,
            Error::BadAnswer { .. } => true,
            Error::Tls { .. } => false,
        }
    }
}

/// True for a ureq failure after which the request may have reached the server.
fn maybe_sent(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => false,
        ureq::Error::Io(io) => !matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::NotFound
        ),
        _ => true,
    }
}

/// Whether a token may cross the network to `ip` in clear: loopback and private addresses (RFC
/// 1918, link-local, IPv6 unique local), where the path is the publisher's own network, and the
/// unspecified address (a connection to it reaches this host).
pub fn local_address(ip: IpAddr) -> bool {
    if ip.is_unspecified() {
        return true;
    }
    match ip {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => local_address(IpAddr::V4(v4)),
            None => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00 || (ip.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// The address literal of an `http(s)://` URL's host, if it is one (not a name).
pub fn host_address(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.parse().ok()
}

/// How far a client trusts the way to its agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trust {
    /// For `https://`: the only certificate trusted.
    pub pin: Option<Fingerprint>,
    /// For `http://`: send the token in clear to any address, not only local ones.
    pub plain_http: bool,
}

/// First in the connector chain, before anything is sent: refuses an `https://` request when no
/// certificate is pinned, and a plain `http://` one to any address outside [`local_address`]
/// (names are checked as resolved) unless plain HTTP is allowed, so the token never leaves in clear.
#[derive(Debug)]
struct Guard {
    trust: Trust,
}

impl<In: ureq::unversioned::transport::Transport> Connector<In> for Guard {
    type Out = In;

    fn connect(
        &self,
        details: &ureq::unversioned::transport::ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<In>, ureq::Error> {
        let refuse = |why: String| Err(ureq::Error::Other(Box::new(HandshakeFailed(why))));
        if details.needs_tls() {
            if self.trust.pin.is_none() {
                return refuse("no cert_sha256 is pinned for this agent".into());
            }
        } else if !self.trust.plain_http {
            if let Some(a) = details.addrs.iter().find(|a| !local_address(a.ip())) {
                return refuse(format!(
                    "refused to send the token in clear to {} (not a loopback or private address; use https:// \
                     with cert_sha256, or plain_http = true)",
                    a.ip()
                ));
            }
        }
        Ok(chained)
    }
}

/// One agent, at `base` (e.g. `http://10.0.0.5:5050`).
pub struct AgentClient {
    base: String,
    trust: Trust,
    authorization: String,
    agent: ureq::Agent,
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient").field("base", &self.base).finish_non_exhaustive()
    }
}

impl AgentClient {
    /// A client of a plain `http://` agent (or an `https://` one, which then fails every request
    /// without sending anything: nothing is pinned).
    pub fn new(base: &str, token: &str, timeout: Duration) -> AgentClient {
        AgentClient::pinned(base, token, None, timeout)
    }

    /// A client that reaches an `https://` agent over TLS and trusts only a certificate whose
    /// SHA-256 is `pin`, and a plain `http://` one only at a local address.
    pub fn pinned(base: &str, token: &str, pin: Option<Fingerprint>, timeout: Duration) -> AgentClient {
        AgentClient::with_trust(base, token, Trust { pin, plain_http: false }, timeout)
    }

    pub fn with_trust(base: &str, token: &str, trust: Trust, timeout: Duration) -> AgentClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            // Well under the agent's 10-s keep-alive, so a pooled connection is never one the agent
            // is closing.
            .max_idle_age(Duration::from_secs(4))
            // The connector chain is ours (no proxy connector): an agent is reached directly.
            .proxy(None)
            .build();
        let tcp = ().chain(Guard { trust }).chain(TcpConnector::default());
        let agent = match trust.pin {
            Some(pin) => ureq::Agent::with_parts(config, tcp.chain(PinnedTls::new(pin)), DefaultResolver::default()),
            None => ureq::Agent::with_parts(config, tcp, DefaultResolver::default()),
        };
        AgentClient {
            base: base.trim_end_matches('/').to_string(),
            trust,
            authorization: format!("Bearer {token}"),
            agent,
        }
    }

    /// What it trusts: the fingerprint its TLS accepts, and whether plain HTTP may go anywhere.
    pub fn trust(&self) -> Trust {
        self.trust
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn health(&self) -> Result<Health, Error> {
        let (status, body) = self.request("GET", "/v1/health", None)?;
        self.expect(status, &body, &[200]).and_then(|_| self.decode(&body))
    }

    /// What the helper has uploaded and sent, ever.
    pub fn usage(&self) -> Result<Usage, Error> {
        let (status, body) = self.request("GET", "/v1/usage", None)?;
        self.expect(status, &body, &[200]).and_then(|_| self.decode(&body))
    }

    /// The content the helper holds (`GET /v1/content`).
    pub fn content(&self) -> Result<Content, Error> {
        let (status, body) = self.request("GET", "/v1/content", None)?;
        self.expect(status, &body, &[200]).and_then(|_| self.decode(&body))
    }

    /// The helper's caps now.
    pub fn limits(&self) -> Result<Limits, Error> {
        let (status, body) = self.request("GET", "/v1/limits", None)?;
        self.expect(status, &body, &[200]).and_then(|_| self.decode(&body))
    }

    /// Caps the helper's upload and download (kB/s, 0: none), kept across its restarts.
    pub fn set_limits(&self, limits: &Limits) -> Result<Limits, Error> {
        let body = serde_json::to_vec(limits).unwrap_or_default();
        let (status, answer) = self.request("PUT", "/v1/limits", Some(&body))?;
        self.expect(status, &answer, &[200]).and_then(|_| self.decode(&answer))
    }

    pub fn list(&self) -> Result<Vec<Torrent>, Error> {
        let (status, body) = self.request("GET", "/v1/torrents", None)?;
        self.expect(status, &body, &[200]).and_then(|_| self.decode(&body))
    }

    /// The session for `hash`, or `None` if the agent does not seed it.
    pub fn get(&self, hash: &InfoHash) -> Result<Option<Torrent>, Error> {
        let (status, body) = self.request("GET", &format!("/v1/torrents/{hash}"), None)?;
        match self.expect(status, &body, &[200, 404])? {
            404 => Ok(None),
            _ => self.decode(&body).map(Some),
        }
    }

    /// Asks the agent to seed the torrent `metainfo`; the bool is true if it is new there.
    pub fn put(&self, hash: &InfoHash, metainfo: &[u8]) -> Result<(Torrent, bool), Error> {
        let (status, body) = self.request("PUT", &format!("/v1/torrents/{hash}"), Some(metainfo))?;
        let status = self.expect(status, &body, &[200, 201])?;
        Ok((self.decode(&body)?, status == 201))
    }

    /// Asks the agent to stop seeding `hash`; false if it did not seed it.
    pub fn delete(&self, hash: &InfoHash) -> Result<bool, Error> {
        let (status, body) = self.request("DELETE", &format!("/v1/torrents/{hash}"), None)?;
        Ok(self.expect(status, &body, &[204, 404])? == 204)
    }

    /// Sends one request; the status and body, whatever the status.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), Error> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: ureq::Error| match e {
            ureq::Error::Other(e) if e.is::<HandshakeFailed>() => {
                Error::Tls { url: self.base.clone(), detail: e.to_string() }
            }
            e => Error::Unreachable { url: self.base.clone(), sent: maybe_sent(&e), detail: e.to_string() },
        };
        let result = match (method, body) {
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("Authorization", &self.authorization)
                .header("Content-Type", "application/x-bittorrent")
                .send(b),
            ("DELETE", _) => self.agent.delete(&url).header("Authorization", &self.authorization).call(),
            _ => self.agent.get(&url).header("Authorization", &self.authorization).call(),
        };
        let mut resp = result.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(MAX_ANSWER_BYTES).read_to_vec().map_err(unreachable)?;
        Ok((status, body))
    }

    fn expect(&self, status: u16, body: &[u8], ok: &[u16]) -> Result<u16, Error> {
        if ok.contains(&status) {
            return Ok(status);
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => (Some(e.error), e.message),
            Err(_) => (None, String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()),
        };
        Err(Error::Status { url: self.base.clone(), status, code, message })
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|e| Error::BadAnswer { url: self.base.clone(), detail: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::{host_address, local_address};

    #[test]
    fn only_local_addresses_take_a_token_in_clear() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.9",
            "172.16.0.1",
            "169.254.1.1",
            "::1",
            "fd00::5",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(local_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "203.0.113.7", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!local_address(ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(host_address("http://10.0.0.1:5050/x"), "10.0.0.1".parse().ok());
        assert_eq!(host_address("https://[::1]:5050"), "::1".parse().ok());
        assert_eq!(host_address("http://board.lan:5050"), None);
    }
}
