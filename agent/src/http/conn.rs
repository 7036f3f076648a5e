//! One connection: heads read under a deadline, a body read only when the handler asks (under a
//! minimum rate), answers written under a timeout, kept alive only when everything sent was read.

use super::head::{self, Head, Refusal, MAX_HEAD_BYTES};
use super::tls::{Acceptor, Session};
use super::{Handler, Limits, Request, Response};
use odseed_proto::wire::ErrorCode;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// After an answer that closes a connection whose client may still be sending, what is read and
/// dropped so the answer is not lost to a reset: at most this much, for at most [`LINGER_TIME`].
const LINGER_BYTES: usize = 1 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);

pub(super) struct Conn {
    stream: TcpStream,
    session: Session,
    /// Bytes read but not yet used (the start of a body, or of the next request).
    buf: Vec<u8>,
}

/// Serves requests on `stream` until the client closes, a limit is hit, or the server stops.
pub(super) fn serve<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<&Acceptor>,
    handler: &H,
    limits: &Limits,
    (stop, busy): (&AtomicBool, &AtomicBool),
) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let Ok(session) = Session::new(tls) else { return };
    let mut conn = Conn { stream, session, buf: Vec::new() };
    let mut idle = None;
    loop {
        let head = match conn.read_head(idle, limits.head_timeout) {
            Ok(Some(head)) => {
                // Handled now: never closed to make room for another connection.
                busy.store(true, Ordering::SeqCst);
                head
            }
            Ok(None) => return,
            Err(r) => {
                let resp = handler.refused(peer, r.code, r.message);
                conn.answer(&resp, false, false, 1);
                return conn.linger();
            }
        };
        let req = Request { head, peer };
        let mut body = Body {
            conn: &mut conn,
            unread: req.head.content_length,
            expect_continue: req.head.expect_continue,
            limits,
        };
        let resp = handler.handle(&req, &mut body);
        let all_read = body.unread == 0;
        let keep = req.head.keep_alive && all_read && !resp.close && !stop.load(Ordering::SeqCst);
        if !conn.answer(&resp, req.head.method == "HEAD", keep, req.head.minor_version) {
            return;
        }
        busy.store(false, Ordering::SeqCst);
        if !keep {
            return if all_read { conn.close() } else { conn.linger() };
        }
        idle = Some(limits.idle_timeout);
    }
}

impl Conn {
    /// The next request head. `idle`: how long to wait for its first byte (then `timeout` for the
    /// rest); `None` for a connection's first request, whose whole head must come within `timeout`.
    /// `Ok(None)`: the connection ended (closed, idle too long, or broken) with nothing to answer.
    fn read_head(&mut self, idle: Option<Duration>, timeout: Duration) -> Result<Option<Head>, Refusal> {
        let mut deadline = Instant::now() + idle.filter(|_| self.buf.is_empty()).unwrap_or(timeout);
        let mut started = idle.is_none() || !self.buf.is_empty();
        let mut fresh = !self.buf.is_empty();
        let mut chunk = [0u8; 2048];
        loop {
            if fresh {
                if let Some((head, used)) = head::parse(&self.buf)? {
                    self.buf.drain(..used);
                    return Ok(Some(head));
                }
            }
            if self.buf.len() >= MAX_HEAD_BYTES {
                return Err(Refusal { code: ErrorCode::HeadTooLarge, message: "request head too large" });
            }
            let room = (MAX_HEAD_BYTES - self.buf.len()).min(chunk.len());
            match self.read_until(&mut chunk[..room], deadline) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    if !started {
                        started = true;
                        deadline = Instant::now() + timeout;
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                    // A head can only end with a line: parse again only when one has ended.
                    fresh = chunk[..n].contains(&b'\n');
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut && !self.buf.is_empty() => {
                    return Err(Refusal { code: ErrorCode::Timeout, message: "the request head came too slowly" });
                }
                Err(_) => return Ok(None),
            }
        }
    }

    /// One read that gives up at `deadline` (as `TimedOut`).
    fn read_until(&mut self, into: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.session.read(&mut self.stream, into) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    /// Writes `resp`; false if the client is gone.
    fn answer(&mut self, resp: &Response, head_only: bool, keep: bool, minor_version: u8) -> bool {
        let mut out = Vec::with_capacity(192 + resp.body.len());
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
        if resp.status != 204 {
            let _ = write!(out, "Content-Type: {}\r\nContent-Length: {}\r\n", resp.content_type, resp.body.len());
        }
        if let Some(allow) = resp.allow {
            let _ = write!(out, "Allow: {allow}\r\n");
        }
        out.extend_from_slice(match (keep, minor_version) {
            (false, _) => b"Connection: close\r\n\r\n",
            (true, 0) => b"Connection: keep-alive\r\n\r\n",
            (true, _) => b"\r\n",
        });
        if !head_only && resp.status != 204 {
            out.extend_from_slice(&resp.body);
        }
        self.session.write_all(&mut self.stream, &out).is_ok()
    }

    /// Closes after an answer when everything the client sent was read.
    fn close(mut self) {
        self.session.close_notify(&mut self.stream);
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Closes after an answer when the client may still be sending: its remaining bytes are read and
    /// dropped (bounded) so the kernel does not reset the connection before it reads the answer.
    fn linger(mut self) {
        self.session.close_notify(&mut self.stream);
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER_TIME;
        let mut chunk = [0u8; 4096];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match self.read_until(&mut chunk, deadline) {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    }
}

/// A request's body, read only if the handler asks.
pub struct Body<'a> {
    conn: &'a mut Conn,
    unread: u64,
    expect_continue: bool,
    limits: &'a Limits,
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The declared length is over the handler's limit (nothing was read).
    TooLarge { declared: u64 },
    /// The body came slower than the minimum rate.
    Timeout,
    /// The connection broke.
    Broken,
}

impl Body<'_> {
    /// The declared length.
    pub fn declared(&self) -> u64 {
        self.unread
    }

    /// Reads the whole body, if it is at most `max` bytes.
    pub fn read(&mut self, max: u64) -> Result<Vec<u8>, BodyError> {
        let mut body = Vec::with_capacity(if self.unread <= max { self.unread as usize } else { 0 });
        self.consume(max, |bytes| body.extend_from_slice(bytes))?;
        Ok(body)
    }

    /// Reads the body, if it is at most `max` bytes, and drops it: for a request refused for a
    /// reason other than its size, so the client (which may send its whole body before it reads the
    /// answer) gets the answer and the connection stays usable.
    pub fn discard(&mut self, max: u64) -> Result<(), BodyError> {
        self.consume(max, |_| {})
    }

    fn consume(&mut self, max: u64, mut take: impl FnMut(&[u8])) -> Result<(), BodyError> {
        let len = self.unread;
        if len > max {
            return Err(BodyError::TooLarge { declared: len });
        }
        if self.expect_continue {
            self.expect_continue = false;
            let conn = &mut *self.conn;
            conn.session
                .write_all(&mut conn.stream, b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|_| BodyError::Broken)?;
        }
        let allowed = self.limits.head_timeout.as_secs() + len / self.limits.body_min_bytes_per_sec.max(1);
        let deadline = Instant::now() + Duration::from_secs(allowed);
        let from_buf = self.conn.buf.len().min(len as usize);
        take(&self.conn.buf[..from_buf]);
        self.conn.buf.drain(..from_buf);
        let mut left = len - from_buf as u64;
        let mut chunk = vec![0u8; 16 * 1024];
        while left > 0 {
            let want = (left as usize).min(chunk.len());
            match self.conn.read_until(&mut chunk[..want], deadline) {
                Ok(0) => return Err(BodyError::Broken),
                Ok(n) => {
                    take(&chunk[..n]);
                    left -= n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(BodyError::Timeout),
                Err(_) => return Err(BodyError::Broken),
            }
        }
        self.unread = 0;
        Ok(())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}
