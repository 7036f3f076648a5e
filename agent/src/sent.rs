//! The bytes that left this machine through its network interfaces other than loopback: what a
//! cloud bills (every IP byte out, protocol overhead and the API's own answers included), from the
//! transmit counters of `/proc/net/dev`, as a counter that never goes down. Kept across agent
//! restarts and reboots as `<state_dir>/sent.json` (at most [`PERSIST_EVERY`] behind, and at
//! shutdown), with the boot it was counted in: after a reboot every interface counts from 0 again,
//! and an interface whose counter falls (it was made anew) does too.
//!
//! The first count ever starts from the interfaces' values then: what was sent before the agent
//! first ran is not its doing.

use odseed_proto::fsutil::{read_bounded, write_atomic};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Some byte goes out all the time (the API's answers, an ssh session): the file is written at most
/// this often, to spare a board's SD card; a crash loses at most that much of the count (the
/// controller reads it through the API every round and bills from that, not from the file).
const PERSIST_EVERY: Duration = Duration::from_secs(300);
/// `/proc/net/dev` of a machine with hundreds of interfaces is well under this.
const MAX_NET_DEV_BYTES: u64 = 1 << 20;
/// Interfaces counted, at most (a container host may have many veths).
const MAX_INTERFACES: usize = 4096;
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Counts {
    total: u64,
    /// The kernel's boot id when the marks were taken.
    boot: String,
    /// Each interface's transmit bytes when last seen.
    seen: BTreeMap<String, u64>,
}

/// Where the kernel's numbers are read (the real files, or a test's).
#[derive(Debug, Clone)]
pub struct Source {
    pub net_dev: PathBuf,
    pub boot_id: PathBuf,
}

impl Default for Source {
    fn default() -> Source {
        Source { net_dev: "/proc/net/dev".into(), boot_id: "/proc/sys/kernel/random/boot_id".into() }
    }
}

#[derive(Debug)]
pub struct Sent {
    path: PathBuf,
    source: Source,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` until the first sample of a count that had no file.
    counts: Option<Counts>,
    written: Option<Instant>,
    dirty: bool,
    /// Whether a failure to read the kernel's numbers was said.
    warned: bool,
}

impl Sent {
    /// Reads `<state_dir>/sent.json`; one that cannot be read is set aside as `.bad` (warned about)
    /// and counting starts afresh. Takes a first sample.
    pub fn open(state_dir: &Path, source: Source) -> Sent {
        let path = state_dir.join("sent.json");
        let counts = match read_bounded(&path, MAX_FILE_BYTES).and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        }) {
            Ok(c) => Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                let aside = path.with_extension("json.bad");
                let moved = std::fs::rename(&path, &aside).map_err(|re| re.to_string());
                log::warn!("sent: {} is unreadable ({e}); set aside: {moved:?}; counting afresh", path.display());
                None
            }
        };
        let sent =
            Sent { path, source, inner: Mutex::new(Inner { counts, written: None, dirty: true, warned: false }) };
        sent.sample();
        sent
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the interfaces' counters and adds what they sent since the last sample; persists at
    /// most [`PERSIST_EVERY`] after a change. The total.
    pub fn sample(&self) -> u64 {
        let read = read_bounded(&self.source.net_dev, MAX_NET_DEV_BYTES).map(|b| parse(&String::from_utf8_lossy(&b)));
        let boot = std::fs::read_to_string(&self.source.boot_id).map(|b| b.trim().to_string()).unwrap_or_default();
        let mut g = self.lock();
        let now = match read {
            Ok(now) => {
                g.warned = false;
                now
            }
            Err(e) => {
                if !std::mem::replace(&mut g.warned, true) {
                    log::warn!("sent: cannot read {}: {e}; bytes sent are not counted", self.source.net_dev.display());
                }
                return g.counts.as_ref().map_or(0, |c| c.total);
            }
        };
        let before = g.counts.clone();
        let counts = match g.counts.take() {
            Some(c) => advance(c, &boot, now),
            // The first count ever: from now on.
            None => Counts { total: 0, boot, seen: now.into_iter().collect() },
        };
        g.dirty |= before.as_ref() != Some(&counts);
        let total = counts.total;
        g.counts = Some(counts);
        if g.dirty && g.written.is_none_or(|t| t.elapsed() >= PERSIST_EVERY) {
            self.write(&mut g);
        }
        total
    }

    /// Writes the count now (at shutdown).
    pub fn persist(&self) {
        self.sample();
        let mut g = self.lock();
        self.write(&mut g);
    }

    fn write(&self, g: &mut Inner) {
        let Some(c) = &g.counts else { return };
        if let Err(e) = write_atomic(&self.path, &serde_json::to_vec(c).unwrap_or_default(), 0o644) {
            log::warn!("sent: cannot write {}: {e}", self.path.display());
        }
        g.written = Some(Instant::now());
        g.dirty = false;
    }
}

/// The count after `now`'s interface counters, in boot `boot`.
fn advance(mut c: Counts, boot: &str, now: Vec<(String, u64)>) -> Counts {
    if c.boot != boot {
        // A reboot: every counter started again from 0.
        c.seen.clear();
        c.boot = boot.to_string();
    }
    let mut seen = BTreeMap::new();
    for (name, tx) in now {
        let new = match c.seen.get(&name) {
            Some(&last) if tx >= last => tx - last,
            // Made anew since (its counter fell), or new since the last sample: all of it.
            _ => tx,
        };
        c.total = c.total.saturating_add(new);
        seen.insert(name, tx);
    }
    c.seen = seen;
    c
}

/// Each interface but loopback with its transmit bytes, from `/proc/net/dev`'s text.
pub fn parse(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, fields) = line.split_once(':')?;
            let name = name.trim();
            // Transmit bytes are the 9th number: 8 receive counters come first.
            let tx = fields.split_whitespace().nth(8)?.parse().ok()?;
            (name != "lo" && !name.is_empty()).then(|| (name.to_string(), tx))
        })
        .take(MAX_INTERFACES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 9000      10    0    0    0     0          0         0     9000      10    0    0    0     0       0          0
  eth0: 1000      20    0    0    0     0          0         0     5000      30    0    0    0     0       0          0
veth-a1:   12       1    0    0    0     0          0         0       77       1    0    0    0     0       0          0
";

    #[test]
    fn reads_transmit_bytes_of_every_interface_but_loopback() {
        assert_eq!(parse(NET_DEV), [("eth0".to_string(), 5000), ("veth-a1".to_string(), 77)]);
        assert!(parse("garbage\n\nno colon here\nx: 1 2\n").is_empty());
    }

    struct Machine {
        dir: PathBuf,
        source: Source,
    }

    impl Machine {
        fn new() -> Machine {
            let dir =
                std::env::temp_dir().join(format!("odseed-sent-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
            std::fs::create_dir_all(&dir).unwrap();
            let source = Source { net_dev: dir.join("net_dev"), boot_id: dir.join("boot_id") };
            let m = Machine { dir, source };
            m.set("boot-1", &[("eth0", 5000)]);
            m
        }

        fn set(&self, boot: &str, tx: &[(&str, u64)]) {
            let mut text = String::from("header\nheader\n    lo: 1 1 0 0 0 0 0 0 424242 1 0 0 0 0 0 0\n");
            for (name, bytes) in tx {
                text += &format!("{name}: 0 0 0 0 0 0 0 0 {bytes} 0 0 0 0 0 0 0\n");
            }
            std::fs::write(&self.source.net_dev, text).unwrap();
            std::fs::write(&self.source.boot_id, boot).unwrap();
        }
    }

    impl Drop for Machine {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn never_goes_down_across_restarts_resets_and_reboots() {
        let m = Machine::new();
        let sent = Sent::open(&m.dir, m.source.clone());
        assert_eq!(sent.sample(), 0, "what was sent before the first count is not counted");
        m.set("boot-1", &[("eth0", 5600)]);
        assert_eq!(sent.sample(), 600);
        // An interface made anew (its counter fell), and one new since: all of theirs count.
        m.set("boot-1", &[("eth0", 100), ("wg0", 40)]);
        assert_eq!(sent.sample(), 740);
        sent.persist();
        // An agent restart goes on from the file.
        m.set("boot-1", &[("eth0", 300), ("wg0", 40)]);
        let again = Sent::open(&m.dir, m.source.clone());
        assert_eq!(again.sample(), 940);
        // A reboot: every counter starts from 0, even one already past its old mark.
        again.persist();
        m.set("boot-2", &[("eth0", 5000)]);
        assert_eq!(Sent::open(&m.dir, m.source.clone()).sample(), 5940);
        // Unreadable numbers: the total stays, nothing is lost or made up.
        std::fs::remove_file(&m.source.net_dev).unwrap();
        let sent = Sent::open(&m.dir, m.source.clone());
        assert_eq!(sent.sample(), 5940);
        // A damaged file is set aside, never overwritten, and counting starts afresh.
        std::fs::write(m.dir.join("sent.json"), b"{oops").unwrap();
        m.set("boot-2", &[("eth0", 6000)]);
        assert_eq!(Sent::open(&m.dir, m.source.clone()).sample(), 0);
        assert_eq!(std::fs::read(m.dir.join("sent.json.bad")).unwrap(), b"{oops");
    }
}
