//! The bytes this agent has uploaded in all, as a counter that never goes down: kept across
//! releases (a torrent removed from the daemon takes its own count with it), daemon restarts (a
//! crashed daemon comes back with an older count from its resume files) and agent restarts
//! (persisted as `<state_dir>/uploaded.json`, at most [`PERSIST_EVERY`] behind, and at shutdown).
//!
//! Each torrent's last seen `uploadedEver` is kept: a rise adds the difference to the total, a fall
//! (the daemon's count reset) only moves the mark, so nothing is counted twice.

use odseed_proto::fsutil::{read_bounded, write_atomic};
use odseed_proto::infohash::InfoHash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const PERSIST_EVERY: Duration = Duration::from_secs(10);
/// Larger than the file of any agent (a mark per torrent, `max_torrents` of them).
const MAX_FILE_BYTES: u64 = 4 << 20;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counts {
    total: u64,
    /// Each torrent's `uploadedEver` when last seen.
    seen: BTreeMap<InfoHash, u64>,
}

#[derive(Debug)]
pub struct Uploads {
    path: PathBuf,
    inner: Mutex<(Counts, Option<Instant>)>,
}

impl Uploads {
    /// Reads `<state_dir>/uploaded.json`; one that cannot be read is set aside as `.bad` (warned
    /// about) and counting starts again from 0.
    pub fn open(state_dir: &Path) -> Uploads {
        let path = state_dir.join("uploaded.json");
        let counts = match read_bounded(&path, MAX_FILE_BYTES) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log::warn!("uploads: {} is unreadable ({e}); set aside as .bad, counting from 0", path.display());
                let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                Counts::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Counts::default(),
            Err(e) => {
                log::warn!("uploads: cannot read {} ({e}); counting from 0", path.display());
                Counts::default()
            }
        };
        Uploads { path, inner: Mutex::new((counts, None)) }
    }

    fn lock(&self) -> MutexGuard<'_, (Counts, Option<Instant>)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in the daemon's `uploadedEver` of some torrents; persists now and then.
    pub fn observe(&self, now: impl IntoIterator<Item = (InfoHash, u64)>) {
        let mut g = self.lock();
        let (counts, written) = &mut *g;
        let before = counts.total;
        for (hash, up) in now {
            let last = counts.seen.insert(hash, up).unwrap_or(0);
            counts.total = counts.total.saturating_add(up.saturating_sub(last));
        }
        if counts.total != before && written.is_none_or(|t| t.elapsed() >= PERSIST_EVERY) {
            persist(&self.path, counts);
            *written = Some(Instant::now());
        }
    }

    /// Drops the marks of torrents the daemon no longer holds (observe them one last time first).
    pub fn forget(&self, gone: &[InfoHash]) {
        let mut g = self.lock();
        for h in gone {
            g.0.seen.remove(h);
        }
    }

    pub fn total(&self) -> u64 {
        self.lock().0.total
    }

    /// Writes the counts now (at shutdown).
    pub fn persist(&self) {
        let g = self.lock();
        persist(&self.path, &g.0);
    }
}

fn persist(path: &Path, counts: &Counts) {
    let bytes = serde_json::to_vec(counts).unwrap_or_default();
    if let Err(e) = write_atomic(path, &bytes, 0o644) {
        log::warn!("uploads: cannot write {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_down_and_counts_nothing_twice() {
        let dir = std::env::temp_dir().join(format!("odseed-uploads-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (InfoHash::from_bytes([1; 20]), InfoHash::from_bytes([2; 20]));
        let u = Uploads::open(&dir);
        u.observe([(a, 100), (b, 5)]);
        u.observe([(a, 150)]);
        assert_eq!(u.total(), 155);
        // The daemon crashed and came back with an older count: no new bytes yet, none lost.
        u.observe([(a, 120)]);
        assert_eq!(u.total(), 155);
        u.observe([(a, 130)]);
        assert_eq!(u.total(), 165);
        // Released, then seeded again from 0.
        u.forget(&[b]);
        u.observe([(b, 7)]);
        assert_eq!(u.total(), 172);
        u.persist();
        let again = Uploads::open(&dir);
        assert_eq!(again.total(), 172);
        again.observe([(a, 130), (b, 9)]);
        assert_eq!(again.total(), 174, "the marks were kept too");
        std::fs::write(dir.join("uploaded.json"), b"{not json").unwrap();
        assert_eq!(Uploads::open(&dir).total(), 0);
        assert!(dir.join("uploaded.json.bad").exists(), "set aside, not deleted");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
