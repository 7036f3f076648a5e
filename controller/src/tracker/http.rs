//! HTTP scrape (BEP 48): GET <announce URL with `announce` -> `scrape`>?info_hash=..&info_hash=..,
//! answered by a bencoded dictionary `files` keyed by the 20-byte hashes. Some trackers (WebTorrent's
//! `bittorrent-tracker`) write each key as the UTF-8 encoding of the hash read as Latin-1 text (every
//! byte >= 0x80 becomes two): such keys are mapped back. Any other key is a malformed answer.

use super::scrape::{Scrape, TrackerError};
use odseed_proto::bencode::{self, Value};
use odseed_proto::InfoHash;
use std::collections::HashMap;
use std::time::Duration;

/// Hashes per request (opentracker answers up to 64; URLs stay under ~4 KB).
pub const MAX_PER_REQUEST: usize = 64;
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// The scrape URL of an announce URL, if it follows the convention.
pub fn scrape_url(announce: &str) -> Option<String> {
    let (path, query) = announce.split_once('?').map_or((announce, None), |(p, q)| (p, Some(q)));
    let slash = path.rfind('/')?;
    let last = &path[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    let mut url = format!("{}/scrape{rest}", &path[..slash]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Some(url)
}

pub fn scrape(
    announce: &str,
    hashes: &[InfoHash],
    timeout: Duration,
) -> Result<HashMap<InfoHash, Scrape>, TrackerError> {
    let url = announce.to_string();
    let mut target = scrape_url(announce).ok_or_else(|| TrackerError::Unsupported { url: url.clone() })?;
    for (i, h) in hashes.iter().enumerate() {
        target.push(if i == 0 && !target.contains('?') { '?' } else { '&' });
        target.push_str("info_hash=");
        h.as_bytes().iter().for_each(|b| target.push_str(&format!("%{b:02X}")));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(2)
        .build()
        .into();
    let unreachable = |e: ureq::Error| TrackerError::Unreachable { url: url.clone(), detail: e.to_string() };
    let mut resp = agent.get(&target).call().map_err(unreachable)?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().with_config().limit(MAX_ANSWER_BYTES).read_to_vec().map_err(unreachable)?;
    if status != 200 {
        return Err(TrackerError::BadAnswer { url, detail: format!("HTTP {status}") });
    }
    parse(&body, hashes).map_err(|detail| match detail {
        Parsed::Failure(reason) => TrackerError::Failure { url: url.clone(), reason },
        Parsed::Bad(detail) => TrackerError::BadAnswer { url: url.clone(), detail },
    })
}

pub enum Parsed {
    Failure(String),
    Bad(String),
}

/// Reads a scrape answer; only the asked `hashes` are kept.
pub fn parse(body: &[u8], hashes: &[InfoHash]) -> Result<HashMap<InfoHash, Scrape>, Parsed> {
    // opentracker lists a scrape's hashes in the order they were asked: keys need not be sorted.
    let root = bencode::decode_unsorted(body).map_err(|e| Parsed::Bad(e.to_string()))?;
    if let Some(reason) = root.get("failure reason").and_then(Value::as_bytes) {
        return Err(Parsed::Failure(String::from_utf8_lossy(reason).chars().take(200).collect()));
    }
    let Some(Value::Dict(files, _)) = root.get("files") else {
        return Err(Parsed::Bad("no `files` dictionary".into()));
    };
    let mut out = HashMap::new();
    for (key, v) in files {
        let hash = key_hash(key)
            .ok_or_else(|| Parsed::Bad(format!("a key of `files` is {} bytes, not an info hash", key.len())))?;
        if !hashes.contains(&hash) {
            continue;
        }
        let n = |k: &str| v.get(k).and_then(Value::as_int).and_then(|i| u32::try_from(i).ok());
        match (n("complete"), n("incomplete")) {
            (Some(seeders), Some(leechers)) => {
                out.insert(hash, Scrape { seeders, leechers, downloaded: n("downloaded").unwrap_or(0) });
            }
            _ => return Err(Parsed::Bad(format!("counts of {hash} missing or negative"))),
        }
    }
    Ok(out)
}

/// The info hash a key of `files` names: its 20 raw bytes, or 20 characters up to U+00FF in UTF-8.
fn key_hash(key: &[u8]) -> Option<InfoHash> {
    if let Ok(raw) = <[u8; 20]>::try_from(key) {
        return Some(InfoHash::from_bytes(raw));
    }
    let text = std::str::from_utf8(key).ok()?;
    let latin1: Vec<u8> = text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect::<Option<_>>()?;
    Some(InfoHash::from_bytes(latin1.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use odseed_proto::bencode::Owned;

    #[test]
    fn scrape_urls_follow_the_convention() {
        assert_eq!(scrape_url("http://t:6969/announce").as_deref(), Some("http://t:6969/scrape"));
        assert_eq!(scrape_url("http://t/x/announce.php?k=1").as_deref(), Some("http://t/x/scrape.php?k=1"));
        assert_eq!(scrape_url("http://t/a"), None);
        assert_eq!(scrape_url("http://t/announce/x"), None);
    }

    #[test]
    fn reads_answers_and_refuses_bad_ones() {
        let h = InfoHash::from_bytes([7; 20]);
        let counts =
            Owned::dict([("complete", Owned::Int(3)), ("incomplete", Owned::Int(8)), ("downloaded", Owned::Int(1))]);
        let mut files = std::collections::BTreeMap::new();
        files.insert(vec![7u8; 20], counts);
        files.insert(vec![9u8; 20], Owned::dict([("complete", Owned::Int(1)), ("incomplete", Owned::Int(1))]));
        let body = Owned::dict([("files", Owned::Dict(files))]).encode();
        let got = parse(&body, &[h]).ok().unwrap();
        assert_eq!(got[&h], Scrape { seeders: 3, leechers: 8, downloaded: 1 });
        assert_eq!(got.len(), 1, "only the asked hashes");

        let failure = Owned::dict([("failure reason", Owned::str("not whitelisted"))]).encode();
        assert!(matches!(parse(&failure, &[h]), Err(Parsed::Failure(r)) if r == "not whitelisted"));
        for bad in [&b"<html>"[..], &body[..body.len() - 3], b"de", b"d5:filesi1ee"] {
            assert!(matches!(parse(bad, &[h]), Err(Parsed::Bad(_))), "{:?}", String::from_utf8_lossy(bad));
        }
        // A key that is no hash, raw or as text, makes the whole answer malformed (never "no peers").
        let mut odd = std::collections::BTreeMap::new();
        odd.insert(vec![7u8; 19], Owned::dict([("complete", Owned::Int(1)), ("incomplete", Owned::Int(1))]));
        let odd = Owned::dict([("files", Owned::Dict(odd))]).encode();
        assert!(matches!(parse(&odd, &[h]), Err(Parsed::Bad(d)) if d.contains("19 bytes")));
        let negative = body.clone();
        let negative = String::from_utf8_lossy(&negative).replace("i3e", "i-3e");
        assert!(parse(negative.as_bytes(), &[h]).is_err());
    }

    #[test]
    fn keys_written_as_utf8_text_are_mapped_back() {
        let raw: [u8; 20] = std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(0x70));
        let h = InfoHash::from_bytes(raw);
        let text: String = raw.iter().map(|&b| char::from(b)).collect();
        assert!(text.len() > 20, "the hash has bytes over 0x7f");
        assert_eq!(key_hash(text.as_bytes()), Some(h));
        assert_eq!(key_hash(&raw), Some(h));
        // Text with a character past U+00FF, too few or too many characters, or not UTF-8: no hash.
        for bad in ["\u{100}".repeat(20), "a".repeat(19), "é".repeat(21)] {
            assert_eq!(key_hash(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(key_hash(&[0xff; 21]), None);
        let mut files = std::collections::BTreeMap::new();
        files.insert(text.into_bytes(), Owned::dict([("complete", Owned::Int(2)), ("incomplete", Owned::Int(5))]));
        let body = Owned::dict([("files", Owned::Dict(files))]).encode();
        assert_eq!(parse(&body, &[h]).ok().unwrap()[&h], Scrape { seeders: 2, leechers: 5, downloaded: 0 });
    }
}
