//! The desired state: which torrents this agent must seed, each with its metainfo, persisted as
//! `<state_dir>/torrents/<info hash>.torrent`. Each change is an atomic file write or removal made
//! before the change is acknowledged, so a crash of the agent, the daemon or the machine loses nothing.

use odseed_proto::fsutil::write_atomic;
use odseed_proto::infohash::InfoHash;
use odseed_proto::metainfo::{self, Metainfo};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// One torrent the agent must seed.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub metainfo: Arc<[u8]>,
}

/// The set of torrents to seed, in memory and on disk.
#[derive(Debug)]
pub struct Desired {
    dir: PathBuf,
    entries: Mutex<BTreeMap<InfoHash, Entry>>,
}

impl Desired {
    /// Opens (creating) `<state_dir>/torrents` and loads every torrent in it. A file that no longer
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
            let bytes = std::fs::read(&path)?;
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            match metainfo::parse(&bytes) {
                Ok(m) if m.info_hash.to_string() == stem => {
                    entries.insert(m.info_hash, Entry { name: m.name, metainfo: bytes.into() });
                }
                Ok(_) | Err(_) => {
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

    /// Records `meta` (parsed from `bytes`); true if it is new. Persisted before it returns.
    pub fn insert(&self, meta: &Metainfo, bytes: &[u8]) -> io::Result<bool> {
        let mut entries = self.lock();
        if entries.contains_key(&meta.info_hash) {
            return Ok(false);
        }
        write_atomic(&self.file(&meta.info_hash), bytes, 0o644)?;
        entries.insert(meta.info_hash, Entry { name: meta.name.clone(), metainfo: bytes.into() });
        Ok(true)
    }

    /// Forgets `hash`; true if it was there. Persisted before it returns.
    pub fn remove(&self, hash: &InfoHash) -> io::Result<bool> {
        let mut entries = self.lock();
        if !entries.contains_key(hash) {
            return Ok(false);
        }
        match std::fs::remove_file(self.file(hash)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::File::open(&self.dir)?.sync_all()?;
        entries.remove(hash);
        Ok(true)
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

    #[test]
    fn survives_reopening_and_sets_aside_what_it_cannot_read() {
        let dir = std::env::temp_dir().join(format!("odseed-state-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        let (a, a_bytes) = torrent("a");
        let (b, b_bytes) = torrent("b");
        {
            let d = Desired::open(&dir).unwrap();
            assert!(d.insert(&a, &a_bytes).unwrap());
            assert!(!d.insert(&a, &a_bytes).unwrap());
            assert!(d.insert(&b, &b_bytes).unwrap());
            assert!(d.remove(&b.info_hash).unwrap());
            assert!(!d.remove(&b.info_hash).unwrap());
        }
        let torrents = dir.join("torrents");
        std::fs::write(torrents.join(format!("{}.torrent", b.info_hash)), b"corrupt").unwrap();
        std::fs::write(torrents.join(".x.torrent.tmp-123"), b"half").unwrap();
        let d = Desired::open(&dir).unwrap();
        assert_eq!(d.snapshot().iter().map(|(h, _)| *h).collect::<Vec<_>>(), vec![a.info_hash]);
        assert!(torrents.join(format!("{}.bad", b.info_hash)).exists(), "kept aside, not deleted");
        assert!(!torrents.join(".x.torrent.tmp-123").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
