//! UDP scrape (BEP 15): a connect exchange for a connection id, then a scrape of up to 74 hashes,
//! answered with 12 bytes (seeders, completed, leechers) per hash, in order.

use super::scrape::{Scrape, TrackerError};
use odseed_proto::InfoHash;
use std::collections::HashMap;
use std::net::{ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// Hashes per scrape request (BEP 15: about 74 fit in one packet).
pub const MAX_PER_REQUEST: usize = 70;
const PROTOCOL_ID: u64 = 0x41727101980;
const CONNECT: u32 = 0;
const SCRAPE: u32 = 2;
const ERROR: u32 = 3;

/// `udp://host:port[/path]` -> `host:port`.
pub fn host_port(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("udp://")?;
    let hp = rest.split(['/', '?']).next()?;
    (!hp.is_empty()).then_some(hp)
}

pub fn scrape(url: &str, hashes: &[InfoHash], timeout: Duration) -> Result<HashMap<InfoHash, Scrape>, TrackerError> {
    let unreachable = |detail: String| TrackerError::Unreachable { url: url.into(), detail };
    let bad = |detail: String| TrackerError::BadAnswer { url: url.into(), detail };
    let hp = host_port(url).ok_or_else(|| TrackerError::Unsupported { url: url.into() })?;
    let addr = hp.to_socket_addrs().map_err(|e| unreachable(e.to_string()))?.next();
    let addr = addr.ok_or_else(|| unreachable("no address".into()))?;
    let local = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let sock =
        UdpSocket::bind(local).and_then(|s| s.connect(addr).map(|()| s)).map_err(|e| unreachable(e.to_string()))?;
    let deadline = Instant::now() + timeout;

    let tid = transaction_id();
    let mut req = Vec::with_capacity(16);
    req.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
    req.extend_from_slice(&CONNECT.to_be_bytes());
    req.extend_from_slice(&tid.to_be_bytes());
    let answer = exchange(&sock, &req, tid, deadline).map_err(unreachable)?;
    let connection_id = parse_connect(&answer).map_err(|e| match e {
        Answer::Error(m) => TrackerError::Failure { url: url.into(), reason: m },
        Answer::Bad(m) => bad(m),
    })?;

    let tid = transaction_id();
    let mut req = Vec::with_capacity(16 + 20 * hashes.len());
    req.extend_from_slice(&connection_id.to_be_bytes());
    req.extend_from_slice(&SCRAPE.to_be_bytes());
    req.extend_from_slice(&tid.to_be_bytes());
    hashes.iter().for_each(|h| req.extend_from_slice(h.as_bytes()));
    let answer = exchange(&sock, &req, tid, deadline).map_err(unreachable)?;
    parse_scrape(&answer, hashes).map_err(|e| match e {
        Answer::Error(m) => TrackerError::Failure { url: url.into(), reason: m },
        Answer::Bad(m) => bad(m),
    })
}

/// Sends `req` and waits for a packet carrying `tid` (others are ignored) until `deadline`.
fn exchange(sock: &UdpSocket, req: &[u8], tid: u32, deadline: Instant) -> Result<Vec<u8>, String> {
    sock.send(req).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no answer in time".into());
        }
        sock.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match sock.recv(&mut buf) {
            Ok(n) if n >= 8 && buf[4..8] == tid.to_be_bytes() => return Ok(buf[..n].to_vec()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err("no answer in time".into())
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

pub enum Answer {
    Error(String),
    Bad(String),
}

fn action(answer: &[u8]) -> Result<u32, Answer> {
    let a = u32::from_be_bytes(
        answer.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(|| Answer::Bad("short packet".into()))?,
    );
    if a == ERROR {
        return Err(Answer::Error(String::from_utf8_lossy(&answer[8.min(answer.len())..]).chars().take(200).collect()));
    }
    Ok(a)
}

pub fn parse_connect(answer: &[u8]) -> Result<u64, Answer> {
    if action(answer)? != CONNECT || answer.len() < 16 {
        return Err(Answer::Bad("not a connect answer".into()));
    }
    Ok(u64::from_be_bytes(answer[8..16].try_into().unwrap_or_default()))
}

pub fn parse_scrape(answer: &[u8], hashes: &[InfoHash]) -> Result<HashMap<InfoHash, Scrape>, Answer> {
    if action(answer)? != SCRAPE {
        return Err(Answer::Bad("not a scrape answer".into()));
    }
    let body = answer.get(8..).ok_or_else(|| Answer::Bad("short packet".into()))?;
    if body.len() < 12 * hashes.len() {
        return Err(Answer::Bad(format!("{} bytes of counts for {} hashes", body.len(), hashes.len())));
    }
    let n = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    let counts = hashes
        .iter()
        .enumerate()
        .map(|(i, h)| (*h, Scrape { seeders: n(12 * i), downloaded: n(12 * i + 4), leechers: n(12 * i + 8) }));
    Ok(counts.collect())
}

fn transaction_id() -> u32 {
    let hex = odseed_proto::fsutil::random_hex(4).unwrap_or_else(|_| format!("{:08x}", std::process::id()));
    u32::from_str_radix(&hex, 16).unwrap_or(0x5eed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(action: u32, tid: u32, rest: &[u8]) -> Vec<u8> {
        [&action.to_be_bytes()[..], &tid.to_be_bytes(), rest].concat()
    }

    #[test]
    fn reads_answers_and_refuses_bad_ones() {
        assert_eq!(parse_connect(&packet(0, 1, &42u64.to_be_bytes())).ok(), Some(42));
        assert!(parse_connect(&packet(0, 1, &[1, 2])).is_err());
        assert!(matches!(parse_connect(&packet(3, 1, b"go away")), Err(Answer::Error(m)) if m == "go away"));
        let h = [InfoHash::from_bytes([1; 20]), InfoHash::from_bytes([2; 20])];
        let counts: Vec<u8> = [5u32, 9, 8, 1, 2, 3].iter().flat_map(|n| n.to_be_bytes()).collect();
        let got = parse_scrape(&packet(2, 1, &counts), &h).ok().unwrap();
        assert_eq!(got[&h[0]], Scrape { seeders: 5, downloaded: 9, leechers: 8 });
        assert_eq!(got[&h[1]], Scrape { seeders: 1, downloaded: 2, leechers: 3 });
        assert!(parse_scrape(&packet(2, 1, &counts[..20]), &h).is_err(), "truncated");
        assert!(parse_scrape(&packet(0, 1, &counts), &h).is_err(), "wrong action");
        assert!(parse_scrape(&[0, 0], &h).is_err());
        assert_eq!(host_port("udp://t:6969/announce"), Some("t:6969"));
        assert_eq!(host_port("udp://"), None);
    }
}
