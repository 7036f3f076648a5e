//! A request head (request line and headers) parsed from bytes by `httparse`, with every framing
//! question decided before a byte of the body is read: how long the body is, whether the connection
//! stays open, whether the client waits for `100 Continue`. Ambiguous framing is refused, never guessed.

use odseed_proto::wire::ErrorCode;

/// A head larger than this (request line and headers together) is refused with 431.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// More header lines than this are refused with 431.
pub const MAX_HEADERS: usize = 32;

/// The parts of a request head the agent uses; everything else is dropped after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The declared body length (0 when there is none).
    pub content_length: u64,
    /// The client wants the connection kept open after the answer.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` and waits before sending its body.
    pub expect_continue: bool,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<Vec<u8>>,
}

impl Head {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// A head that cannot be served: the error code to answer with (the connection is then closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: &'static str,
}

fn refuse(code: ErrorCode, message: &'static str) -> Refusal {
    Refusal { code, message }
}

/// Parses the head at the start of `buf`: `Ok(None)` if more bytes are needed, else the head and
/// the number of bytes it took. The caller bounds `buf` by [`MAX_HEAD_BYTES`].
pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(ErrorCode::HeadTooLarge, "too many header lines"));
        }
        Err(httparse::Error::Version) if version_like(buf) => {
            return Err(refuse(ErrorCode::HttpVersion, "only HTTP/1.0 and HTTP/1.1 are served"));
        }
        Err(_) => return Err(refuse(ErrorCode::BadRequest, "malformed request head")),
    };
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version) else {
        return Err(refuse(ErrorCode::BadRequest, "malformed request line"));
    };
    let mut head = Head {
        method: method.to_string(),
        target: target.to_string(),
        minor_version,
        content_length: 0,
        keep_alive: minor_version == 1,
        expect_continue: false,
        authorization: None,
    };
    let mut length: Option<u64> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(refuse(ErrorCode::BadRequest, "more than one Content-Length"));
            }
            length = Some(content_length(h.value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(if req.headers.iter().any(|h| h.name.eq_ignore_ascii_case("content-length")) {
                refuse(ErrorCode::BadRequest, "both Transfer-Encoding and Content-Length")
            } else {
                refuse(ErrorCode::LengthRequired, "send the body with a Content-Length, not Transfer-Encoding")
            });
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                return Err(refuse(ErrorCode::ExpectationFailed, "only `Expect: 100-continue` is understood"));
            }
            head.expect_continue = minor_version == 1;
        } else if name.eq_ignore_ascii_case("authorization") && head.authorization.is_none() {
            head.authorization = Some(h.value.to_vec());
        }
    }
    head.content_length = length.unwrap_or(0);
    Ok(Some((head, used)))
}

/// A `Content-Length` value: digits only. One too large for 64 bits counts as the largest length,
/// which every limit refuses.
fn content_length(value: &[u8]) -> Result<u64, Refusal> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(refuse(ErrorCode::BadRequest, "Content-Length is not a number"));
    }
    Ok(digits.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0'))).unwrap_or(u64::MAX))
}

/// True when the request line ends in an `HTTP/x.y` version (so the version, not the line, is wrong).
fn version_like(buf: &[u8]) -> bool {
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    line.trim_ascii_end().rsplit(|b| *b == b' ').next().is_some_and(|v| v.starts_with(b"HTTP/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<(Head, usize)>, Refusal> {
        parse(text.as_bytes())
    }

    fn code(text: &str) -> ErrorCode {
        head(text).expect_err(text).code
    }

    #[test]
    fn reads_what_the_agent_needs() {
        let text = "PUT /v1/torrents/ab?x=1 HTTP/1.1\r\nHost: a\r\nauthorization: Bearer t\r\n\
                    Content-Length: 12\r\nExpect: 100-continue\r\n\r\nbody";
        let (h, used) = head(text).unwrap().unwrap();
        assert_eq!(used, text.len() - 4);
        assert_eq!((h.method.as_str(), h.path(), h.minor_version), ("PUT", "/v1/torrents/ab", 1));
        assert_eq!((h.content_length, h.keep_alive, h.expect_continue), (12, true, true));
        assert_eq!(h.authorization.as_deref(), Some(&b"Bearer t"[..]));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        let keep = |t: &str| head(t).unwrap().unwrap().0.keep_alive;
        assert!(keep("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nConnection: upgrade, Close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        for text in ["", "GE", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: a\r\n"] {
            assert_eq!(head(text), Ok(None), "{text:?}");
        }
    }

    #[test]
    fn ambiguous_or_bad_framing_is_refused() {
        assert_eq!(code("PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"), ErrorCode::BadRequest);
        assert_eq!(code("PUT / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"), ErrorCode::BadRequest);
        assert_eq!(code("PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), ErrorCode::BadRequest);
        assert_eq!(code("PUT / HTTP/1.1\r\nContent-Length:\r\n\r\n"), ErrorCode::BadRequest);
        assert_eq!(
            code("PUT / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
            ErrorCode::BadRequest
        );
        assert_eq!(code("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), ErrorCode::LengthRequired);
        assert_eq!(code("PUT / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n"), ErrorCode::ExpectationFailed);
        let huge = head("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n").unwrap().unwrap();
        assert_eq!(huge.0.content_length, u64::MAX);
    }

    #[test]
    fn only_http_1_is_served() {
        assert_eq!(code("GET / HTTP/2.0\r\n\r\n"), ErrorCode::HttpVersion);
        assert_eq!(code("GET / HTTP/1.2\r\n\r\n"), ErrorCode::HttpVersion);
        assert_eq!(code("GET / FTP/1.0\r\n\r\n"), ErrorCode::BadRequest);
        assert_eq!(code("GET /a\x1bb HTTP/1.1\r\n\r\n"), ErrorCode::BadRequest);
        assert_eq!(code("GET /\n/ HTTP/1.1\r\n\r\n"), ErrorCode::BadRequest);
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            text.push_str(&format!("X-{i}: a\r\n"));
        }
        text.push_str("\r\n");
        assert_eq!(code(&text), ErrorCode::HeadTooLarge);
    }
}
