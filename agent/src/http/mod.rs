//! The agent's HTTP/1.1 front, bounded in everything a client controls: the head's size and line
//! count ([`head`]), the body (read only when the handler asks, up to its limit), time (a deadline for
//! the head, a minimum rate for the body, an idle keep-alive timeout, a write timeout) and connections
//! (a total and a per-address cap; over a cap a connection is closed at once). One thread per
//! connection, so a slow client holds only its own; the accept loop survives every error ([`server`]).
//!
//! It replaced tiny_http 0.12, which reads lines without a limit, reads unread bodies on drop and
//! closes its listener for good when `accept` fails.

pub mod conn;
pub mod head;
pub mod server;
pub mod tls;

pub use conn::{Body, BodyError};
pub use head::Head;
pub use server::{Server, Stopper};
pub use tls::Acceptor;

use odseed_proto::wire::{ErrorBody, ErrorCode};
use std::net::SocketAddr;
use std::time::Duration;

/// What the server asks of the application behind it.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. The body is read only if the handler reads it; an unread body closes
    /// the connection after the answer.
    fn handle(&self, req: &Request, body: &mut Body<'_>) -> Response;
    /// The answer to a request refused before it reached [`Handler::handle`] (malformed, too large,
    /// too slow): for the handler to count and log.
    fn refused(&self, peer: SocketAddr, code: ErrorCode, message: &str) -> Response {
        let _ = peer;
        Response::error(code, message)
    }
    /// Called about once a second by the accept loop (for summaries of what was held back).
    fn tick(&self) {}
}

/// A request whose head was read.
#[derive(Debug)]
pub struct Request {
    pub head: Head,
    pub peer: SocketAddr,
}

/// An answer before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The `Allow` header (for 405).
    pub allow: Option<&'static str>,
    /// Close the connection after this answer.
    pub close: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response { status, content_type, body, allow: None, close: false }
    }

    pub fn json(status: u16, v: &impl serde::Serialize) -> Response {
        // Serialising the agent's own plain structs cannot fail.
        Response::new(status, "application/json", serde_json::to_vec(v).unwrap_or_default())
    }

    /// The API's error body for `code`, with the code's status.
    pub fn error(code: ErrorCode, message: &str) -> Response {
        Response::json(code.status(), &ErrorBody { error: code, message: message.to_string() })
    }
}

/// The front's limits. Times are per request; counts are for the whole server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_address: usize,
    /// From a connection's first byte (or its accept) to the end of its request head.
    pub head_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// A body must arrive at this rate, after a grace of `head_timeout`.
    pub body_min_bytes_per_sec: u64,
    /// How long writing an answer may take.
    pub write_timeout: Duration,
    /// At shutdown, how long requests in progress may take to finish.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            max_per_address: 8,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            body_min_bytes_per_sec: 16 * 1024,
            write_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(2),
        }
    }
}
