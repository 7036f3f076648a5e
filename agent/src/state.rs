//! The desired state: which torrents this agent must seed, each with its metainfo, persisted as
//! `<state_dir>/torrents/<info hash>.torrent`; only names and sizes are kept in memory. Each change is an atomic file write or removal made
//! before the change is acknowledged, so a crash of the agent, the daemon or the machine loses nothing.

use odseed_proto::fsutil::write_atomic;
use odseed_proto::infohash::InfoHash;
use odseed_proto::metainfo::{self, Metainfo};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// One torrent the agent must seed. Its metainfo stays on disk ([`Desired::metainfo`]).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// The size of its `.torrent`, in bytes.
    pub bytes: u64,
    /// The size of its content, in bytes.
    pub size: u64,
}

/// How much the desired set may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_torrents: usize,
    /// The `.torrent` files together, in bytes (transmission-daemon holds their piece hashes in RAM).
    pub max_total_bytes: u64,
}

/// Why a torrent was not recorded.
#[derive(Debug)]
pub enum InsertError {
    /// It would take the set past one of its [`Bounds`].
    Full(String),
    /// Its files would overlap those of a torrent already recorded.
    Overlap {
        other: InfoHash,
        path: PathBuf,
    },
    Io(io::Error),
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::Full(m) => f.write_str(m),
            InsertError::Overlap { other, path } => {
                write!(f, "its file {} is also a file or directory of {other}, seeded here", path.display())
            }
            InsertError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A file in `<state_dir>/torrents` larger than this is not a torrent the agent wrote.
const MAX_FILE_BYTES: u64 = 256 << 20;

/// The set of torrents to seed, in memory (names and sizes) and on disk (the metainfo).
#[derive(Debug)]
pub struct Desired {
    dir: PathBuf,
    entries: Mutex<BTreeMap<InfoHash, Entry>>,
}

impl Desired {
    /// Opens (creating) `<state_dir>/torrents` and checks every torrent in it. A file that no longer
    /// parses is renamed to `*.bad` and reported, never deleted.
    pub fn open(state_dir: &Path) -> io::Result<Desired> {
        let dir = state_dir.join("torrents");
        std::fs::create_dir_all(&dir)?;
        let mut entries = BTreeMap::new();
        for item in std::fs::read_dir(&dir)? {
            let path = item?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with('.') && name.contains(".tmp-") {
                // A write cut short by a crash: the rename never happened, so it was never acknowledged.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("torrent") {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let bytes = match read_bounded(&path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => None,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            };
            match bytes.as_deref().map(|b| (metainfo::parse(b), b.len() as u64)) {
                Some((Ok(m), bytes)) if m.info_hash.to_string() == stem => {
                    entries.insert(m.info_hash, Entry { name: m.name, bytes, size: m.total_size });
                }
                _ => {
                    log::warn!("state: {} is not a valid torrent for its name; moved aside to .bad", path.display());
                    std::fs::rename(&path, path.with_extension("bad"))?;
                }
            }
        }
        Ok(Desired { dir, entries: Mutex::new(entries) })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<InfoHash, Entry>> {
        // A poisoned lock only means a handler panicked mid-read; the map itself is always whole.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file(&self, hash: &InfoHash) -> PathBuf {
        self.dir.join(format!("{hash}.torrent"))
    }

    /// Where the `.torrent` recorded for `hash` is.
    pub fn file_of(&self, hash: &InfoHash) -> PathBuf {
        self.file(hash)
    }

    /// The `.torrent` recorded for `hash`, read from disk.
    pub fn metainfo(&self, hash: &InfoHash) -> io::Result<Vec<u8>> {
        read_bounded(&self.file(hash))
    }

    /// Records `meta` (parsed from `bytes`) unless that would pass `bounds` or its files would
    /// overlap another torrent's; true if it is new. Persisted before it returns.
    pub fn insert(&self, meta: &Metainfo, bytes: &[u8], bounds: Bounds) -> Result<bool, InsertError> {
        let mut entries = self.lock();
        if entries.contains_key(&meta.info_hash) {
            return Ok(false);
        }
        room(&entries, bytes.len() as u64, bounds)?;
        // Every path of a torrent starts with its name: only torrents of the same name can overlap.
        for (other, _) in entries.iter().filter(|(_, e)| e.name == meta.name) {
            let theirs = metainfo::parse(&self.metainfo(other).map_err(InsertError::Io)?)
                .map_err(|e| InsertError::Io(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
            if let Some(path) = overlap(meta, &theirs) {
                return Err(InsertError::Overlap { other: *other, path });
            }
        }
        write_atomic(&self.file(&meta.info_hash), bytes, 0o644).map_err(InsertError::Io)?;
        let entry = Entry { name: meta.name.clone(), bytes: bytes.len() as u64, size: meta.total_size };
        entries.insert(meta.info_hash, entry);
        Ok(true)
    }

    /// Whether a new torrent of `bytes` bytes would fit `bounds` now (a torrent already recorded
    /// always does): for refusing a `PUT` before its body is read. [`Desired::insert`] decides.
    pub fn has_room(&self, hash: &InfoHash, bytes: u64, bounds: Bounds) -> Result<(), InsertError> {
        let entries = self.lock();
        if entries.contains_key(hash) {
            return Ok(());
        }
        room(&entries, bytes, bounds)
    }

    /// No longer seeds `hash`, its `.torrent` moved to `keep` (a file on the same file system);
    /// true if it was there. Persisted before it returns.
    pub fn release(&self, hash: &InfoHash, keep: &Path) -> io::Result<bool> {
        let mut entries = self.lock();
        if !entries.contains_key(hash) {
            return Ok(false);
        }
        match std::fs::rename(self.file(hash), keep) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::File::open(&self.dir)?.sync_all()?;
        if let Some(dir) = keep.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        entries.remove(hash);
        Ok(true)
    }

    /// Whether `hash` is seeded.
    pub fn contains(&self, hash: &InfoHash) -> bool {
        self.lock().contains_key(hash)
    }

    pub fn get(&self, hash: &InfoHash) -> Option<Entry> {
        self.lock().get(hash).cloned()
    }

    /// Every entry, ordered by info hash.
    pub fn snapshot(&self) -> Vec<(InfoHash, Entry)> {
        self.lock().iter().map(|(h, e)| (*h, e.clone())).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether one more torrent of `bytes` bytes keeps `entries` within `bounds`.
fn room(entries: &BTreeMap<InfoHash, Entry>, bytes: u64, bounds: Bounds) -> Result<(), InsertError> {
    if entries.len() >= bounds.max_torrents {
        return Err(InsertError::Full(format!(
            "this agent seeds {} torrents, its `max_torrents`; release one first",
            entries.len()
        )));
    }
    let total = entries.values().map(|e| e.bytes).sum::<u64>().saturating_add(bytes);
    if total > bounds.max_total_bytes {
        return Err(InsertError::Full(format!(
            "the .torrent files seeded here would take {total} bytes, over `max_total_torrent_bytes` ({})",
            bounds.max_total_bytes
        )));
    }
    Ok(())
}

/// A `.torrent` of the state dir (a regular file of at most [`MAX_FILE_BYTES`]).
fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    odseed_proto::fsutil::read_bounded(path, MAX_FILE_BYTES)
}

/// A path of `a` that is also a path of `b`, or a directory of one, or has one as a directory.
pub(crate) fn overlap(a: &Metainfo, b: &Metainfo) -> Option<PathBuf> {
    let theirs: BTreeSet<&Path> = b.files.iter().map(|(p, _)| p.as_path()).collect();
    a.files.iter().map(|(p, _)| p.as_path()).find_map(|p| {
        let clash =
            p.ancestors().any(|up| theirs.contains(up)) || theirs.range(p..).next().is_some_and(|q| q.starts_with(p));
        clash.then(|| p.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use odseed_proto::bencode::Owned;

    fn torrent(name: &str) -> (Metainfo, Vec<u8>) {
        let info = Owned::dict([
            ("name", Owned::str(name)),
            ("length", Owned::Int(1)),
            ("piece length", Owned::Int(16384)),
            ("pieces", Owned::Bytes(vec![0; 20])),
        ]);
        let bytes = Owned::dict([("info", info)]).encode();
        (metainfo::parse(&bytes).unwrap(), bytes)
    }

    const ROOMY: Bounds = Bounds { max_torrents: 10, max_total_bytes: 1 << 20 };

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("odseed-{name}-{}", odseed_proto::fsutil::random_hex(4).unwrap()))
    }

    #[test]
    fn survives_reopening_and_sets_aside_what_it_cannot_read() {
        let dir = temp("state");
        let (a, a_bytes) = torrent("a");
        let (b, b_bytes) = torrent("b");
        {
            let d = Desired::open(&dir).unwrap();
            assert!(d.insert(&a, &a_bytes, ROOMY).unwrap());
            assert!(!d.insert(&a, &a_bytes, ROOMY).unwrap());
            assert!(d.insert(&b, &b_bytes, ROOMY).unwrap());
            let kept = dir.join("b.kept");
            assert!(d.release(&b.info_hash, &kept).unwrap());
            assert!(!d.release(&b.info_hash, &kept).unwrap());
            assert_eq!(std::fs::read(&kept).unwrap(), b_bytes, "its metainfo is kept where it was asked");
        }
        let torrents = dir.join("torrents");
        std::fs::write(torrents.join(format!("{}.torrent", b.info_hash)), b"corrupt").unwrap();
        std::fs::write(torrents.join(".x.torrent.tmp-123"), b"half").unwrap();
        let d = Desired::open(&dir).unwrap();
        assert_eq!(d.snapshot().iter().map(|(h, _)| *h).collect::<Vec<_>>(), vec![a.info_hash]);
        assert_eq!(d.metainfo(&a.info_hash).unwrap(), a_bytes, "the metainfo is read back from disk");
        assert!(torrents.join(format!("{}.bad", b.info_hash)).exists(), "kept aside, not deleted");
        assert!(!torrents.join(".x.torrent.tmp-123").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bounds_hold_and_overlapping_files_are_refused() {
        let dir = temp("bounds");
        let d = Desired::open(&dir).unwrap();
        let (a, a_bytes) = torrent("a");
        let (b, b_bytes) = torrent("b");
        let one = Bounds { max_torrents: 1, ..ROOMY };
        assert!(d.insert(&a, &a_bytes, one).unwrap());
        assert!(!d.insert(&a, &a_bytes, one).unwrap(), "a torrent already there is no new one");
        assert!(matches!(d.insert(&b, &b_bytes, one), Err(InsertError::Full(_))));
        let small = Bounds { max_total_bytes: (a_bytes.len() + b_bytes.len() - 1) as u64, ..ROOMY };
        assert!(matches!(d.insert(&b, &b_bytes, small), Err(InsertError::Full(_))));
        // Another torrent named `a` (one byte longer: another info hash) would write the same file.
        let info = Owned::dict([
            ("name", Owned::str("a")),
            ("length", Owned::Int(2)),
            ("piece length", Owned::Int(16384)),
            ("pieces", Owned::Bytes(vec![0; 20])),
        ]);
        let same_name = Owned::dict([("info", info)]).encode();
        let meta = metainfo::parse(&same_name).unwrap();
        match d.insert(&meta, &same_name, ROOMY) {
            Err(InsertError::Overlap { other, path }) => assert_eq!((other, path), (a.info_hash, PathBuf::from("a"))),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.len(), 1, "nothing refused was recorded");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overlap_is_by_whole_path_components() {
        let with = |paths: &[&str]| Metainfo {
            info_hash: InfoHash::from_bytes([0; 20]),
            name: "n".into(),
            total_size: 0,
            piece_length: 1,
            files: paths.iter().map(|p| (PathBuf::from(p), 1)).collect(),
            trackers: Vec::new(),
            hybrid: false,
        };
        let a = with(&["n/x/1", "n/y"]);
        assert_eq!(overlap(&a, &with(&["n/x/1"])), Some(PathBuf::from("n/x/1")));
        assert_eq!(overlap(&a, &with(&["n/x"])), Some(PathBuf::from("n/x/1")), "a file where a has a directory");
        assert_eq!(overlap(&a, &with(&["n/y/z"])), Some(PathBuf::from("n/y")), "a directory where a has a file");
        assert_eq!(overlap(&a, &with(&["n/x0", "n/x/2", "n/yy"])), None);
        assert_eq!(overlap(&with(&["n"]), &with(&["n/a"])), Some(PathBuf::from("n")));
    }
}
