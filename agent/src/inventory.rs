//! The content this agent holds: the torrents it seeds, and those it seeded and was then told to
//! stop seeding ("released"), whose content stays on disk until room is needed, so that a helper
//! engaged again for one of them (or staged for it) need not download it again.
//!
//! Bounded by the config's `max_content_bytes` (content seeded, counted whole, and released, as
//! held) and `min_free_bytes` (left free on the data dir's file system, counting what the seeded
//! torrents still have to download): a `PUT` ([`Inventory::admit`]) evicts released content, least
//! recently used first, and is refused, with nothing written or evicted, if even evicting all of it
//! would not make room. What is seeded is never evicted.
//!
//! On disk: whether a torrent is seeded or released is where its `.torrent` is (`torrents/`, kept by
//! [`Desired`], or `released/`); the figures (bytes held, last use) are in `content.json`, written
//! atomically. A crash between the two loses at most a figure, never content or its record.

use crate::content::check_paths;
use crate::state::{overlap, Bounds, Desired, InsertError};
use odseed_proto::fsutil::{disk_bytes, free_bytes, read_bounded, write_atomic};
use odseed_proto::infohash::InfoHash;
use odseed_proto::metainfo::{self, Metainfo};
use odseed_proto::wire::{Content, Held};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How much content the data dir may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_content_bytes: u64,
    pub min_free_bytes: u64,
}

/// What is known of one torrent's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    /// The whole content's size.
    bytes: u64,
    /// Pieces held and checked, as the daemon last said.
    have_bytes: u64,
    /// What its files took on disk when it was released (0 while seeded).
    #[serde(default)]
    disk_bytes: u64,
    /// Its `.torrent`'s size.
    #[serde(default)]
    torrent_bytes: u64,
    /// Milliseconds since the Unix epoch when it was last seeded.
    last_used_ms: u64,
}

impl Record {
    /// What it takes while released.
    fn footprint(&self) -> u64 {
        self.have_bytes.max(self.disk_bytes).saturating_add(self.torrent_bytes)
    }
}

/// Why a torrent was not taken.
#[derive(Debug)]
pub enum AdmitError {
    /// Its content does not fit, even with every released torrent evicted.
    NoSpace(String),
    Insert(InsertError),
}

impl fmt::Display for AdmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdmitError::NoSpace(m) => f.write_str(m),
            AdmitError::Insert(e) => write!(f, "{e}"),
        }
    }
}

/// `content.json` larger than this was not written by the agent.
const MAX_FILE_BYTES: u64 = 16 << 20;
/// A released `.torrent` is read only if it is at most this large (the largest `PUT` accepted).
const MAX_TORRENT_BYTES: u64 = 256 << 20;
/// Released torrents kept at most; past it, the least recently used is evicted.
pub const MAX_RELEASED: usize = 1000;
/// The daemon's figures are written at most this often (and at every release and admission).
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// The agent's content, seeded and released.
pub struct Inventory {
    desired: Arc<Desired>,
    data_dir: PathBuf,
    released_dir: PathBuf,
    file: PathBuf,
    quota: Quota,
    inner: Mutex<Inner>,
}

struct Inner {
    records: BTreeMap<InfoHash, Record>,
    dirty: bool,
    saved_at: Instant,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Inventory {
    /// Opens (creating) `<state_dir>/released` and `content.json`, and makes them agree with the
    /// seeded set: a torrent seeded or released without figures gets them (nothing held known yet),
    /// and figures with no `.torrent` left are dropped.
    pub fn open(state_dir: &Path, data_dir: &Path, quota: Quota, desired: Arc<Desired>) -> io::Result<Inventory> {
        let released_dir = state_dir.join("released");
        std::fs::create_dir_all(&released_dir)?;
        let file = state_dir.join("content.json");
        let set_aside = |why: String| {
            let aside = file.with_extension("json.bad");
            let moved = std::fs::rename(&file, &aside).map_err(|e| e.to_string());
            log::warn!("content: {} is unreadable ({why}); set aside ({moved:?}); figures start again", file.display());
            BTreeMap::new()
        };
        let mut records: BTreeMap<InfoHash, Record> = match read_bounded(&file, MAX_FILE_BYTES) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| set_aside(e.to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            // Too large, or not a regular file: not the agent's; the agent starts all the same.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => set_aside(e.to_string()),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", file.display()))),
        };
        let inv = Inventory {
            desired: desired.clone(),
            data_dir: data_dir.to_path_buf(),
            released_dir,
            file,
            quota,
            inner: Mutex::new(Inner { records: BTreeMap::new(), dirty: true, saved_at: Instant::now() }),
        };
        let mut kept = BTreeMap::new();
        for (hash, e) in desired.snapshot() {
            let r = records.remove(&hash).unwrap_or(Record {
                name: e.name,
                bytes: e.size,
                have_bytes: 0,
                disk_bytes: 0,
                torrent_bytes: e.bytes,
                last_used_ms: now_ms(),
            });
            kept.insert(hash, r);
        }
        for item in std::fs::read_dir(&inv.released_dir)? {
            let path = item?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if name.starts_with('.') && name.contains(".tmp-") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(hash) = name.strip_suffix(".torrent").and_then(|h| InfoHash::from_hex(h).ok()) else { continue };
            if kept.contains_key(&hash) {
                // Seeded again, and a crash came before its released copy was removed.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let r = match records.remove(&hash) {
                Some(r) => r,
                None => match inv.released_meta(&hash) {
                    Ok((m, torrent_bytes)) => Record {
                        disk_bytes: inv.disk_of(&m),
                        name: m.name,
                        bytes: m.total_size,
                        have_bytes: 0,
                        torrent_bytes,
                        last_used_ms: std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_millis() as u64),
                    },
                    Err(e) => {
                        log::warn!("content: {}: {e}; moved aside to .bad", path.display());
                        std::fs::rename(&path, path.with_extension("bad"))?;
                        continue;
                    }
                },
            };
            kept.insert(hash, r);
        }
        for (hash, r) in records {
            log::warn!(
                "content: figures for {hash} ({:?}) but no .torrent: forgotten (its files, if any, stay)",
                r.name
            );
        }
        {
            let mut inner = inv.lock();
            inner.records = kept;
            inv.save(&mut inner);
        }
        Ok(inv)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn released_file(&self, hash: &InfoHash) -> PathBuf {
        self.released_dir.join(format!("{hash}.torrent"))
    }

    /// A released torrent's metainfo and the size of its `.torrent`.
    fn released_meta(&self, hash: &InfoHash) -> io::Result<(Metainfo, u64)> {
        let bytes = read_bounded(&self.released_file(hash), MAX_TORRENT_BYTES)?;
        let m = metainfo::parse(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if m.info_hash != *hash {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not the torrent its name says"));
        }
        Ok((m, bytes.len() as u64))
    }

    /// What `m`'s files take on disk (Transmission's `.part` names for incomplete files included).
    fn disk_of(&self, m: &Metainfo) -> u64 {
        m.files.iter().fold(0u64, |sum, (p, _)| {
            let at = self.data_dir.join(p);
            sum.saturating_add(disk_bytes(&at)).saturating_add(disk_bytes(&part(&at)))
        })
    }

    /// Writes the figures (a failure is logged: the figures are remade at the next start).
    fn save(&self, inner: &mut Inner) {
        match write_atomic(&self.file, &serde_json::to_vec(&inner.records).unwrap_or_default(), 0o644) {
            Ok(()) => inner.dirty = false,
            Err(e) => log::warn!("content: cannot write {}: {e}", self.file.display()),
        }
        inner.saved_at = Instant::now();
    }

    /// Takes `meta` (parsed from `bytes`) to seed, evicting released content if its content needs
    /// the room; true if it is new. Refused with nothing written or evicted if it cannot fit.
    pub fn admit(&self, meta: &Metainfo, bytes: &[u8], bounds: Bounds) -> Result<bool, AdmitError> {
        let mut inner = self.lock();
        let hash = meta.info_hash;
        if self.desired.contains(&hash) {
            return self.desired.insert(meta, bytes, bounds).map_err(AdmitError::Insert);
        }
        self.desired.has_room(&hash, bytes.len() as u64, bounds).map_err(AdmitError::Insert)?;
        let free = free_bytes(&self.data_dir).map_err(|e| AdmitError::Insert(InsertError::Io(e)))?;
        let seeded: Vec<(u64, u64)> = self
            .desired
            .snapshot()
            .iter()
            .map(|(h, e)| (e.size, inner.records.get(h).map_or(0, |r| r.have_bytes)))
            .collect();
        // Released content whose files are this torrent's is now this torrent's: never evicted for
        // it (that would delete its files), and forgotten before it is recorded.
        let taken: Vec<InfoHash> = inner
            .records
            .keys()
            .filter(|h| **h != hash && !self.desired.contains(h))
            .filter(|h| inner.records[*h].name == meta.name)
            .filter(|h| self.released_meta(h).is_ok_and(|(m, _)| overlap(meta, &m).is_some()))
            .copied()
            .collect();
        let released: Vec<(InfoHash, u64, u64)> = inner
            .records
            .iter()
            .filter(|(h, _)| **h != hash && !self.desired.contains(h) && !taken.contains(h))
            .map(|(h, r)| (*h, r.last_used_ms, r.footprint()))
            .collect();
        let held = inner.records.get(&hash).map_or_else(|| self.disk_of(meta), Record::footprint);
        let evict = plan(self.quota, free, &seeded, (meta.total_size, held), released).map_err(|missing| {
            AdmitError::NoSpace(format!(
                "its {} bytes of content do not fit: {missing} bytes short of `max_content_bytes` ({}) and \
                 `min_free_bytes` ({}) with every released torrent's content evicted",
                meta.total_size, self.quota.max_content_bytes, self.quota.min_free_bytes
            ))
        })?;
        // Forgotten first: a crash after the new one is recorded must not bring them back as
        // released content that could be evicted (deleting the new one's files).
        for h in &taken {
            let _ = std::fs::remove_file(self.released_file(h));
            if let Some(r) = inner.records.remove(h) {
                log::info!(
                    "content: {h} ({:?}) released here shares files with {hash}: forgotten, its files kept",
                    r.name
                );
            }
        }
        let new = self.desired.insert(meta, bytes, bounds).map_err(AdmitError::Insert)?;
        let _ = std::fs::remove_file(self.released_file(&hash));
        for h in evict {
            self.evict(&mut inner, &h, "to make room");
        }
        let have_bytes = inner.records.get(&hash).map_or(0, |r| r.have_bytes);
        let r = Record {
            name: meta.name.clone(),
            bytes: meta.total_size,
            have_bytes,
            disk_bytes: 0,
            torrent_bytes: bytes.len() as u64,
            last_used_ms: now_ms(),
        };
        inner.records.insert(hash, r);
        self.save(&mut inner);
        Ok(new)
    }

    /// No longer seeds `hash`; its content and metainfo stay until room is needed. False if it was
    /// not seeded.
    pub fn release(&self, hash: &InfoHash) -> io::Result<bool> {
        let mut inner = self.lock();
        if !self.desired.release(hash, &self.released_file(hash))? {
            return Ok(false);
        }
        let disk = self.released_meta(hash).map(|(m, _)| self.disk_of(&m)).unwrap_or(0);
        if let Some(r) = inner.records.get_mut(hash) {
            (r.last_used_ms, r.disk_bytes) = (now_ms(), disk);
        }
        let mut released: Vec<(u64, InfoHash)> = inner
            .records
            .iter()
            .filter(|(h, _)| !self.desired.contains(h))
            .map(|(h, r)| (r.last_used_ms, *h))
            .collect();
        released.sort();
        let over = released.len().saturating_sub(MAX_RELEASED);
        for (_, h) in released.into_iter().take(over) {
            self.evict(&mut inner, &h, &format!("(more than {MAX_RELEASED} released)"));
        }
        self.save(&mut inner);
        Ok(true)
    }

    /// Deletes a released torrent's files (never a symbolic link's target) and forgets it.
    fn evict(&self, inner: &mut Inner, hash: &InfoHash, why: &str) {
        let Some(r) = inner.records.remove(hash) else { return };
        match self.released_meta(hash) {
            Ok((m, _)) => match check_paths(&self.data_dir, &m) {
                Ok(()) => {
                    let kept = self.seeded_paths(&m.name);
                    let protected = |p: &Path| p.ancestors().any(|a| kept.contains(a));
                    for (p, _) in &m.files {
                        let at = self.data_dir.join(p);
                        if !protected(p) {
                            let _ = std::fs::remove_file(&at);
                        }
                        if !protected(&part(p)) {
                            let _ = std::fs::remove_file(part(&at));
                        }
                        // Directories its files leave empty go too (remove_dir fails on any other).
                        for dir in p.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()) {
                            if std::fs::remove_dir(self.data_dir.join(dir)).is_err() {
                                break;
                            }
                        }
                    }
                    log::info!("content: evicted {hash} ({:?}, {} bytes) {why}", r.name, r.footprint());
                }
                Err(e) => log::warn!("content: not deleting the files of {hash}: {e}; forgotten"),
            },
            Err(e) => log::warn!("content: cannot read the metainfo of {hash} ({e}); forgotten, its files stay"),
        }
        let _ = std::fs::remove_file(self.released_file(hash));
    }

    /// Every file path (and its `.part` name) of the seeded torrents named `name` or `name.part`:
    /// only those can share a path (or a `.part` one) with a torrent of that name, and none of them
    /// is ever deleted.
    fn seeded_paths(&self, name: &str) -> std::collections::BTreeSet<PathBuf> {
        let mut kept = std::collections::BTreeSet::new();
        let part_name = format!("{name}.part");
        let same = |e: &crate::state::Entry| e.name == name || e.name == part_name;
        for (h, e) in self.desired.snapshot().into_iter().filter(|(_, e)| same(e)) {
            match self.desired.metainfo(&h).ok().and_then(|b| metainfo::parse(&b).ok()) {
                Some(m) => kept.extend(m.files.into_iter().flat_map(|(p, _)| [part(&p), p])),
                // Not readable: keep the whole name's tree rather than guess.
                None => {
                    kept.insert(PathBuf::from(&e.name));
                }
            }
        }
        kept
    }

    /// Takes in the daemon's figures: `(info hash, haveValid)` of torrents it seeds.
    pub fn observe(&self, figures: impl IntoIterator<Item = (InfoHash, u64)>) {
        let mut inner = self.lock();
        let mut completed = false;
        for (hash, have) in figures {
            if let Some(r) = inner.records.get_mut(&hash).filter(|r| r.have_bytes != have) {
                completed |= have >= r.bytes && r.have_bytes < r.bytes;
                r.have_bytes = have;
                inner.dirty = true;
            }
        }
        if inner.dirty && (completed || inner.saved_at.elapsed() >= SAVE_EVERY) {
            self.save(&mut inner);
        }
    }

    /// Writes the figures if they changed (at shutdown).
    pub fn persist(&self) {
        let mut inner = self.lock();
        if inner.dirty {
            self.save(&mut inner);
        }
    }

    /// `GET /v1/content`.
    pub fn list(&self) -> Content {
        let inner = self.lock();
        let now = now_ms() / 1000;
        let torrents: Vec<Held> = inner
            .records
            .iter()
            .map(|(h, r)| {
                let seeding = self.desired.contains(h);
                Held {
                    info_hash: *h,
                    name: r.name.clone(),
                    bytes: r.bytes,
                    have_bytes: r.have_bytes.min(r.bytes),
                    percent_done: if r.bytes == 0 { 1.0 } else { (r.have_bytes as f64 / r.bytes as f64).min(1.0) },
                    seeding,
                    last_used: if seeding { now } else { r.last_used_ms / 1000 },
                }
            })
            .collect();
        let used_bytes = inner.records.values().map(|r| r.have_bytes.max(r.disk_bytes)).sum();
        Content {
            max_content_bytes: self.quota.max_content_bytes,
            min_free_bytes: self.quota.min_free_bytes,
            used_bytes,
            free_bytes: free_bytes(&self.data_dir).unwrap_or(0),
            torrents,
        }
    }
}

/// Transmission's name for an incomplete file (`rename-partial-files`).
fn part(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Which released torrents to evict, least recently used first, so that a new torrent fits:
/// `seeded` is `(size, held)` of each torrent seeded, `new` the same for the new one, `released`
/// `(hash, last used, footprint)`, `free` what the file system has free now. Seeded content counts
/// whole (it will be); what it has yet to download comes out of `free`. `Err` is the bytes still
/// missing with every released torrent evicted.
fn plan(
    quota: Quota,
    free: u64,
    seeded: &[(u64, u64)],
    new: (u64, u64),
    mut released: Vec<(InfoHash, u64, u64)>,
) -> Result<Vec<InfoHash>, u64> {
    let growth = |(size, held): (u64, u64)| i128::from(size.saturating_sub(held));
    let mut content: i128 = seeded.iter().map(|s| i128::from(s.0)).sum::<i128>()
        + i128::from(new.0)
        + released.iter().map(|r| i128::from(r.2)).sum::<i128>();
    let mut free_after: i128 = i128::from(free) - seeded.iter().copied().map(growth).sum::<i128>() - growth(new);
    let missing = |content: i128, free_after: i128| {
        (content - i128::from(quota.max_content_bytes)).max(i128::from(quota.min_free_bytes) - free_after).max(0)
    };
    released.sort_by_key(|r| (r.1, r.0));
    let mut evict = Vec::new();
    for (hash, _, footprint) in released {
        if missing(content, free_after) == 0 {
            break;
        }
        content -= i128::from(footprint);
        free_after += i128::from(footprint);
        evict.push(hash);
    }
    match missing(content, free_after) {
        0 => Ok(evict),
        m => Err(u64::try_from(m).unwrap_or(u64::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> InfoHash {
        InfoHash::from_bytes([n; 20])
    }

    const Q: Quota = Quota { max_content_bytes: 100, min_free_bytes: 10 };

    #[test]
    fn evicts_least_recently_used_first_and_only_what_is_needed() {
        let released = vec![(h(1), 30, 20), (h(2), 10, 20), (h(3), 20, 20)];
        // 40 new + 60 released = 100: still fits the quota exactly.
        assert_eq!(plan(Q, 1000, &[], (40, 0), released.clone()), Ok(vec![]));
        // 50 new: 10 over; the oldest (h2, used at 10) goes, and only it.
        assert_eq!(plan(Q, 1000, &[], (50, 0), released.clone()), Ok(vec![h(2)]));
        // A seeded torrent of 30 counts whole: 110 + 20 over; two go, oldest first.
        assert_eq!(plan(Q, 1000, &[(30, 5)], (50, 0), released.clone()), Ok(vec![h(2), h(3)]));
    }

    #[test]
    fn free_space_counts_what_seeded_torrents_have_yet_to_download() {
        let released = vec![(h(1), 1, 20)];
        // 60 free: the new one needs 30, the seeded one 25 more: 5 left, under min_free 10.
        // Evicting h1 gives 20 back.
        assert_eq!(plan(Q, 60, &[(30, 5)], (30, 0), released.clone()), Ok(vec![h(1)]));
        // What the new one already holds on disk is not needed again.
        assert_eq!(plan(Q, 60, &[(30, 5)], (30, 10), released), Ok(vec![]));
    }

    #[test]
    fn refuses_with_the_bytes_missing_and_never_counts_seeded_content_as_evictable() {
        // 70 seeded + 50 new = 120 > 100 with nothing released to evict.
        assert_eq!(plan(Q, 1000, &[(70, 70)], (50, 0), vec![]), Err(20));
        // Even evicting everything released leaves 5 bytes missing.
        assert_eq!(plan(Q, 1000, &[(70, 70)], (35, 0), vec![(h(1), 1, 30)]), Err(5));
        // Free space short: 40 free, 35 needed, 10 to keep: 5 missing.
        assert_eq!(plan(Q, 40, &[], (35, 0), vec![]), Err(5));
    }

    #[test]
    fn eviction_never_deletes_a_seeded_torrents_file() {
        use odseed_proto::bencode::Owned;
        let root = std::env::temp_dir().join(format!("odseed-evict-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        let (state, data) = (root.join("state"), root.join("data"));
        std::fs::create_dir_all(&data).unwrap();
        let torrent = |name: &str| {
            let info = Owned::dict([
                ("name", Owned::str(name)),
                ("length", Owned::Int(1)),
                ("piece length", Owned::Int(16384)),
                ("pieces", Owned::Bytes(vec![0; 20])),
            ]);
            let bytes = Owned::dict([("info", info)]).encode();
            (metainfo::parse(&bytes).unwrap(), bytes)
        };
        let desired = Arc::new(Desired::open(&state).unwrap());
        let quota = Quota { max_content_bytes: 1 << 30, min_free_bytes: 0 };
        let inv = Inventory::open(&state, &data, quota, desired.clone()).unwrap();
        let bounds = Bounds { max_torrents: 10, max_total_bytes: 1 << 20 };
        // "x" is released, its partial file "x.part" on disk; "x.part", another torrent, is seeded.
        let (x, x_bytes) = torrent("x");
        let (xp, xp_bytes) = torrent("x.part");
        inv.admit(&x, &x_bytes, bounds).unwrap();
        assert!(inv.release(&x.info_hash).unwrap());
        inv.admit(&xp, &xp_bytes, bounds).unwrap();
        std::fs::write(data.join("x.part"), b"y").unwrap();
        std::fs::write(data.join("x"), b"z").unwrap();
        let mut inner = inv.lock();
        inv.evict(&mut inner, &x.info_hash, "in a test");
        drop(inner);
        assert!(data.join("x.part").exists(), "the seeded torrent's file stays");
        assert!(!data.join("x").exists(), "the evicted one's own file goes");
        assert!(!inv.list().torrents.iter().any(|t| t.info_hash == x.info_hash));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
