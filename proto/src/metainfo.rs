//! Torrent metainfo (BEP 3, v1): validation of a `.torrent` and its info hash, and creation of a
//! single-file torrent (for the lab and tests). A hybrid v1+v2 torrent (BEP 52: `meta version` 2 and
//! a `file tree` beside the v1 keys) is read by its v1 half and marked [`Metainfo::hybrid`]; a
//! v2-only one (no `pieces`) is [`MetainfoError::Unsupported`]: no Transmission opens it. Every file path a torrent names must stay inside the
//! download directory: components like `..`, `.`, empty ones or ones holding `/`, `\` or NUL are refused.

use crate::bencode::{self, Owned, Value};
use crate::infohash::InfoHash;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest piece length accepted. transmission-daemon 3.00 counts a piece's 16 KiB blocks in 16
/// bits: at 2^30 (65,536 blocks) the count wraps to 0 and it dies dividing by it, as it does for a
/// multiple of 2^32 (truncated to 0); 2^29 is seeded. transmission-daemon 4.1 refuses multiples of
/// 2^32 and silently truncates 2^32 + 16384 to 16 KiB (a different torrent). Real torrents stay far
/// below (BEP 52 clients offer up to 256 MiB).
pub const MAX_PIECE_LENGTH: u64 = 1 << 29;

/// What a validated torrent holds that odseed uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    pub name: String,
    /// Sum of the file lengths, in bytes.
    pub total_size: u64,
    pub piece_length: u64,
    /// Paths relative to the download directory (`name` or `name/a/b`).
    pub files: Vec<(PathBuf, u64)>,
    /// `announce` then `announce-list`, without duplicates.
    pub trackers: Vec<String>,
    /// A hybrid v1+v2 torrent (BEP 52): transmission-daemon 4.0 and later open it, 3.00 does not.
    pub hybrid: bool,
}

/// Why bytes are not a usable torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetainfoError {
    /// Not bencode at all.
    Bencode(bencode::DecodeError),
    /// Bencode, but not a v1 torrent (the message names the field).
    Invalid(String),
    /// A file name would escape the download directory.
    UnsafePath(String),
    /// A well-formed torrent that no transmission-daemon can seed (v2-only).
    Unsupported(String),
}

impl fmt::Display for MetainfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetainfoError::Bencode(e) => write!(f, "not a torrent: {e}"),
            MetainfoError::Invalid(m) => write!(f, "not a valid v1 torrent: {m}"),
            MetainfoError::UnsafePath(p) => write!(f, "unsafe file name in torrent: {p:?}"),
            MetainfoError::Unsupported(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for MetainfoError {}

fn invalid(m: impl Into<String>) -> MetainfoError {
    MetainfoError::Invalid(m.into())
}

/// Why a v2-only torrent is refused, for users.
pub const V2_ONLY: &str = "a v2-only torrent (BEP 52, no v1 piece hashes): no transmission-daemon can seed it; \
make it hybrid v1+v2 (libtorrent's default) or v1";

/// Validates a `.torrent` and reads what odseed needs from it.
pub fn parse(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
    let root = bencode::decode(bytes).map_err(MetainfoError::Bencode)?;
    if root.raw_dict().is_none() {
        return Err(invalid("top level is not a dictionary"));
    }
    let info = root.get("info").ok_or_else(|| invalid("missing `info` dictionary"))?;
    let raw_info = info.raw_dict().ok_or_else(|| invalid("`info` is not a dictionary"))?;
    let info_hash = InfoHash::from_bytes(sha1_smol::Sha1::from(raw_info).digest().bytes());

    let name = info.get("name").and_then(Value::as_bytes).ok_or_else(|| invalid("missing `info.name`"))?;
    let name = safe_component(name)?;
    // Transmission prefers the `.utf-8` variants when present: they must be safe too.
    if let Some(alt) = info.get("name.utf-8") {
        safe_component(alt.as_bytes().ok_or_else(|| invalid("`info.name.utf-8` is not a string"))?)?;
    }
    let piece_length = positive(info.get("piece length"), "info.piece length")?;
    if piece_length > MAX_PIECE_LENGTH {
        return Err(invalid(format!("`info.piece length` {piece_length} is over {MAX_PIECE_LENGTH} (512 MiB)")));
    }
    let v2 = info.get("meta version").and_then(Value::as_int) == Some(2);
    let hybrid = v2 && info.get("file tree").is_some();
    let pieces = match info.get("pieces") {
        Some(p) => p.as_bytes().ok_or_else(|| invalid("`info.pieces` is not a string"))?,
        None if v2 => return Err(MetainfoError::Unsupported(V2_ONLY.into())),
        None => return Err(invalid("missing `info.pieces`")),
    };
    if pieces.is_empty() || pieces.len() % 20 != 0 {
        return Err(invalid("`info.pieces` is not a non-empty multiple of 20 bytes"));
    }

    let files = match (info.get("length"), info.get("files")) {
        (Some(len), None) => vec![(PathBuf::from(&name), non_negative(len, "info.length")?)],
        (None, Some(list)) => multi_files(&name, list)?,
        _ => return Err(invalid("`info` needs exactly one of `length` and `files`")),
    };
    let total_size = files.iter().try_fold(0u64, |acc, (_, l)| acc.checked_add(*l));
    let total_size = total_size.ok_or_else(|| invalid("total length overflows"))?;
    if total_size == 0 {
        return Err(invalid("the torrent holds no data (total length 0)"));
    }
    let expected_pieces = total_size.div_ceil(piece_length).max(1);
    if expected_pieces != (pieces.len() / 20) as u64 {
        return Err(invalid(format!(
            "`info.pieces` holds {} hashes but {} bytes in pieces of {} need {}",
            pieces.len() / 20,
            total_size,
            piece_length,
            expected_pieces
        )));
    }

    Ok(Metainfo { info_hash, name, total_size, piece_length, files, trackers: trackers(&root), hybrid })
}

fn multi_files(name: &str, list: &Value<'_>) -> Result<Vec<(PathBuf, u64)>, MetainfoError> {
    let list = list.as_list().ok_or_else(|| invalid("`info.files` is not a list"))?;
    if list.is_empty() {
        return Err(invalid("`info.files` is empty"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, f) in list.iter().enumerate() {
        let length = non_negative(f.get("length").unwrap_or(&Value::Int(-1)), "info.files[].length")?;
        let parts = f.get("path").and_then(Value::as_list);
        let parts = parts
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid(format!("`info.files[{i}].path` is missing or empty")))?;
        let mut path = PathBuf::from(name);
        for p in parts {
            let p = p.as_bytes().ok_or_else(|| invalid(format!("`info.files[{i}].path` holds a non-string")))?;
            path.push(safe_component(p)?);
        }
        for p in f.get("path.utf-8").and_then(Value::as_list).unwrap_or(&[]) {
            safe_component(
                p.as_bytes().ok_or_else(|| invalid(format!("`info.files[{i}].path.utf-8` holds a non-string")))?,
            )?;
        }
        out.push((path, length));
    }
    Ok(out)
}

/// A single path component that cannot leave its parent directory.
fn safe_component(raw: &[u8]) -> Result<String, MetainfoError> {
    let s = std::str::from_utf8(raw).map_err(|_| invalid("a file name is not UTF-8"))?;
    let unsafe_name = s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\', '\0']);
    if unsafe_name {
        return Err(MetainfoError::UnsafePath(s.to_string()));
    }
    Ok(s.to_string())
}

fn non_negative(v: &Value<'_>, field: &str) -> Result<u64, MetainfoError> {
    v.as_int()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| invalid(format!("`{field}` is not a non-negative integer")))
}

fn positive(v: Option<&Value<'_>>, field: &str) -> Result<u64, MetainfoError> {
    v.and_then(Value::as_int)
        .and_then(|i| u64::try_from(i).ok())
        .filter(|&i| i > 0)
        .ok_or_else(|| invalid(format!("`{field}` is missing or not a positive integer")))
}

fn trackers(root: &Value<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |v: &Value<'_>| {
        if let Some(url) = v.as_bytes().and_then(|b| std::str::from_utf8(b).ok()) {
            if !url.is_empty() && !out.iter().any(|u| u == url) {
                out.push(url.to_string());
            }
        }
    };
    if let Some(a) = root.get("announce") {
        push(a);
    }
    for tier in root.get("announce-list").and_then(Value::as_list).unwrap_or(&[]) {
        tier.as_list().unwrap_or(&[]).iter().for_each(&mut push);
    }
    out
}

/// Builds a single-file torrent for the file at `content`, hashing it in `piece_length` pieces.
pub fn create_single_file(
    content: &Path,
    name: &str,
    piece_length: u64,
    trackers: &[String],
) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(content)?;
    let mut pieces = Vec::new();
    let mut buf = vec![0u8; piece_length as usize];
    let mut length = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 && length > 0 {
            break;
        }
        pieces.extend_from_slice(&sha1_smol::Sha1::from(&buf[..filled]).digest().bytes());
        length += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    let info = Owned::dict([
        ("length", Owned::Int(length as i64)),
        ("name", Owned::str(name)),
        ("piece length", Owned::Int(piece_length as i64)),
        ("pieces", Owned::Bytes(pieces)),
    ]);
    let mut root = Owned::dict([("info", info), ("created by", Owned::str("odseed"))]);
    if let (Owned::Dict(map), Some(first)) = (&mut root, trackers.first()) {
        map.insert(b"announce".to_vec(), Owned::str(first));
        let tiers = trackers.iter().map(|t| Owned::List(vec![Owned::str(t)])).collect();
        map.insert(b"announce-list".to_vec(), Owned::List(tiers));
    }
    Ok(root.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn torrent(info: Owned) -> Vec<u8> {
        Owned::dict([("announce", Owned::str("http://t/announce")), ("info", info)]).encode()
    }

    fn single(name: &str, length: i64) -> Owned {
        Owned::dict([
            ("name", Owned::str(name)),
            ("length", Owned::Int(length)),
            ("piece length", Owned::Int(16384)),
            ("pieces", Owned::Bytes(vec![0; 20])),
        ])
    }

    fn multi(path: &[&str]) -> Owned {
        let file = Owned::dict([
            ("length", Owned::Int(10)),
            ("path", Owned::List(path.iter().map(|p| Owned::str(p)).collect())),
        ]);
        Owned::dict([
            ("name", Owned::str("dir")),
            ("files", Owned::List(vec![file])),
            ("piece length", Owned::Int(16384)),
            ("pieces", Owned::Bytes(vec![0; 20])),
        ])
    }

    #[test]
    fn reads_a_single_file_torrent() {
        let m = parse(&torrent(single("a.bin", 100))).unwrap();
        assert_eq!((m.name.as_str(), m.total_size), ("a.bin", 100));
        assert_eq!(m.trackers, vec!["http://t/announce".to_string()]);
        let raw_info = single("a.bin", 100).encode();
        assert_eq!(m.info_hash.as_bytes(), &sha1_smol::Sha1::from(&raw_info).digest().bytes());
    }

    #[test]
    fn reads_nested_paths() {
        let m = parse(&torrent(multi(&["sub", "f.txt"]))).unwrap();
        assert_eq!(m.files, vec![(PathBuf::from("dir/sub/f.txt"), 10)]);
    }

    #[test]
    fn refuses_paths_that_escape() {
        for bad in [&["..", "x"][..], &["a", "/etc"], &["."], &[""], &["a\\b"], &["a\0"]] {
            assert!(matches!(parse(&torrent(multi(bad))), Err(MetainfoError::UnsafePath(_))), "{bad:?}");
        }
        assert!(matches!(parse(&torrent(single("..", 1))), Err(MetainfoError::UnsafePath(_))));
        assert!(matches!(parse(&torrent(single("/abs", 1))), Err(MetainfoError::UnsafePath(_))));
        let mut alt = single("fine", 1);
        if let Owned::Dict(d) = &mut alt {
            d.insert(b"name.utf-8".to_vec(), Owned::str("../evil"));
        }
        assert!(matches!(parse(&torrent(alt)), Err(MetainfoError::UnsafePath(_))), "name.utf-8 is checked");
    }

    #[test]
    fn refuses_inconsistent_torrents() {
        assert!(parse(&torrent(single("a", 16385))).is_err(), "two pieces needed, one given");
        assert!(parse(&torrent(single("a", -1))).is_err());
        assert!(parse(&torrent(single("a", 0))).is_err(), "no data");
        assert!(parse(b"d4:infoi1ee").is_err());
        assert!(parse(b"le").is_err());
        let full = torrent(single("a", 100));
        assert!(matches!(parse(&full[..full.len() - 1]), Err(MetainfoError::Bencode(_))));
    }

    #[test]
    fn mutated_torrents_never_panic() {
        let base = torrent(multi(&["sub", "f.txt"]));
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut m = base.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % m.len();
                match next() % 3 {
                    0 => m[i] = next() as u8,
                    1 => m.truncate(i),
                    _ => m.insert(i, b"0123456789:iedl-"[(next() % 16) as usize]),
                }
                if m.is_empty() {
                    break;
                }
            }
            let _ = parse(&m);
        }
    }

    #[test]
    fn creates_torrents_it_can_read() {
        let dir = std::env::temp_dir().join(format!("odseed-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.bin");
        std::fs::write(&f, vec![7u8; 40000]).unwrap();
        let bytes = create_single_file(&f, "c.bin", 16384, &["http://x/announce".into()]).unwrap();
        let m = parse(&bytes).unwrap();
        assert_eq!((m.total_size, m.piece_length), (40000, 16384));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
