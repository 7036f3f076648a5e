//! The supervisor of the agent's one transmission-daemon child (started by
//! `odseed_proto::transmission::launch` with fresh settings and a random RPC password each time):
//! keeps its torrents equal to the desired state, restarts it with [`Backoff`] when it dies or
//! hangs, stops it when there has been nothing to seed for `idle_stop_secs`, and stops it
//! gracefully (SIGTERM, then SIGKILL after a grace period) on shutdown.
//!
//! One thread owns the child; API handlers only read (`client()`, `state()`) and `notify()`.

use crate::inventory::Inventory;
use crate::limits::Overrides;
use crate::sent::{self, Sent};
use crate::state::Desired;
use crate::upload::Uploads;
use odseed_proto::infohash::InfoHash;
use odseed_proto::procfs;
use odseed_proto::transmission::launch::{launch, signal, stop_child};
use odseed_proto::transmission::DaemonConfig;
use odseed_proto::transmission::{version, Client, Status as TorrentStatus, TorrentInfo, Version};
use odseed_proto::wire::DaemonState;
use odseed_proto::wire::Limits;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A daemon that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How often a running daemon is checked for having died or hung.
const TICK: Duration = Duration::from_secs(1);
/// How often the bytes sent are sampled while no daemon runs (a reboot loses at most this much).
const SENT_EVERY: Duration = Duration::from_secs(30);
/// A daemon whose RPC fails this many checks in a row is hung: it is stopped and started again.
const HUNG_AFTER_TICKS: u32 = 10;
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the supervisor keeps things, and how it runs the daemon.
#[derive(Debug, Clone)]
pub struct Settings {
    pub daemon: DaemonConfig,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl Settings {
    fn config_dir(&self) -> PathBuf {
        self.state_dir.join("transmission")
    }
    fn pid_file(&self) -> PathBuf {
        self.state_dir.join("daemon.pid")
    }
}

/// A handle on the supervisor thread.
pub struct Supervisor {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    settings: Settings,
    desired: Arc<Desired>,
    inventory: Arc<Inventory>,
    status: Mutex<Status>,
    wake: Condvar,
    restarts: AtomicU64,
    uploads: Uploads,
    sent: Sent,
    limits: Overrides,
}

struct Status {
    state: DaemonState,
    client: Option<Arc<Client>>,
    dirty: bool,
    shutdown: bool,
    /// Torrents the daemon refused, with its reason.
    errors: BTreeMap<InfoHash, String>,
    /// The daemon's version: from `--version` at the agent's start, then from each daemon started.
    version: Option<Version>,
}

/// The running child and how to reach it.
struct Running {
    child: Child,
    client: Arc<Client>,
    since: Instant,
    /// When a 3.x daemon started with uTP off gets it back (see [`DaemonConfig::utp_off_secs`]).
    utp_on_at: Option<Instant>,
}

impl Supervisor {
    /// Stops a daemon a killed agent may have left behind, then starts the supervisor thread.
    pub fn start(settings: Settings, desired: Arc<Desired>, inventory: Arc<Inventory>) -> std::io::Result<Supervisor> {
        std::fs::create_dir_all(settings.config_dir())?;
        stop_leftover(&settings);
        let version = match version::probe(&settings.daemon.program, PROBE_TIMEOUT * 2) {
            Ok(v) => {
                log::info!("daemon: transmission-daemon {}", v.text);
                Some(v)
            }
            Err(e) => {
                log::warn!("daemon: {e}");
                None
            }
        };
        let settings_state_dir = settings.state_dir.clone();
        let shared = Arc::new(Shared {
            settings,
            desired,
            inventory,
            status: Mutex::new(Status {
                state: DaemonState::Stopped,
                client: None,
                dirty: true,
                shutdown: false,
                errors: BTreeMap::new(),
                version,
            }),
            wake: Condvar::new(),
            restarts: AtomicU64::new(0),
            uploads: Uploads::open(&settings_state_dir),
            sent: Sent::open(&settings_state_dir, sent::Source::default()),
            limits: Overrides::open(&settings_state_dir),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new().name("supervisor".into()).spawn(move || supervise(&thread_shared))?;
        Ok(Supervisor { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Tells the supervisor the desired state changed.
    pub fn notify(&self) {
        self.shared.lock().dirty = true;
        self.shared.wake.notify_all();
    }

    pub fn state(&self) -> DaemonState {
        self.shared.lock().state
    }

    /// The daemon's RPC client, while it runs.
    pub fn client(&self) -> Option<Arc<Client>> {
        let st = self.shared.lock();
        st.client.clone().filter(|_| st.state == DaemonState::Running)
    }

    /// The daemon's version, once known.
    pub fn version(&self) -> Option<Version> {
        self.shared.lock().version.clone()
    }

    /// Why the daemon refused `hash`, if it did.
    pub fn error_for(&self, hash: &InfoHash) -> Option<String> {
        self.shared.lock().errors.get(hash).cloned()
    }

    /// Bytes uploaded in all, ever (never goes down), as of the last check (every [`TICK`]).
    pub fn uploaded_total(&self) -> u64 {
        self.shared.uploads.total()
    }

    /// Bytes sent by the machine's interfaces other than loopback, ever (never goes down), read now.
    pub fn sent_total(&self) -> u64 {
        self.shared.sent.sample()
    }

    /// The daemon's caps (kB/s, 0: none): what the controller set, else the config's upload cap.
    pub fn limits(&self) -> Limits {
        self.shared.limits()
    }

    /// Sets the daemon's caps, kept across restarts; applied at once if the daemon runs.
    pub fn set_limits(&self, l: Limits) -> Result<(), String> {
        self.shared.limits.set(l).map_err(|e| format!("cannot keep the limits: {e}"))?;
        log::info!(
            "daemon: upload capped at {} kB/s, download at {} kB/s (0: none) by the controller",
            l.upload_kbps,
            l.download_kbps
        );
        if let Some(c) = self.client() {
            let args = speed_settings(l);
            c.call("session-set", args).map_err(|e| format!("kept, but the daemon did not take it yet: {e}"))?;
        }
        Ok(())
    }

    /// Times the daemon died and was started again.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// Stops the daemon gracefully and ends the thread. Safe to call twice.
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn limits(&self) -> Limits {
        self.limits.get().unwrap_or(Limits { upload_kbps: self.settings.daemon.upload_kbps, download_kbps: 0 })
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: DaemonState, client: Option<Arc<Client>>) {
        let mut st = self.lock();
        st.state = state;
        st.client = client;
    }
}

/// Doubling waits between attempts to (re)start the daemon, from [`BACKOFF_FIRST`] up to
/// [`BACKOFF_MAX`]; back to the first once a daemon has stayed up for [`STABLE_AFTER`].
struct Backoff {
    next: Duration,
    retry_at: Option<Instant>,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: BACKOFF_FIRST, retry_at: None }
    }

    /// The next attempt waits from `now`; how long.
    fn schedule(&mut self, now: Instant) -> Duration {
        let wait = self.next;
        self.retry_at = Some(now + wait);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }

    fn waiting(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }

    /// How long the supervisor may sleep: until the next attempt, if one is due.
    fn sleep(&self) -> Option<Duration> {
        self.retry_at.map(|t| t.saturating_duration_since(Instant::now()))
    }
}

/// The supervisor thread's state from one wake-up to the next.
struct Supervision<'a> {
    shared: &'a Shared,
    grace: Duration,
    idle_stop: Duration,
    running: Option<Running>,
    backoff: Backoff,
    idle_since: Option<Instant>,
    reconcile_pending: bool,
    verify_pending: bool,
    silent_ticks: u32,
}

/// Keeps a daemon running while there is something to seed, its torrents the desired ones: wakes
/// on a change or every [`TICK`], restarts a daemon that died or hung (with backoff), stops an idle
/// one, and stops it for good on shutdown.
fn supervise(shared: &Shared) {
    let mut s = Supervision {
        shared,
        grace: Duration::from_secs(shared.settings.daemon.stop_grace_secs),
        idle_stop: Duration::from_secs(shared.settings.daemon.idle_stop_secs),
        running: None,
        backoff: Backoff::new(),
        idle_since: None,
        reconcile_pending: true,
        verify_pending: false,
        silent_ticks: 0,
    };
    while let Some(dirty) = s.wait() {
        shared.sent.sample();
        s.reconcile_pending |= dirty;
        let now = Instant::now();
        if s.reap(now) || !s.start_if_wanted(now) {
            continue;
        }
        s.check(now);
    }
    if let Some(mut r) = s.running.take() {
        shared.set_state(DaemonState::Stopped, None);
        count_uploads(shared, &r.client);
        log::info!("daemon: stopping transmission-daemon (pid {})", r.child.id());
        stop(&mut r.child, s.grace, &shared.settings.pid_file());
    }
    shared.uploads.persist();
    shared.sent.persist();
    shared.inventory.persist();
}

/// Fields of the daemon's counts.
const COUNTS: &[&str] = &["hashString", "uploadedEver", "haveValid", "status"];

/// Takes in the daemon's counts of `list` (uploads, content held). What a torrent holds is not
/// taken while it is being checked: its count starts again from 0 then.
fn observe(shared: &Shared, list: &[TorrentInfo]) {
    shared.uploads.observe(list.iter().filter_map(|t| Some((t.hash()?, t.uploaded_ever()?))));
    let checked = list.iter().filter(|t| !t.status().is_some_and(TorrentStatus::verifying));
    shared.inventory.observe(checked.filter_map(|t| Some((t.hash()?, t.have_valid()?))));
}

/// Takes in the daemon's counts; whether it answered.
fn count_uploads(shared: &Shared, client: &Client) -> bool {
    match client.torrent_get_within(PROBE_TIMEOUT, None, COUNTS) {
        Ok(list) => {
            observe(shared, &list);
            true
        }
        Err(_) => false,
    }
}

impl Supervision<'_> {
    /// Sleeps until notified, the next tick or the next attempt; whether the desired state changed,
    /// or `None` on shutdown.
    fn wait(&self) -> Option<bool> {
        let mut st = self.shared.lock();
        if !st.dirty && !st.shutdown {
            let timeout = match &self.running {
                Some(_) => TICK,
                // Idle, it still wakes now and then to count the bytes the machine sends.
                None => self.backoff.sleep().unwrap_or(SENT_EVERY).min(SENT_EVERY),
            };
            st = self.shared.wake.wait_timeout(st, timeout).unwrap_or_else(|e| e.into_inner()).0;
        }
        (!st.shutdown).then(|| std::mem::take(&mut st.dirty))
    }

    /// A daemon that died is forgotten and its restart scheduled: true if so.
    fn reap(&mut self, now: Instant) -> bool {
        let Some(r) = self.running.as_mut() else { return false };
        if let Ok(Some(status)) = r.child.try_wait() {
            log::warn!(
                "daemon: transmission-daemon exited unexpectedly ({status}); restarting in {}s",
                self.backoff.next.as_secs()
            );
            let _ = std::fs::remove_file(self.shared.settings.pid_file());
            self.lost(now);
            return true;
        }
        if now.duration_since(r.since) >= STABLE_AFTER {
            self.backoff.next = BACKOFF_FIRST;
        }
        false
    }

    /// The daemon is gone (died or hung): counted, and started again after the backoff.
    fn lost(&mut self, now: Instant) {
        self.running = None;
        self.shared.restarts.fetch_add(1, Ordering::Relaxed);
        self.shared.set_state(DaemonState::Backoff, None);
        self.backoff.schedule(now);
    }

    /// Starts the daemon if there is something to seed and no backoff to wait; true if one runs.
    fn start_if_wanted(&mut self, now: Instant) -> bool {
        if self.running.is_some() {
            return true;
        }
        if self.shared.desired.is_empty() {
            self.backoff.retry_at = None;
            self.shared.set_state(DaemonState::Stopped, None);
            return false;
        }
        if self.backoff.waiting(now) {
            return false;
        }
        self.shared.set_state(DaemonState::Starting, None);
        match spawn(self.shared) {
            Ok(r) => {
                let version = r.client.session_get().ok().and_then(|s| Version::from_session(&s));
                match &version {
                    Some(v) => log::info!(
                        "daemon: transmission-daemon {} running (pid {}, RPC version {})",
                        v.text,
                        r.child.id(),
                        v.rpc.map_or("?".into(), |n| n.to_string())
                    ),
                    None => log::info!("daemon: transmission-daemon running (pid {})", r.child.id()),
                }
                if version.is_some() {
                    self.shared.lock().version = version;
                }
                self.shared.set_state(DaemonState::Running, Some(r.client.clone()));
                self.running = Some(r);
                self.backoff.retry_at = None;
                (self.reconcile_pending, self.verify_pending) = (true, true);
                true
            }
            Err(e) => {
                log::warn!("daemon: {e}; retrying in {}s", self.backoff.next.as_secs());
                self.shared.set_state(DaemonState::Backoff, None);
                self.backoff.schedule(now);
                false
            }
        }
    }

    /// A running daemon: brings its torrents up to date (or just asks it whether it answers),
    /// restarts it if it has been silent too long, stops it if it has been idle too long.
    fn check(&mut self, now: Instant) {
        let Some(r) = self.running.as_mut() else { return };
        let answered = if self.reconcile_pending {
            match reconcile(self.shared, &r.client, self.verify_pending) {
                Ok(()) => {
                    (self.reconcile_pending, self.verify_pending) = (false, false);
                    true
                }
                Err(e) => {
                    log::warn!("daemon: cannot bring the daemon's torrents up to date: {e}");
                    false
                }
            }
        } else {
            count_uploads(self.shared, &r.client)
        };
        self.silent_ticks = if answered { 0 } else { self.silent_ticks + 1 };
        if r.utp_on_at.is_some_and(|t| now >= t) && utp_back_on(&r.client, self.shared.settings.daemon.utp_off_secs) {
            r.utp_on_at = None;
        }
        if self.silent_ticks >= HUNG_AFTER_TICKS {
            log::warn!(
                "daemon: transmission-daemon alive but its RPC silent for {} checks; restarting it",
                self.silent_ticks
            );
            stop(&mut r.child, self.grace, &self.shared.settings.pid_file());
            self.silent_ticks = 0;
            self.lost(now);
            return;
        }
        if !self.shared.desired.is_empty() {
            self.idle_since = None;
        } else if now.duration_since(*self.idle_since.get_or_insert(now)) >= self.idle_stop {
            log::info!("daemon: nothing to seed for {}s; stopping transmission-daemon", self.idle_stop.as_secs());
            self.shared.uploads.persist();
            self.shared.set_state(DaemonState::Stopped, None);
            stop(&mut r.child, self.grace, &self.shared.settings.pid_file());
            self.running = None;
            self.idle_since = None;
        }
    }
}

/// Makes the daemon's torrents equal to the desired set: adds what is missing, removes (keeping the
/// data) what is no longer wanted. After a start it also verifies every torrent the daemon holds as
/// incomplete: after an unclean exit (a crash, kill -9) its resume files can say less than the data
/// on disk holds, and it would download again what is there (a re-added torrent reuses them too),
/// and starts them all.
fn reconcile(shared: &Shared, client: &Client, after_start: bool) -> Result<(), odseed_proto::transmission::Error> {
    let have: BTreeSet<InfoHash> =
        client.torrent_get(None, &["hashString"])?.iter().filter_map(TorrentInfo::hash).collect();
    let desired = shared.desired.snapshot();
    let data_dir = shared.settings.data_dir.to_string_lossy();
    for (hash, entry) in desired.iter().filter(|(h, _)| !have.contains(h)) {
        // The daemon reads the agent's own copy of the .torrent: no copy of it (base64, a third
        // larger) in the agent's memory. A daemon that cannot read it (in a chroot without the
        // state dir) is given the bytes instead.
        let file = shared.desired.file_of(hash);
        let mut how = "read from its .torrent file";
        let by_file = client.torrent_add_file(&file.to_string_lossy(), &data_dir);
        let added = match by_file {
            Err(odseed_proto::transmission::Error::Rpc { .. }) => match shared.desired.metainfo(hash) {
                Ok(metainfo) => {
                    how = "given its bytes: it cannot read the agent's file";
                    client.torrent_add(&metainfo, &data_dir)
                }
                Err(e) => {
                    log::warn!("daemon: cannot read the metainfo of {hash}: {e}");
                    shared.lock().errors.insert(*hash, format!("cannot read its metainfo: {e}"));
                    continue;
                }
            },
            other => other,
        };
        match added {
            Ok(added) if added.info_hash != *hash => {
                // Cannot happen for canonical bencode (metainfo.rs insists on it); never loop on it.
                let why = format!("transmission-daemon computed info hash {} for it", added.info_hash);
                log::warn!("daemon: refusing {hash}: {why}");
                client.torrent_remove(&[added.info_hash])?;
                shared.lock().errors.insert(*hash, why);
            }
            Ok(_) => {
                log::info!("daemon: seeding {hash} ({:?}), {how}", entry.name);
                shared.lock().errors.remove(hash);
            }
            Err(e @ odseed_proto::transmission::Error::Rpc { .. }) => {
                log::warn!("daemon: transmission-daemon refused {hash}: {e}");
                shared.lock().errors.insert(*hash, e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    let wanted: BTreeSet<InfoHash> = desired.iter().map(|(h, _)| *h).collect();
    shared.lock().errors.retain(|h, _| wanted.contains(h));
    let extra: Vec<InfoHash> = have.difference(&wanted).copied().collect();
    if !extra.is_empty() {
        // Their counts go with them: take them in one last time.
        observe(shared, &client.torrent_get(Some(&extra), COUNTS)?);
        client.torrent_remove(&extra)?;
        shared.uploads.forget(&extra);
        extra.iter().for_each(|h| log::info!("daemon: stopped seeding {h}"));
    }
    if after_start {
        // Those queued for or in verification already are left to it.
        let stale: Vec<InfoHash> = client
            .torrent_get(None, &["hashString", "percentDone", "status"])?
            .iter()
            .filter(|t| t.percent_done().unwrap_or(0.0) < 1.0 && !t.status().is_some_and(TorrentStatus::verifying))
            .filter_map(TorrentInfo::hash)
            .collect();
        if !stale.is_empty() {
            log::info!("daemon: verifying {} incomplete torrent(s) against the data on disk", stale.len());
            client.torrent_verify(&stale)?;
        }
        // A resume file written while a torrent was being verified says "paused": start every one
        // (a no-op for running torrents; those being verified start when it is done).
        if !wanted.is_empty() {
            client.torrent_start(&wanted.iter().copied().collect::<Vec<_>>())?;
        }
    }
    Ok(())
}

/// Starts the agent's daemon and records its pid (for `stop_leftover`).
fn spawn(shared: &Shared) -> Result<Running, String> {
    let s = &shared.settings;
    let mut extra = speed_settings(shared.limits());
    let utp_off = utp_window(shared.lock().version.as_ref(), s.daemon.utp_off_secs);
    if utp_off.is_some() {
        extra["utp-enabled"] = json!(false);
    }
    let (child, client) = launch(&s.daemon, &s.data_dir, &s.config_dir(), &extra, Some(&s.pid_file()), None)?;
    let since = Instant::now();
    Ok(Running { child, client, since, utp_on_at: utp_off.map(|w| since + w) })
}

/// How long a daemon of `version` starts with uTP off: only 3.x, whose uTP-first connections never
/// reach a TCP-only peer (its TCP fallback is dropped at once; fixed in 4.0.1). A version not known
/// is left as it is.
fn utp_window(version: Option<&Version>, off_secs: u64) -> Option<Duration> {
    (off_secs > 0 && version.is_some_and(|v| v.major == 3)).then(|| Duration::from_secs(off_secs))
}

/// The end of a daemon's uTP window: uTP on, and every torrent announced again, so that 3.x peers
/// that came during the window (they could not connect to it) are now reached by it. Transmission
/// takes the announce only once its tracker's minimum interval (2 min by default) has passed since
/// the last one: the window is longer than that. True once done.
fn utp_back_on(client: &Client, off_secs: u64) -> bool {
    match client.call("session-set", json!({ "utp-enabled": true })) {
        Ok(_) => {
            let _ = client.call("torrent-reannounce", json!({}));
            log::info!("daemon: uTP on again after {off_secs}s, peers asked for again (TCP-only peers already in the swarm were reached by TCP)");
            true
        }
        Err(e) => {
            log::warn!("daemon: cannot turn uTP back on yet: {e}");
            false
        }
    }
}

/// Transmission's settings for `l` (`session-set` arguments and settings.json keys alike).
fn speed_settings(l: Limits) -> serde_json::Value {
    json!({
        "speed-limit-up": l.upload_kbps,
        "speed-limit-up-enabled": l.upload_kbps > 0,
        "speed-limit-down": l.download_kbps,
        "speed-limit-down-enabled": l.download_kbps > 0,
    })
}

/// Stops the agent's daemon and removes its pid file.
fn stop(child: &mut Child, grace: Duration, pid_file: &Path) {
    stop_child(child, grace);
    let _ = std::fs::remove_file(pid_file);
}

/// A daemon left running by an agent killed with -9 still holds the ports: stop it first. Only a
/// process whose command line names our config dir is touched.
fn stop_leftover(s: &Settings) {
    let Some(pid) = std::fs::read_to_string(s.pid_file()).ok().and_then(|t| t.trim().parse::<u32>().ok()) else {
        return;
    };
    let dir = s.config_dir();
    let ours = |pid: u32| procfs::alive(pid) && procfs::has_arg(pid, dir.as_os_str().as_encoded_bytes());
    if ours(pid) {
        log::warn!("daemon: stopping transmission-daemon (pid {pid}) left over from an earlier agent");
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(s.daemon.stop_grace_secs);
        while ours(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if ours(pid) {
            signal(pid, libc::SIGKILL);
        }
    }
    let _ = std::fs::remove_file(s.pid_file());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transmission_3_starts_with_utp_off() {
        let v = |t: &str| Version::parse(t).unwrap();
        let window = Some(Duration::from_secs(150));
        assert_eq!(utp_window(Some(&v("transmission-daemon 3.00 (bb6b5a062e)")), 150), window);
        assert_eq!(utp_window(Some(&v("4.0.5 (a6fe2a64aa)")), 150), None);
        assert_eq!(utp_window(Some(&v("4.1.0-beta.2 (ac5c9e082d)")), 150), None);
        assert_eq!(utp_window(Some(&v("3.00 (bb6b5a062e)")), 0), None, "0: never off");
        assert_eq!(utp_window(None, 150), None, "a version not known is left alone");
    }
}
