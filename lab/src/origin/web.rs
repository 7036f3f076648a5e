//! What the lab's drivers of qBittorrent and deluge-web send: one HTTP exchange to 127.0.0.1,
//! bounded in time and size.

use odseed_proto::transmission::http1::{self, Response};
use std::time::Duration;

pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, String> {
    http1::request(method, url, headers, body, Duration::from_secs(20), 64 << 20).map_err(|e| format!("{url}: {e}"))
}

/// A multipart/form-data body of text `fields` and one file part; (content type, body).
pub fn multipart(fields: &[(&str, &str)], file_field: &str, file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "odseedlab7d1c2b3a4f5e6";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/x-bittorrent\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend(file);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
