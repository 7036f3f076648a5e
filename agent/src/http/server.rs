//! The listener: an accept loop that survives every error, connection caps checked before a thread
//! is started, and a stop that is honoured whatever the clients do.

use super::{conn, Acceptor, Handler, Limits};
use crate::ratelog::RateLog;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Stack of a connection's thread: request handling is shallow (bounded bencode and JSON depth).
const CONN_STACK: usize = 256 * 1024;
/// How long the accept loop rests after `accept` failed for lack of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

pub struct Server {
    listener: TcpListener,
    limits: Limits,
    tls: Option<Acceptor>,
    shared: Arc<Shared>,
}

/// Stops a [`Server`] from another thread (a signal handler's).
#[derive(Clone)]
pub struct Stopper(Arc<Shared>);

struct Shared {
    stopping: AtomicBool,
    /// Where to connect to wake the accept loop.
    wake: SocketAddr,
    conns: Mutex<Vec<Slot>>,
    closed: Condvar,
    next_id: AtomicU64,
    refused: RateLog,
    accept_failed: RateLog,
}

/// An open connection: a second handle on its socket, to shut it down at stop or evict it.
struct Slot {
    id: u64,
    /// Its address, an IPv6 one as its /64 (one host's or one subscriber's share).
    ip: IpAddr,
    stream: TcpStream,
    /// A request of it is being handled (its head has come and its answer not yet gone).
    busy: Arc<AtomicBool>,
}

/// An address as the per-address cap counts it: IPv4 as is (and IPv4 mapped into IPv6), IPv6 by
/// its /64, which one machine or one subscriber holds whole.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

impl Server {
    /// Listens on `addr`; with `tls`, every connection speaks TLS.
    pub fn bind(addr: SocketAddr, limits: Limits, tls: Option<Acceptor>) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let wake_ip = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            wake: SocketAddr::new(wake_ip, local.port()),
            conns: Mutex::new(Vec::new()),
            closed: Condvar::new(),
            next_id: AtomicU64::new(0),
            refused: RateLog::new(SUMMARY_EVERY),
            accept_failed: RateLog::new(SUMMARY_EVERY),
        });
        Ok(Server { listener, limits, tls, shared })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stopper(&self) -> Stopper {
        Stopper(self.shared.clone())
    }

    /// Accepts and serves until stopped; then gives requests in progress up to `drain` to finish.
    pub fn run<H: Handler>(self, handler: Arc<H>) {
        let ticker = {
            let (shared, handler) = (self.shared.clone(), handler.clone());
            std::thread::Builder::new().name("api-tick".into()).spawn(move || {
                while !shared.wait_stop(Duration::from_secs(1)) {
                    handler.tick();
                }
            })
        };
        while !self.shared.stopping.load(Ordering::SeqCst) {
            match self.listener.accept() {
                Ok((stream, peer)) if !self.shared.stopping.load(Ordering::SeqCst) => {
                    self.admit(stream, peer, &handler)
                }
                Ok(_) => break,
                Err(e) => self.accept_failed(&e),
            }
        }
        self.shared.shutdown_all();
        self.shared.wait_empty(self.limits.drain);
        if let Ok(t) = ticker {
            let _ = t.join();
        }
    }

    fn accept_failed(&self, e: &io::Error) {
        let out_of_resources =
            matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM));
        if out_of_resources {
            if let Some(n) = self.shared.accept_failed.hit() {
                log::warn!("api: cannot accept connections ({e}); retrying ({n} such failure(s) in the last minute)");
            }
            std::thread::sleep(ACCEPT_BACKOFF);
        } else {
            log::debug!("api: accept: {e}");
        }
    }

    /// Starts a thread for the connection, or closes it at once if a cap is reached. When every
    /// slot is taken, the oldest connection that is not having a request handled (it has sent no
    /// complete head yet, or waits idle between requests) is closed to make room: connections
    /// that say nothing, from however many addresses, cannot keep out a client that sends its
    /// request at once.
    fn admit<H: Handler>(&self, stream: TcpStream, peer: SocketAddr, handler: &Arc<H>) {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let ip = address_key(peer.ip());
        let busy = Arc::new(AtomicBool::new(false));
        {
            let mut conns = self.shared.lock();
            let from_peer = conns.iter().filter(|s| s.ip == ip).count();
            if from_peer < self.limits.max_per_address && conns.len() >= self.limits.max_connections {
                // Slots are in the order they were taken: the first idle one is the oldest.
                if let Some(i) = conns.iter().position(|s| !s.busy.load(Ordering::SeqCst)) {
                    let old = conns.remove(i);
                    let _ = old.stream.shutdown(Shutdown::Both);
                    log::debug!("api: connection from {} closed to make room (it sent no request)", old.ip);
                }
            }
            let over = if conns.len() >= self.limits.max_connections {
                Some(("max_connections", self.limits.max_connections))
            } else if from_peer >= self.limits.max_per_address {
                Some(("max_connections_per_address", self.limits.max_per_address))
            } else {
                None
            };
            if let Some((key, cap)) = over {
                drop(conns);
                if let Some(n) = self.shared.refused.hit() {
                    log::warn!(
                        "api: connection from {} closed: {key} ({cap}) reached ({n} in the last minute)",
                        peer.ip()
                    );
                }
                return;
            }
            let Ok(handle) = stream.try_clone() else { return };
            conns.push(Slot { id, ip, stream: handle, busy: busy.clone() });
        }
        let (shared, handler, limits, tls) =
            (self.shared.clone(), handler.clone(), self.limits.clone(), self.tls.clone());
        let spawned = std::thread::Builder::new().stack_size(CONN_STACK).spawn(move || {
            conn::serve(stream, peer, tls.as_ref(), &*handler, &limits, (&shared.stopping, &busy));
            shared.remove(id);
        });
        if let Err(e) = spawned {
            self.shared.remove(id);
            if let Some(n) = self.shared.accept_failed.hit() {
                log::warn!("api: cannot start a thread for a connection ({e}); closed ({n} in the last minute)");
            }
        }
    }
}

impl Stopper {
    /// Stops accepting, ends every connection's wait for a request, and wakes the accept loop.
    pub fn stop(&self) {
        self.0.stopping.store(true, Ordering::SeqCst);
        self.0.closed.notify_all();
        self.0.shutdown_all();
        let _ = TcpStream::connect_timeout(&self.0.wake, Duration::from_secs(1));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|s| s.id != id);
        self.closed.notify_all();
    }

    /// Shuts down the reading side of every connection: a wait for a request ends at once, an answer
    /// being written still goes out.
    fn shutdown_all(&self) {
        for s in self.lock().iter() {
            let _ = s.stream.shutdown(Shutdown::Read);
        }
    }

    /// Waits until every connection is closed, at most `limit`.
    fn wait_empty(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut conns = self.lock();
        while !conns.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::debug!("api: {} connection(s) still open at stop", conns.len());
                return;
            }
            conns = self.closed.wait_timeout(conns, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Waits up to `d` for the stop; true once stopping.
    fn wait_stop(&self, d: Duration) -> bool {
        let conns = self.lock();
        if self.stopping.load(Ordering::SeqCst) {
            return true;
        }
        let _ = self.closed.wait_timeout(conns, d);
        self.stopping.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_address_counts_as_its_64() {
        let k = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("2001:db8:1:2::1"), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(k("10.1.2.3"), "10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(k("::ffff:10.1.2.3"), "10.1.2.3".parse::<IpAddr>().unwrap());
    }
}
