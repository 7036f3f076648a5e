//! The connection's byte stream: the socket itself, or TLS over it (cargo feature `tls`). Each read
//! makes at most one read of the socket, so the caller's deadline holds through a TLS handshake too:
//! a client that trickles its handshake is cut off like one that trickles its head.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// What a TLS listener hands each connection: the server's certificate, key and settings.
#[cfg(feature = "tls")]
pub type Acceptor = std::sync::Arc<rustls::ServerConfig>;

/// This build has no TLS: there is no acceptor to give.
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone)]
pub enum Acceptor {}

pub(super) struct Session {
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ServerConnection>>,
}

impl Session {
    #[cfg(feature = "tls")]
    pub(super) fn new(acceptor: Option<&Acceptor>) -> io::Result<Session> {
        let tls = match acceptor {
            Some(a) => {
                let mut conn = rustls::ServerConnection::new(a.clone()).map_err(io::Error::other)?;
                // Answers are the agent's own and bounded; rustls's default 64 KiB cap on what waits
                // to be sent would make `write_all` fail on a larger one (a long torrent list).
                conn.set_buffer_limit(None);
                Some(Box::new(conn))
            }
            None => None,
        };
        Ok(Session { tls })
    }

    #[cfg(not(feature = "tls"))]
    pub(super) fn new(acceptor: Option<&Acceptor>) -> io::Result<Session> {
        match acceptor {
            Some(never) => match *never {},
            None => Ok(Session {}),
        }
    }

    /// Plain bytes into `into`: Ok(0) at the end of the stream; `WouldBlock` after one socket read
    /// that gave no plain bytes yet (handshake records), to be called again.
    pub(super) fn read(&mut self, stream: &mut TcpStream, into: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            match tls.reader().read(into) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                Err(_) => {}
            }
            while tls.wants_write() {
                tls.write_tls(stream)?;
            }
            if tls.read_tls(stream)? == 0 {
                return Ok(0);
            }
            if let Err(e) = tls.process_new_packets() {
                // Send the alert that says why, then give up on the connection.
                let _ = tls.write_tls(stream);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        stream.read(into)
    }

    pub(super) fn write_all(&mut self, stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            tls.writer().write_all(bytes)?;
            while tls.wants_write() {
                tls.write_tls(stream)?;
            }
            return Ok(());
        }
        stream.write_all(bytes).and_then(|()| stream.flush())
    }

    /// Tells a TLS client that nothing more comes (before the socket's write side is shut).
    pub(super) fn close_notify(&mut self, stream: &mut TcpStream) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            while tls.wants_write() {
                if tls.write_tls(stream).is_err() {
                    break;
                }
            }
        }
        let _ = stream;
    }
}
