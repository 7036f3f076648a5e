//! Hostile clients of an agent's API, and the probes that judge how the agent holds: each attack
//! opens its connections from the address it is given and returns the sockets it keeps open; a
//! [`Watch`] probes `/v1/health` from another address every 100 ms and samples the agent's memory,
//! threads and descriptors meanwhile. The agent's tests assert on them; `cargo bench --bench siege`
//! prints them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sockets an attack keeps open until they are dropped.
pub type Held = Vec<TcpStream>;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).ok()?;
    s.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
    s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    Some(s)
}

/// Opens `n` connections that each send `head` and stay open; connections the agent refuses are
/// skipped.
pub fn send_and_hold(addr: SocketAddr, n: usize, head: &[u8]) -> Held {
    (0..n)
        .filter_map(|_| {
            let mut s = connect(addr)?;
            s.write_all(head).ok()?;
            Some(s)
        })
        .collect()
}

/// A connection from `src` (an address of this namespace) to `addr` that never sends a byte.
pub fn silent_from(src: std::net::Ipv4Addr, addr: SocketAddr) -> Option<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(dst) = addr else { return None };
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a new socket this function owns; bind and connect read the sockaddr_in they are
    // given for its length; on any failure the descriptor is closed before returning.
    #[allow(unsafe_code)]
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let (from, to) = (sockaddr(src, 0), sockaddr(*dst.ip(), dst.port()));
        let ok = libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len) == 0
            && libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len) == 0;
        if !ok {
            libc::close(fd);
            return None;
        }
        Some(TcpStream::from_raw_fd(fd))
    }
}

/// Whether the agent closed `s` (it reads end-of-file or an error, without waiting).
pub fn closed(s: &TcpStream) -> bool {
    let _ = s.set_nonblocking(true);
    let mut b = [0u8; 1];
    let gone = match s.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    let _ = s.set_nonblocking(false);
    gone
}

/// A request line with a version the agent does not serve, `n` times.
pub fn http2_lines(addr: SocketAddr, n: usize) -> Held {
    send_and_hold(addr, n, b"GET /v1/health HTTP/2.0\r\nHost: x\r\n\r\n")
}

/// `n` connections that never send a byte.
pub fn idle(addr: SocketAddr, n: usize) -> Held {
    send_and_hold(addr, n, b"")
}

/// `n` requests (no token) that declare a body of `length` bytes and never send it.
pub fn unsent_bodies(addr: SocketAddr, n: usize, length: u64) -> Held {
    let head = format!("PUT /v1/torrents/{} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n", "ab".repeat(20));
    send_and_hold(addr, n, head.as_bytes())
}

/// A request head that never ends: `line` repeated until `bytes` were sent, the agent answered or it
/// stopped reading (read while sending, as curl does). The bytes it took and what the agent answered.
pub fn endless_head(addr: SocketAddr, start: &[u8], line: &[u8], bytes: usize) -> (usize, String) {
    let Some(mut s) = connect(addr) else { return (0, String::new()) };
    let answered = Arc::new(AtomicBool::new(false));
    let reader = s.try_clone().ok().map(|mut r| {
        let answered = answered.clone();
        std::thread::spawn(move || {
            let mut first = [0u8; 1];
            let got = r.read(&mut first).unwrap_or(0);
            answered.store(true, Ordering::SeqCst);
            let rest = read_answer(&mut r);
            if got == 1 {
                format!("{}{rest}", first[0] as char)
            } else {
                rest
            }
        })
    });
    let mut sent = 0;
    if s.write_all(start).is_ok() {
        sent += start.len();
        let block: Vec<u8> = line.iter().copied().cycle().take(64 * 1024 / line.len() * line.len()).collect();
        while sent < bytes && !answered.load(Ordering::SeqCst) && s.write_all(&block).is_ok() {
            sent += block.len();
        }
    }
    let answer = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    (sent, answer)
}

/// 64 KiB header lines of `X-H: a` up to `bytes`.
pub fn header_flood(addr: SocketAddr, bytes: usize) -> (usize, String) {
    endless_head(addr, b"GET /v1/health HTTP/1.1\r\n", b"X-H: a\r\n", bytes)
}

/// A request line whose URL is `bytes` long.
pub fn long_url(addr: SocketAddr, bytes: usize) -> (usize, String) {
    endless_head(addr, b"GET /", b"a", bytes)
}

/// Sends `request` on a fresh connection and reads until the agent closes it (or 5 s pass).
pub fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let Some(mut s) = connect(addr) else { return String::new() };
    let _ = s.write_all(request);
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + IO_TIMEOUT;
    while Instant::now() < until && out.len() < 1 << 20 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a [`Watch`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub probes: u64,
    /// Probes not answered 200 within 1 s.
    pub failed: u64,
    pub slowest_ms: u64,
    pub rss_max_kib: u64,
    pub threads_max: u64,
    pub fds_max: u64,
    /// The agent process ended while watched.
    pub exited: bool,
}

impl Seen {
    pub fn healthy(&self) -> bool {
        self.failed == 0 && !self.exited && self.probes > 0
    }
}

/// Probes `/v1/health` at `health` every 100 ms, and samples the process `pid`, until finished.
pub struct Watch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    pub fn start(health: SocketAddr, pid: u32) -> Watch {
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Seen::default())));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let ok = probe(health);
                    let ms = started.elapsed().as_millis() as u64;
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    s.probes += 1;
                    s.failed += u64::from(!ok || ms > 1000);
                    s.slowest_ms = s.slowest_ms.max(ms);
                    match Sample::of(pid) {
                        Some(now) => {
                            s.rss_max_kib = s.rss_max_kib.max(now.rss_kib);
                            s.threads_max = s.threads_max.max(now.threads);
                            s.fds_max = s.fds_max.max(now.fds);
                        }
                        None => s.exited = true,
                    }
                    drop(s);
                    std::thread::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()));
                }
            })
        };
        Watch { stop, seen, thread: Some(thread) }
    }

    /// Probes a few more times (so some probes see the state the attack left), then stops; what
    /// was seen.
    pub fn finish(mut self) -> Seen {
        let probes = || self.seen.lock().unwrap_or_else(|e| e.into_inner()).probes;
        let (want, deadline) = (probes() + 5, Instant::now() + Duration::from_secs(30));
        while probes() < want && Instant::now() < deadline && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One `GET /v1/health` on a fresh connection, answered 200 within 1 s.
fn probe(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// A process's footprint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub rss_kib: u64,
    /// The anonymous part of the RSS (the process's own memory, without its mapped binary).
    pub anon_kib: u64,
    pub threads: u64,
    pub fds: u64,
}

impl Sample {
    /// `None` once the process is gone (or a zombie).
    pub fn of(pid: u32) -> Option<Sample> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
        Some(Sample { rss_kib: field("VmRSS:")?, anon_kib: field("RssAnon:")?, threads: field("Threads:")?, fds })
    }
}
