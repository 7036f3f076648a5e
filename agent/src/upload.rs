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
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    counts: Counts,
    /// When the file was last written.
    written: Option<Instant>,
    /// Something changed since.
    dirty: bool,
}

impl Uploads {
    /// Reads `<state_dir>/uploaded.json`. One that cannot be read or parsed is set aside as `.bad`
    /// (warned about, never overwritten) and counting starts again from 0.
    pub fn open(state_dir: &Path) -> Uploads {
        let path = state_dir.join("uploaded.json");
        let read = read_bounded(&path, MAX_FILE_BYTES).and_then(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        });
        let counts = match read {
            Ok(counts) => counts,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Counts::default(),
            Err(e) => {
                let aside = path.with_extension("json.bad");
                match std::fs::rename(&path, &aside) {
                    Ok(()) => log::warn!(
                        "uploads: {} is unreadable ({e}); set aside as {}, counting from 0",
                        path.display(),
                        aside.display()
                    ),
                    Err(re) => log::warn!(
                        "uploads: {} is unreadable ({e}) and cannot be set aside ({re}); counting from 0",
                        path.display()
                    ),
                }
                Counts::default()
            }
        };
        Uploads { path, inner: Mutex::new(Inner { counts, written: None, dirty: false }) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in the daemon's `uploadedEver` of some torrents; persists what changed at most
    /// [`PERSIST_EVERY`] after the change (the supervisor calls this every tick).
    pub fn observe(&self, now: impl IntoIterator<Item = (InfoHash, u64)>) {
        let mut g = self.lock();
        for (hash, up) in now {
            let last = g.counts.seen.insert(hash, up);
            if last != Some(up) {
                g.dirty = true;
            }
            g.counts.total = g.counts.total.saturating_add(up.saturating_sub(last.unwrap_or(0)));
        }
        if g.dirty && g.written.is_none_or(|t| t.elapsed() >= PERSIST_EVERY) {
            persist(&self.path, &g.counts);
            g.written = Some(Instant::now());
            g.dirty = false;
        }
    }

    /// Drops the marks of torrents the daemon no longer holds (observe them one last time first).
    pub fn forget(&self, gone: &[InfoHash]) {
        let mut g = self.lock();
        for h in gone {
            g.dirty |= g.counts.seen.remove(h).is_some();
        }
    }

    pub fn total(&self) -> u64 {
        self.lock().counts.total
    }

    /// Writes the counts now (at shutdown).
    pub fn persist(&self) {
        let mut g = self.lock();
        persist(&self.path, &g.counts);
        g.dirty = false;
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
        // Not a regular file (or unreadable in any other way): set aside too, never overwritten.
        std::fs::remove_file(dir.join("uploaded.json.bad")).unwrap();
        std::fs::create_dir(dir.join("uploaded.json")).unwrap();
        let u = Uploads::open(&dir);
        assert!(dir.join("uploaded.json.bad").is_dir(), "set aside");
        u.observe([(a, 1)]);
        assert!(dir.join("uploaded.json").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
