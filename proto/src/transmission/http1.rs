//! A minimal blocking HTTP/1.1 client for plain `http://` URLs: one request per connection, bodies
//! delimited by Content-Length, chunked encoding or the connection's close, and one deadline over the
//! whole exchange. It exists so the agent binary reaches its daemon's RPC on 127.0.0.1 without a full
//! HTTP client (ureq and its `http` types are ~100 KB of the agent's 1 MiB budget).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const MAX_HEAD_BYTES: usize = 64 * 1024;

/// An answer: status, headers (names lowercased) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `name=value` of the first non-empty cookie a `Set-Cookie` header sets whose name
    /// `wanted` accepts (a web UI's session).
    pub fn cookie(&self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).find_map(|(_, v)| {
            let pair = v.split(';').next()?.trim();
            let (name, value) = pair.split_once('=')?;
            (wanted(name.trim()) && !value.is_empty()).then(|| pair.to_string())
        })
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Splits `http://host:port/path` into (`host:port`, `/path`).
pub fn split_url(url: &str) -> io::Result<(String, String)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return Err(bad("bad host in URL"));
    }
    let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// Sends one request and reads the whole answer, all within `timeout`; bodies over `max_body` fail.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    max_body: u64,
) -> io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let (authority, path) = split_url(url)?;
    let addr = authority.to_socket_addrs()?.next().ok_or_else(|| bad("host has no address"))?;
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        if k.contains(['\r', '\n']) || v.contains(['\r', '\n']) {
            return Err(bad("header with a line break"));
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut reader = BufReader::new(Deadline { stream, deadline });
    reader.get_mut().write_all(head.as_bytes())?;
    reader.get_mut().write_all(body)?;

    read_response(&mut reader, method, max_body)
}

/// Reads one answer to a `method` request from `reader`: status, headers, and a body of at most
/// `max_body` bytes (by `Content-Length`, chunked, or up to the end).
pub fn read_response(reader: &mut impl BufRead, method: &str, max_body: u64) -> io::Result<Response> {
    // Interim 1xx answers (100 Continue) come before the real one.
    let (status, headers) = loop {
        let (status, headers) = read_head(reader)?;
        if !(100..200).contains(&status) {
            break (status, headers);
        }
    };
    let mut resp = Response { status, headers, body: Vec::new() };
    let too_large = || bad(format!("answer body over {max_body} bytes"));
    let mut line = String::new();
    if method == "HEAD" || status == 204 || status == 304 {
        // No body, whatever the headers say.
    } else if resp.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            read_line(reader, &mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                break;
            }
            if size > max_body - resp.body.len() as u64 {
                return Err(too_large());
            }
            let before = resp.body.len();
            reader.take(size).read_to_end(&mut resp.body)?;
            if ((resp.body.len() - before) as u64) < size {
                return Err(bad("chunk cut short"));
            }
            line.clear();
            read_line(reader, &mut line)?;
            if line != "\r\n" {
                return Err(bad("no line break after a chunk"));
            }
        }
    } else if let Some(len) = resp.header("content-length") {
        let len: u64 = len.parse().map_err(|_| bad("bad Content-Length"))?;
        if len > max_body {
            return Err(too_large());
        }
        reader.take(len).read_to_end(&mut resp.body)?;
        if (resp.body.len() as u64) < len {
            return Err(bad("answer body cut short"));
        }
    } else {
        reader.take(max_body + 1).read_to_end(&mut resp.body)?;
        if resp.body.len() as u64 > max_body {
            return Err(too_large());
        }
    }
    Ok(resp)
}

/// The status line and headers (names lowercased) of one answer.
fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    read_line(reader, &mut line)?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse::<u16>().map_err(|_| bad("bad status line"))?,
        _ => return Err(bad("not an HTTP/1.x answer")),
    };
    let mut headers = Vec::new();
    let mut head_bytes = line.len();
    loop {
        line.clear();
        read_line(reader, &mut line)?;
        head_bytes += line.len();
        if head_bytes > MAX_HEAD_BYTES {
            return Err(bad("answer headers too large"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, headers));
        }
        let (k, v) = l.split_once(':').ok_or_else(|| bad("bad header line"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

fn read_line(r: &mut impl BufRead, line: &mut String) -> io::Result<()> {
    let n = r.take(MAX_HEAD_BYTES as u64).read_line(line)?;
    if n == 0 {
        return Err(bad("connection closed mid-answer"));
    }
    Ok(())
}

/// A stream whose every read and write must finish by `deadline`.
struct Deadline {
    stream: TcpStream,
    deadline: Instant,
}

impl Deadline {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        Ok(left)
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buf).map_err(timed_out)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buf).map_err(timed_out)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Linux reports a socket timeout as EAGAIN; call it what it is.
fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock => io::Error::new(io::ErrorKind::TimedOut, "timed out"),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let set = |cookies: &[&str]| Response {
            status: 200,
            headers: cookies.iter().map(|c| ("set-cookie".to_string(), c.to_string())).collect(),
            body: Vec::new(),
        };
        let r = set(&["other=1; path=/", "QBT_SID_8080=abc/+=; HttpOnly; path=/"]);
        assert_eq!(r.cookie(|n| n == "SID" || n.starts_with("QBT_SID")).as_deref(), Some("QBT_SID_8080=abc/+="));
        assert_eq!(r.cookie(|n| n == "_session_id"), None);
        assert_eq!(set(&["SID=; path=/"]).cookie(|n| n == "SID"), None, "an empty one");
    }
    use std::net::TcpListener;

    /// Serves one connection with `answer` (raw bytes) and returns what the client sent.
    fn serve_once(answer: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/rpc", l.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            // Read the whole request (head, then Content-Length bytes) before answering.
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let complete = |got: &[u8]| {
                let text = String::from_utf8_lossy(got);
                let Some(end) = text.find("\r\n\r\n") else { return false };
                let len = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                got.len() >= end + 4 + len
            };
            while !complete(&got) {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            got
        });
        (url, t)
    }

    fn ask(url: &str) -> io::Result<Response> {
        request("POST", url, &[("X-A", "1")], b"hello", Duration::from_secs(5), 1000)
    }

    #[test]
    fn reads_content_length_chunked_and_close_delimited_bodies() {
        let (url, t) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Id: abc\r\n\r\nok");
        let r = ask(&url).unwrap();
        assert_eq!((r.status, r.body.as_slice(), r.header("x-id")), (200, &b"ok"[..], Some("abc")));
        let sent = String::from_utf8(t.join().unwrap()).unwrap();
        assert!(
            sent.starts_with("POST /rpc HTTP/1.1\r\n")
                && sent.contains("X-A: 1\r\n")
                && sent.ends_with("\r\n\r\nhello")
        );

        let (url, _t) = serve_once(
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n",
        );
        let r = ask(&url).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (409, &b"abcde"[..]));

        let (url, _t) = serve_once(b"HTTP/1.0 200 OK\r\n\r\nuntil close");
        assert_eq!(ask(&url).unwrap().body, b"until close");

        let (url, _t) = serve_once(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx");
        let r = ask(&url).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"x"[..]), "1xx skipped, no reason phrase");

        let (url, _t) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
        let r = request("HEAD", &url, &[], b"", Duration::from_secs(5), 10).unwrap();
        assert!(r.body.is_empty(), "HEAD has no body whatever Content-Length says");
    }

    #[test]
    fn refuses_broken_or_oversized_answers() {
        for answer in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nx",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            let (url, _t) = serve_once(answer);
            assert!(ask(&url).is_err(), "{:?} accepted", String::from_utf8_lossy(answer));
        }
        assert!(split_url("https://x/").is_err());
        assert_eq!(split_url("http://h/p").unwrap(), ("h:80".to_string(), "/p".to_string()));
    }

    #[test]
    fn a_silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let e = request("GET", &url, &[], b"", Duration::from_millis(300), 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        drop(l);
    }
}
