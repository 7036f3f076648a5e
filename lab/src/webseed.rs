//! A web seed for the lab (BEP 19, `url-list`): a small HTTP/1.1 server of the files of one
//! directory, with `Range` and one rate cap shared by every connection, which is what a publisher
//! would rent instead of helpers for a new torrent (a web server, a CDN). GET and HEAD of a plain
//! file name; keep-alive; at most [`MAX_CONNECTIONS`] at once; a request head of at most
//! [`MAX_HEAD`] bytes; connections idle for [`IDLE`] are closed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MAX_CONNECTIONS: usize = 64;
pub const MAX_HEAD: usize = 8192;
pub const IDLE: Duration = Duration::from_secs(60);
/// Bytes sent at a time, each when the rate cap allows it.
const CHUNK: usize = 16 << 10;

/// The server, running until dropped.
pub struct WebSeed {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    root: PathBuf,
    /// Bytes per second for all connections together (0: no cap).
    rate: u64,
    /// When the cap next lets bytes go.
    next: Mutex<Instant>,
    /// Bytes sent, per file name.
    sent: Mutex<HashMap<String, u64>>,
    connections: AtomicUsize,
    stop: AtomicBool,
}

impl WebSeed {
    /// Serves the files of `root` on `ip`:`port` (0: any free port), at most `kbps` kB/s (1000
    /// bytes/s) in all. Call it from the thread in the network namespace it must serve.
    pub fn start(ip: Ipv4Addr, port: u16, root: &Path, kbps: u32) -> Result<WebSeed, String> {
        let listener = TcpListener::bind((ip, port)).map_err(|e| format!("web seed: cannot listen on {ip}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("web seed: {e}"))?;
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            rate: u64::from(kbps) * 1000,
            next: Mutex::new(Instant::now()),
            sent: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                if s.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    s.connections.fetch_sub(1, Ordering::SeqCst);
                    let _ = conn.shutdown(Shutdown::Both);
                    continue;
                }
                let s = s.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve(&s, conn) {
                        log::debug!("web seed: {e}");
                    }
                    s.connections.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(WebSeed { addr, shared, accept: Some(accept) })
    }

    /// The URL for a torrent's `url-list`: a client appends the file's name (BEP 19).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Bytes of the file `name` sent so far.
    pub fn sent(&self, name: &str) -> u64 {
        let sent = self.shared.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.get(name).copied().unwrap_or(0)
    }
}

impl Drop for WebSeed {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread up.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A request: method, file name, byte range asked for.
struct Request {
    head_only: bool,
    name: String,
    range: Option<(u64, Option<u64>)>,
    close: bool,
}

fn serve(s: &Shared, conn: TcpStream) -> Result<(), String> {
    conn.set_read_timeout(Some(IDLE)).map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(IDLE)).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(conn.try_clone().map_err(|e| e.to_string())?);
    let mut out = conn;
    loop {
        if s.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(head) = read_head(&mut reader)? else { return Ok(()) };
        let req = match parse(&head) {
            Ok(r) => r,
            Err((code, why)) => return answer(&mut out, code, why, true),
        };
        let close = req.close;
        respond(s, &mut out, req)?;
        if close {
            return Ok(());
        }
    }
}

/// The request head, up to its blank line (None: the connection closed before one).
fn read_head(r: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.by_ref().take((MAX_HEAD + 1 - head.len().min(MAX_HEAD)) as u64).read_until(b'\n', &mut line);
        let n = n.map_err(|e| format!("reading a request: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(format!("a request head over {MAX_HEAD} bytes"));
        }
        if line == b"\r\n" || line == b"\n" {
            return String::from_utf8(head).map(Some).map_err(|_| "a request head that is not UTF-8".into());
        }
    }
}

fn parse(head: &str) -> Result<Request, (u16, &'static str)> {
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target, version) =
        (first.next().unwrap_or(""), first.next().unwrap_or(""), first.next().unwrap_or(""));
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err((405, "only GET and HEAD")),
    };
    let path = target.split('?').next().unwrap_or("");
    let name = percent_decode(path.strip_prefix('/').unwrap_or("")).ok_or((400, "a bad path"))?;
    // One plain file of the directory: nothing else is reachable.
    if name.is_empty() || name.contains('/') || name.contains('\\') || name == "." || name == ".." {
        return Err((404, "no such file"));
    }
    let mut range = None;
    let mut close = version != "HTTP/1.1";
    for line in lines {
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if key.eq_ignore_ascii_case("range") {
            range = Some(parse_range(value).ok_or((416, "a range this server does not serve"))?);
        } else if key.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Request { head_only, name, range, close })
}

/// `bytes=A-B` or `bytes=A-` (one range; what BitTorrent clients ask for).
fn parse_range(v: &str) -> Option<(u64, Option<u64>)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b = match b.trim() {
        "" => None,
        b => Some(b.parse::<u64>().ok().filter(|b| *b >= a)?),
    };
    Some((a, b))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::with_capacity(b.len()), 0);
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn respond(s: &Shared, out: &mut TcpStream, req: Request) -> Result<(), String> {
    let Ok(mut file) = std::fs::File::open(s.root.join(&req.name)) else {
        return answer(out, 404, "no such file", req.close);
    };
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let (start, end) = match req.range {
        None => (0, size),
        Some((a, b)) if a < size => (a, b.map_or(size, |b| (b + 1).min(size))),
        Some(_) => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\n\r\n"
            );
            return out.write_all(head.as_bytes()).map_err(|e| e.to_string());
        }
    };
    let status = if req.range.is_some() { "206 Partial Content" } else { "200 OK" };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\nContent-Length: {}\r\n",
        end - start
    );
    if req.range.is_some() {
        head += &format!("Content-Range: bytes {start}-{}/{size}\r\n", end.max(1) - 1);
    }
    head += if req.close { "Connection: close\r\n\r\n" } else { "\r\n" };
    out.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    if req.head_only {
        return Ok(());
    }
    file.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = end - start;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        file.read_exact(&mut buf[..n]).map_err(|e| e.to_string())?;
        s.pace(n);
        out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        *s.sent.lock().unwrap_or_else(|e| e.into_inner()).entry(req.name.clone()).or_insert(0) += n as u64;
        left -= n as u64;
    }
    Ok(())
}

impl Shared {
    /// Waits until the cap lets `n` more bytes go.
    fn pace(&self, n: usize) {
        if self.rate == 0 {
            return;
        }
        // Each chunk goes at the end of its slot: no credit is saved up while idle.
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *next = (*next).max(Instant::now()) + Duration::from_secs_f64(n as f64 / self.rate as f64);
            *next
        };
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
    }
}

fn answer(out: &mut TcpStream, code: u16, why: &str, close: bool) -> Result<(), String> {
    let reason = match code {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Error",
    };
    let conn = if close { "Connection: close\r\n" } else { "" };
    let text = format!("HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\n{conn}\r\n{why}", why.len());
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_paths() {
        assert_eq!(parse_range("bytes=0-99"), Some((0, Some(99))));
        assert_eq!(parse_range("bytes=100-"), Some((100, None)));
        assert_eq!(parse_range("bytes=5-1"), None);
        assert_eq!(parse_range("items=0-1"), None);
        let req = |line: &str| parse(&format!("{line}\r\nHost: x\r\n\r\n"));
        assert!(req("GET /payload.bin HTTP/1.1").is_ok_and(|r| r.name == "payload.bin" && !r.close));
        assert!(req("GET /a%20b.bin HTTP/1.0").is_ok_and(|r| r.name == "a b.bin" && r.close));
        for bad in ["GET /../etc/passwd HTTP/1.1", "GET /%2e%2e HTTP/1.1", "GET /a%2fb HTTP/1.1", "GET / HTTP/1.1"] {
            assert_eq!(req(bad).err().map(|e| e.0), Some(404), "{bad}");
        }
        assert_eq!(req("POST /x HTTP/1.1").err().map(|e| e.0), Some(405));
    }
}

#[cfg(test)]
mod server {
    use super::*;
    use std::io::Read;

    fn ask(stream: &mut TcpStream, request: &str) -> (String, Vec<u8>) {
        stream.write_all(request.as_bytes()).unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let head = read_head(&mut r).unwrap().unwrap();
        let len: usize =
            (head.lines()).find_map(|l| l.strip_prefix("Content-Length: ")).map_or(0, |n| n.trim().parse().unwrap());
        let mut body = vec![0; if request.starts_with("HEAD") { 0 } else { len }];
        r.read_exact(&mut body).unwrap();
        (head, body)
    }

    #[test]
    fn serves_ranges_of_its_files_and_nothing_else() {
        let dir = crate::TempDir::new("webseed").unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("f.bin"), &data).unwrap();
        let w = WebSeed::start(Ipv4Addr::LOCALHOST, 0, dir.path(), 0).unwrap();
        let mut c = TcpStream::connect(w.addr).unwrap();
        // Two requests on one connection (keep-alive), a range each.
        let (head, body) = ask(&mut c, "GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 206") && head.contains("Content-Range: bytes 10-19/100000"), "{head}");
        assert_eq!(body, &data[10..20]);
        let (head, body) = ask(&mut c, "GET /f.bin HTTP/1.1\r\nRange: bytes=99990-\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
        assert_eq!(body, &data[99990..]);
        let (head, body) = ask(&mut c, "HEAD /f.bin HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("Content-Length: 100000") && body.is_empty());
        let (head, _) = ask(&mut c, "GET /f.bin HTTP/1.1\r\nRange: bytes=100000-\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 416"), "{head}");
        assert_eq!(w.sent("f.bin"), 20);
        for path in ["/../outside.bin", "/%2e%2e/outside.bin", "/nope.bin"] {
            let mut c = TcpStream::connect(w.addr).unwrap();
            let (head, _) = ask(&mut c, &format!("GET {path} HTTP/1.1\r\n\r\n"));
            assert!(head.starts_with("HTTP/1.1 404"), "{path}: {head}");
        }
        // A head without end is cut off, not read forever.
        let mut c = TcpStream::connect(w.addr).unwrap();
        c.write_all(&vec![b'a'; MAX_HEAD * 2]).unwrap();
        let mut rest = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert!(c.read_to_end(&mut rest).is_ok() && rest.is_empty(), "closed");
    }
}
