//! Content to share: a file of pseudo-random bytes (fast, reproducible from a seed), and its torrent.

use odseed_proto::metainfo::{self, Metainfo};
use std::io::Write;
use std::path::Path;

/// Writes `size` pseudo-random bytes (xorshift64 from `seed`) to `path`.
pub fn write_file(path: &Path, size: u64, seed: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = seed | 1;
    let mut left = size;
    let mut buf = Vec::with_capacity(1 << 16);
    while left > 0 {
        buf.clear();
        while buf.len() < (1 << 16) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.extend_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()
}

/// A torrent: its bytes and what they say.
pub struct Made {
    pub bytes: Vec<u8>,
    pub meta: Metainfo,
}

/// Writes `dir/name` (`size` bytes) and makes its single-file torrent announcing to `trackers`.
pub fn make(dir: &Path, name: &str, size: u64, seed: u64, trackers: &[String]) -> Result<Made, String> {
    make_in_pieces(dir, name, size, seed, trackers, piece_size(size))
}

/// [`make`], in pieces of `piece` bytes.
pub fn make_in_pieces(
    dir: &Path,
    name: &str,
    size: u64,
    seed: u64,
    trackers: &[String],
    piece: u64,
) -> Result<Made, String> {
    let path = dir.join(name);
    write_file(&path, size, seed).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    torrent_in_pieces(&path, name, trackers, piece)
}

/// The piece size `transmission-create` (3.00) chooses for `size` bytes, as a publisher making a
/// torrent with it would have: 32 KiB under 50 MiB, 64 KiB from 50 MiB, 128 KiB from 150 MiB,
/// 256 KiB from 350 MiB, 512 KiB from 512 MiB, 1 MiB from 1 GiB, 2 MiB from 2 GiB.
pub fn piece_size(size: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    const STEPS: [(u64, u64); 6] = [
        (2048 * MIB, 2 << 20),
        (1024 * MIB, 1 << 20),
        (512 * MIB, 512 << 10),
        (350 * MIB, 256 << 10),
        (150 * MIB, 128 << 10),
        (50 * MIB, 64 << 10),
    ];
    STEPS.iter().find(|(from, _)| size >= *from).map_or(32 << 10, |(_, piece)| *piece)
}

/// The torrent of an existing file, in pieces of [`piece_size`].
pub fn torrent_for(path: &Path, name: &str, trackers: &[String]) -> Result<Made, String> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    torrent_in_pieces(path, name, trackers, piece_size(size))
}

fn torrent_in_pieces(path: &Path, name: &str, trackers: &[String], piece: u64) -> Result<Made, String> {
    let bytes = metainfo::create_single_file(path, name, piece, trackers)
        .map_err(|e| format!("cannot hash {}: {e}", path.display()))?;
    let meta = metainfo::parse(&bytes).map_err(|e| e.to_string())?;
    Ok(Made { bytes, meta })
}

/// What kind of torrent libtorrent makes ([`libtorrent_torrent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// v1 and v2 hashes (BEP 52), libtorrent 2.0's default.
    Hybrid,
    /// v2 hashes only.
    V2Only,
}

/// The torrent libtorrent (Debian's python3-libtorrent) makes of the file at `path`: software
/// nobody here wrote, as a publisher using qBittorrent would have.
pub fn libtorrent_torrent(path: &Path, trackers: &[String], flavour: Flavour) -> Result<Vec<u8>, String> {
    const SCRIPT: &str = "import libtorrent as lt, os, sys\n\
        path, flags, trackers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]\n\
        fs = lt.file_storage()\n\
        lt.add_files(fs, path)\n\
        t = lt.create_torrent(fs, 0, flags)\n\
        [t.add_tracker(u, i) for i, u in enumerate(trackers)]\n\
        lt.set_piece_hashes(t, os.path.dirname(path))\n\
        sys.stdout.buffer.write(lt.bencode(t.generate()))\n";
    let flags = match flavour {
        Flavour::Hybrid => "0",
        Flavour::V2Only => "32", // lt.create_torrent.v2_only
    };
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(path)
        .arg(flags)
        .args(trackers)
        .output()
        .map_err(|e| format!("cannot run /usr/bin/python3 (python3-libtorrent): {e}"))?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(format!("libtorrent could not make a torrent: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out.stdout)
}

/// `made` with a BEP 19 `url-list` of one URL (a web seed): a key after `info`, so the info hash
/// stays what it was.
pub fn with_url_list(made: Made, url: &str) -> Result<Made, String> {
    let mut bytes = made.bytes;
    // The metainfo is a canonical dictionary whose last key is `info` (checked by parsing again).
    if bytes.pop() != Some(b'e') {
        return Err("a metainfo that is not a dictionary".into());
    }
    bytes.extend_from_slice(format!("8:url-list{}:{url}e", url.len()).as_bytes());
    let meta = metainfo::parse(&bytes).map_err(|e| format!("url-list: {e}"))?;
    if meta.info_hash != made.meta.info_hash {
        return Err("url-list: the info hash changed".into());
    }
    Ok(Made { bytes, meta })
}

#[cfg(test)]
mod tests {
    /// The sizes `transmission-create` 3.00 was seen to choose (transmission-show "Piece Size").
    #[test]
    fn pieces_are_sized_as_transmission_create_sizes_them() {
        const MIB: u64 = 1 << 20;
        for (size, kib) in [
            (0, 32),
            (8 * MIB, 32),
            (50 * MIB - 1, 32),
            (50 * MIB, 64),
            (64 * MIB, 64),
            (150 * MIB, 128),
            (349 * MIB, 128),
            (350 * MIB, 256),
            (512 * MIB, 512),
            (1024 * MIB, 1024),
            (4096 * MIB, 2048),
        ] {
            assert_eq!(super::piece_size(size), kib << 10, "{size} bytes");
        }
    }
}
