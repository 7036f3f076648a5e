//! One HTTP exchange with a publisher's web UI (qBittorrent, deluge-web): plain `http://`, one
//! deadline over the whole exchange, the answer's size bounded, and errors as one line naming the
//! client.

use odseed_proto::printable::printable_line;
use odseed_proto::transmission::http1::{self, Response};
use serde_json::Value;
use std::time::Duration;

/// An answer larger than this is refused: 64 MiB holds the list of some 40,000 torrents.
pub const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// How long one exchange may take, connect to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Sends one request to `url`; `name` says which client in an error ("qBittorrent at URL").
pub fn send(
    name: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    max: u64,
) -> Result<Response, String> {
    http1::request(method, url, headers, body, TIMEOUT, max).map_err(|e| format!("{name}: {e}"))
}

/// `body` as JSON, or an error that says what came instead (an HTML login page, a proxy's error).
pub fn json(name: &str, what: &str, resp: &Response) -> Result<Value, String> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        let kind = resp.header("content-type").unwrap_or("no content type");
        let start = String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned();
        format!(
            "{name} answered {what} with something that is not JSON ({}, {} bytes: \"{}\"): {e}",
            printable_line(kind, 60),
            resp.body.len(),
            printable_line(&start, 60)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(headers: &[(&str, &str)], body: &[u8]) -> Response {
        Response {
            status: 200,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn what_is_not_json_is_named() {
        let r = resp(&[("content-type", "text/html")], b"<html><body>Login\n</body></html>");
        let e = json("qBittorrent at http://x", "torrents/info", &r).unwrap_err();
        assert!(e.contains("text/html") && e.contains("<html><body>Login") && !e.contains('\n'), "{e}");
    }
}
