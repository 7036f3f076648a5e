//! The ledger: every helper odseed engaged and has not yet released, in
//! `$XDG_STATE_HOME/odseed/ledger.json`. An entry is written (atomically, under a file lock) before a
//! helper is engaged and removed once it is released, so a run killed with -9 leaves a record that
//! the next `run` or `release` acts on. Each entry names its owner process, so a new run releases
//! only the leftovers of dead runs, never the helpers of a run still going.

use crate::error::Error;
use odseed_proto::fsutil::write_atomic;
use odseed_proto::tls::Fingerprint;
use odseed_proto::InfoHash;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A ledger larger than this is not one odseed wrote (an entry is about 400 bytes).
const MAX_LEDGER_BYTES: u64 = 16 << 20;

/// One engaged helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: HelperKind,
    /// A board's name or an instance's id.
    pub name: String,
    /// The agent's URL (`None`: not known yet, an instance still starting), and the file holding
    /// its token (read again at release time).
    #[serde(with = "known_url")]
    pub url: Option<String>,
    pub token_file: PathBuf,
    /// The torrent it seeds; `None` (null): an instance `odseed ec2 provision` launched and has not
    /// yet seen set up.
    pub info_hash: Option<InfoHash>,
    pub owner: Owner,
    /// Seconds since the Unix epoch.
    pub engaged_at: u64,
    /// An instance's region and the EC2 endpoint it was started through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The SHA-256 of the agent's certificate, when it is reached over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "pin")]
    pub cert_sha256: Option<Fingerprint>,
    /// Its config allowed plain HTTP to a public address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
    /// The torrent's name, for `odseed status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torrent: Option<String>,
}

impl Entry {
    /// An instance `odseed ec2 provision` launched and has not seen set up: no torrent, no agent.
    pub fn is_provisioning(&self) -> bool {
        self.kind == HelperKind::Ec2 && self.url.is_none() && self.info_hash.is_none()
    }

    /// What it seeds, for a person: the info hash, or that it is still being provisioned.
    pub fn seeds(&self) -> String {
        self.info_hash.map_or_else(|| "nothing yet (provisioning)".into(), |h| h.to_string())
    }
}

/// The file keeps what odseed 0.x wrote: "" for a URL not known yet.
mod known_url {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(url.as_deref().unwrap_or(""))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let url = String::deserialize(d)?;
        Ok((!url.is_empty()).then_some(url))
    }
}

/// A certificate pin, as its hex text.
mod pin {
    use odseed_proto::tls::Fingerprint;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(pin: &Option<Fingerprint>, s: S) -> Result<S::Ok, S::Error> {
        match pin {
            Some(p) => s.serialize_str(&p.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Fingerprint>, D::Error> {
        let text = String::deserialize(d)?;
        Fingerprint::parse(&text).map(Some).map_err(serde::de::Error::custom)
    }
}

/// What kind of helper an entry records: written as "board" or "ec2".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HelperKind {
    Board,
    Ec2,
}

impl HelperKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HelperKind::Board => "board",
            HelperKind::Ec2 => "ec2",
        }
    }
}

impl std::fmt::Display for HelperKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner { pid, start: start_time(pid).unwrap_or(0) }
    }

    /// True while the process that wrote the entry still runs.
    pub fn alive(&self) -> bool {
        start_time(self.pid).is_some_and(|s| s == self.start)
    }
}

/// A process's start time in clock ticks since boot, if it lives.
fn start_time(pid: u32) -> Option<u64> {
    odseed_proto::procfs::stat(pid).map(|s| s.start_time)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    version: u32,
    helpers: Vec<Entry>,
}

/// The ledger file.
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    /// `$XDG_STATE_HOME/odseed/ledger.json`, or `~/.local/state/odseed/ledger.json`.
    pub fn default_path() -> PathBuf {
        crate::xdg::state_dir().join("ledger.json")
    }

    pub fn at(path: &Path) -> Ledger {
        Ledger { path: path.to_path_buf() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads, changes and writes the ledger under an exclusive lock.
    fn update<T>(&self, change: impl FnOnce(&mut Vec<Entry>) -> T) -> Result<T, Error> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::Ledger(format!("ledger dir {}: {e}", dir.display())))?;
        let _lock = lock(&self.path.with_extension("lock"))?;
        let mut contents = self.read()?;
        let out = change(&mut contents.helpers);
        contents.version = 1;
        let json = serde_json::to_vec_pretty(&contents).map_err(|e| Error::Ledger(format!("ledger: {e}")))?;
        write_atomic(&self.path, &json, 0o600)
            .map_err(|e| Error::Ledger(format!("cannot write the ledger {}: {e}", self.path.display())))?;
        Ok(out)
    }

    /// Reads the ledger: a regular file of at most [`MAX_LEDGER_BYTES`] (a FIFO, a device or a
    /// link to one is refused, never read).
    fn read(&self) -> Result<Contents, Error> {
        let bytes = match odseed_proto::fsutil::read_bounded(&self.path, MAX_LEDGER_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::default()),
            Err(e) => return Err(Error::Ledger(format!("cannot read the ledger {}: {e}", self.path.display()))),
        };
        let mut contents: Contents = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Ledger(format!(
                "the ledger {} is damaged ({e}); release its helpers by hand, then move it aside",
                self.path.display()
            ))
        })?;
        // Before null, odseed wrote the all-zero hash (with no URL) for an instance provisioning.
        let zero = Some(InfoHash::from_bytes([0; 20]));
        for e in contents.helpers.iter_mut().filter(|e| e.kind == HelperKind::Ec2 && e.url.is_none()) {
            if e.info_hash == zero {
                e.info_hash = None;
            }
        }
        Ok(contents)
    }

    /// Every entry.
    pub fn entries(&self) -> Result<Vec<Entry>, Error> {
        Ok(self.read()?.helpers)
    }

    /// Records a helper about to be engaged (or updates its record). An instance is one run's at a
    /// time: it is refused while another live run holds it, whatever that run seeds.
    pub fn record(&self, entry: Entry) -> Result<(), Error> {
        self.update(|h| {
            let held = h.iter().find(|e| {
                entry.kind == HelperKind::Ec2
                    && e.kind == HelperKind::Ec2
                    && e.name == entry.name
                    && e.owner != entry.owner
                    && e.owner.alive()
            });
            if let Some(other) = held {
                return Err(Error::Held(format!(
                    "instance {} is held by the run with pid {}",
                    entry.name, other.owner.pid
                )));
            }
            h.retain(|e| !same(e, &entry.name, entry.info_hash, &entry.owner));
            h.push(entry);
            Ok(())
        })?
    }

    /// Records a board about to be engaged for a torrent, if it may be: no other live run holds
    /// the same (board, torrent), and the live runs' torrents on it stay within its `slots`. So
    /// `run` and `watch` never claim a board twice, and an agent is never given more than its
    /// owner allowed.
    pub fn claim_board(&self, entry: Entry, slots: u32) -> Result<(), Error> {
        self.update(|h| {
            let live = |e: &&Entry| e.kind == HelperKind::Board && e.name == entry.name && e.owner.alive();
            let mut on_it: Vec<&Entry> = h.iter().filter(live).collect();
            if let Some(other) = on_it.iter().find(|e| e.info_hash == entry.info_hash && e.owner != entry.owner) {
                return Err(Error::Held(format!(
                    "board {} seeds {} for the run with pid {}",
                    entry.name,
                    entry.seeds(),
                    other.owner.pid
                )));
            }
            on_it.retain(|e| e.info_hash != entry.info_hash);
            if on_it.len() as u32 >= slots {
                return Err(Error::Held(format!(
                    "board {} already seeds {} torrent(s) of its {slots} slot(s)",
                    entry.name,
                    on_it.len()
                )));
            }
            h.retain(|e| !same(e, &entry.name, entry.info_hash, &entry.owner));
            h.push(entry);
            Ok(())
        })?
    }

    /// Forgets a released helper: the entry `owner` made for it.
    pub fn remove(&self, name: &str, hash: &InfoHash, owner: &Owner) -> Result<(), Error> {
        self.remove_all(&[(name, Some(*hash), *owner)])
    }

    /// Forgets released helpers (name, torrent, owner), in one write.
    pub fn remove_all(&self, released: &[(&str, Option<InfoHash>, Owner)]) -> Result<(), Error> {
        self.update(|h| h.retain(|e| !released.iter().any(|(name, hash, owner)| same(e, name, *hash, owner))))
    }
}

/// The torrents other live processes than `me` seed on board `name`, as `entries` say.
pub fn held_by_others(entries: &[Entry], name: &str, me: &Owner) -> Vec<InfoHash> {
    let theirs = |e: &&Entry| e.kind == HelperKind::Board && e.name == name && e.owner != *me && e.owner.alive();
    entries.iter().filter(theirs).filter_map(|e| e.info_hash).collect()
}

fn same(e: &Entry, name: &str, hash: Option<InfoHash>, owner: &Owner) -> bool {
    e.name == name && e.info_hash == hash && e.owner == *owner
}

/// An exclusive flock(2) on `path`, held until dropped.
pub(crate) fn lock(path: &Path) -> Result<File, Error> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::Ledger(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock(2) on a descriptor we own; the lock goes with the File.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(Error::Ledger(format!("cannot lock {}: {}", path.display(), std::io::Error::last_os_error())));
    }
    Ok(f)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, owner: Owner) -> Entry {
        Entry {
            kind: HelperKind::Board,
            name: name.into(),
            url: Some("http://x".into()),
            token_file: "/t".into(),
            info_hash: Some(InfoHash::from_bytes([3; 20])),
            owner,
            engaged_at: 1,
            region: None,
            endpoint: None,
            cert_sha256: None,
            plain_http: false,
            torrent: None,
        }
    }

    #[test]
    fn the_file_reads_as_it_was_written_before_and_typed_in_memory() {
        let dir = std::env::temp_dir().join(format!("odseed-ledger-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        let l = Ledger::at(&dir.join("ledger.json"));
        // As odseed wrote it before: "" for a URL not known yet, the zero hash while provisioning.
        let pin = "ab".repeat(32);
        let old = format!(
            r#"{{"version":1,"helpers":[
            {{"kind":"ec2","name":"i-1","url":"","token_file":"/t","info_hash":"{zero}","owner":{{"pid":1,"start":2}},
              "engaged_at":3,"region":"eu-west-3"}},
            {{"kind":"board","name":"pi","url":"https://pi:5050","token_file":"/t","info_hash":"{three}",
              "owner":{{"pid":1,"start":2}},"engaged_at":3,"cert_sha256":"{pin}"}}]}}"#,
            zero = "0".repeat(40),
            three = "03".repeat(20),
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(l.path(), &old).unwrap();
        let e = l.entries().unwrap();
        assert!(e[0].is_provisioning() && e[0].url.is_none() && e[0].info_hash.is_none());
        assert!(!e[1].is_provisioning() && e[1].url.as_deref() == Some("https://pi:5050"));
        assert_eq!(e[1].cert_sha256.map(|p| p.to_string()), Some(pin.clone()));
        // Written back typed: null for no torrent yet.
        l.record(entry("b", Owner::me())).unwrap();
        let text = std::fs::read_to_string(l.path()).unwrap();
        assert!(text.contains("\"info_hash\": null") && text.contains("\"url\": \"\""), "{text}");
        assert_eq!(l.entries().unwrap()[..2], e[..]);
        // A pin that is not one is a damaged ledger, never overwritten.
        std::fs::write(l.path(), old.replace(&pin, "xyz")).unwrap();
        assert!(l.entries().unwrap_err().to_string().contains("damaged"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn records_and_removes_and_keeps_a_damaged_file() {
        let dir = std::env::temp_dir().join(format!("odseed-ledger-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        let l = Ledger::at(&dir.join("ledger.json"));
        assert!(l.entries().unwrap().is_empty());
        l.record(entry("a", Owner::me())).unwrap();
        l.record(entry("b", Owner::me())).unwrap();
        l.record(entry("a", Owner::me())).unwrap();
        assert_eq!(l.entries().unwrap().len(), 2);
        l.remove("a", &InfoHash::from_bytes([3; 20]), &Owner::me()).unwrap();
        assert_eq!(l.entries().unwrap().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["b"]);

        // A FIFO would hang a plain read, a link to /dev/zero would read forever: both refused.
        std::fs::remove_file(l.path()).unwrap();
        std::os::unix::fs::symlink("/dev/zero", l.path()).unwrap();
        assert!(l.entries().unwrap_err().to_string().contains("not a regular file"));
        std::fs::remove_file(l.path()).unwrap();
        let made = std::process::Command::new("mkfifo").arg(l.path()).status().unwrap();
        assert!(made.success());
        assert!(l.entries().unwrap_err().to_string().contains("not a regular file"));
        std::fs::remove_file(l.path()).unwrap();

        std::fs::write(l.path(), b"{not json").unwrap();
        assert!(l.record(entry("c", Owner::me())).unwrap_err().to_string().contains("damaged"));
        assert_eq!(std::fs::read(l.path()).unwrap(), b"{not json", "a damaged ledger is never overwritten");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_instance_is_held_by_one_live_run_at_a_time() {
        let dir = std::env::temp_dir().join(format!("odseed-ledger-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        let l = Ledger::at(&dir.join("ledger.json"));
        let init = Owner { pid: 1, start: start_time(1).unwrap() };
        let dead = Owner { pid: u32::MAX - 1, start: 0 };
        let ec2 = |owner, hash: u8| Entry {
            kind: HelperKind::Ec2,
            info_hash: Some(InfoHash::from_bytes([hash; 20])),
            ..entry("i-1", owner)
        };
        l.record(ec2(init, 1)).unwrap();
        let e = l.record(ec2(Owner::me(), 2)).unwrap_err().to_string();
        assert!(e.contains("i-1 is held by the run with pid 1"), "{e}");
        l.remove("i-1", &InfoHash::from_bytes([1; 20]), &Owner::me()).unwrap();
        assert_eq!(l.entries().unwrap().len(), 1, "only the owner's entry is removed by it");
        l.remove("i-1", &InfoHash::from_bytes([1; 20]), &init).unwrap();
        l.record(ec2(dead, 1)).unwrap();
        l.record(ec2(Owner::me(), 1)).unwrap();
        assert_eq!(l.entries().unwrap().len(), 2, "a dead run's leftover does not hold it; both are kept");
        l.record(entry("i-1", init)).unwrap();
        assert_eq!(l.entries().unwrap().len(), 3, "boards are shared");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_board_is_claimed_within_its_slots_and_never_twice_for_a_torrent() {
        let dir = std::env::temp_dir().join(format!("odseed-ledger-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        let l = Ledger::at(&dir.join("ledger.json"));
        let init = Owner { pid: 1, start: start_time(1).unwrap() };
        let dead = Owner { pid: u32::MAX - 1, start: 0 };
        let on = |owner, hash: u8| Entry { info_hash: Some(InfoHash::from_bytes([hash; 20])), ..entry("pi", owner) };
        l.claim_board(on(init, 1), 2).unwrap();
        let e = l.claim_board(on(Owner::me(), 1), 2).unwrap_err().to_string();
        assert!(e.contains("seeds") && e.contains("pid 1"), "{e}");
        l.claim_board(on(Owner::me(), 2), 2).unwrap();
        l.claim_board(on(Owner::me(), 2), 2).unwrap();
        let e = l.claim_board(on(Owner::me(), 3), 2).unwrap_err().to_string();
        assert!(e.contains("2 slot(s)"), "{e}");
        l.remove("pi", &InfoHash::from_bytes([1; 20]), &init).unwrap();
        l.record(on(dead, 5)).unwrap();
        l.claim_board(on(Owner::me(), 3), 2).unwrap();
        assert_eq!(l.entries().unwrap().len(), 3, "a dead run's entry takes no slot and stays for release");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn owners_are_alive_or_not() {
        assert!(Owner::me().alive());
        assert!(!Owner { pid: std::process::id(), start: Owner::me().start + 1 }.alive(), "same pid, other start");
        assert!(!Owner { pid: u32::MAX - 1, start: 0 }.alive());
    }
}
