//! The supervisor of the agent's one transmission-daemon child (started by [`crate::launch`] with
//! fresh settings and a random RPC password each time): keeps its torrents equal to the desired
//! state, restarts it with
//! exponential backoff when it dies, stops it when there has been nothing to seed for
//! `idle_stop_secs`, and stops it gracefully (SIGTERM, then SIGKILL after a grace period) on shutdown.
//!
//! One thread owns the child; API handlers only read (`client()`, `state()`) and `notify()`.

use crate::config::DaemonConfig;
use crate::infohash::InfoHash;
use crate::launch::{launch, signal, stop_child};
use crate::state::Desired;
use crate::transmission::{entry_hash, Client};
use crate::wire::DaemonState;
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
    status: Mutex<Status>,
    wake: Condvar,
    restarts: AtomicU64,
}

struct Status {
    state: DaemonState,
    client: Option<Arc<Client>>,
    dirty: bool,
    shutdown: bool,
    /// Torrents the daemon refused, with its reason.
    errors: BTreeMap<InfoHash, String>,
}

/// The running child and how to reach it.
struct Running {
    child: Child,
    client: Arc<Client>,
    since: Instant,
}

impl Supervisor {
    /// Stops a daemon a killed agent may have left behind, then starts the supervisor thread.
    pub fn start(settings: Settings, desired: Arc<Desired>) -> std::io::Result<Supervisor> {
        std::fs::create_dir_all(settings.config_dir())?;
        stop_leftover(&settings);
        let shared = Arc::new(Shared {
            settings,
            desired,
            status: Mutex::new(Status {
                state: DaemonState::Stopped,
                client: None,
                dirty: true,
                shutdown: false,
                errors: BTreeMap::new(),
            }),
            wake: Condvar::new(),
            restarts: AtomicU64::new(0),
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

    /// Why the daemon refused `hash`, if it did.
    pub fn error_for(&self, hash: &InfoHash) -> Option<String> {
        self.shared.lock().errors.get(hash).cloned()
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
    fn lock(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: DaemonState, client: Option<Arc<Client>>) {
        let mut st = self.lock();
        st.state = state;
        st.client = client;
    }
}

fn supervise(shared: &Shared) {
    let grace = Duration::from_secs(shared.settings.daemon.stop_grace_secs);
    let idle_stop = Duration::from_secs(shared.settings.daemon.idle_stop_secs);
    let mut running: Option<Running> = None;
    let mut backoff = BACKOFF_FIRST;
    let mut retry_at: Option<Instant> = None;
    let mut idle_since: Option<Instant> = None;
    let mut reconcile_pending = true;
    let mut verify_pending = false;
    let mut silent_ticks = 0u32;

    loop {
        let dirty = {
            let mut st = shared.lock();
            if !st.dirty && !st.shutdown {
                let timeout = match (&running, retry_at) {
                    (Some(_), _) => TICK,
                    (None, Some(t)) => t.saturating_duration_since(Instant::now()),
                    (None, None) => Duration::from_secs(3600),
                };
                st = shared.wake.wait_timeout(st, timeout).unwrap_or_else(|e| e.into_inner()).0;
            }
            if st.shutdown {
                break;
            }
            std::mem::take(&mut st.dirty)
        };
        reconcile_pending |= dirty;
        let now = Instant::now();

        if let Some(r) = running.as_mut() {
            if let Ok(Some(status)) = r.child.try_wait() {
                log::warn!(
                    "daemon: transmission-daemon exited unexpectedly ({status}); restarting in {}s",
                    backoff.as_secs()
                );
                running = None;
                shared.restarts.fetch_add(1, Ordering::Relaxed);
                let _ = std::fs::remove_file(shared.settings.pid_file());
                shared.set_state(DaemonState::Backoff, None);
                retry_at = Some(now + backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            if now.duration_since(r.since) >= STABLE_AFTER {
                backoff = BACKOFF_FIRST;
            }
        }

        let wanted = !shared.desired.is_empty();
        match running.as_mut() {
            None if wanted => {
                if retry_at.is_some_and(|t| now < t) {
                    continue;
                }
                shared.set_state(DaemonState::Starting, None);
                match spawn(&shared.settings) {
                    Ok(r) => {
                        log::info!("daemon: transmission-daemon running (pid {})", r.child.id());
                        shared.set_state(DaemonState::Running, Some(r.client.clone()));
                        running = Some(r);
                        retry_at = None;
                        reconcile_pending = true;
                        verify_pending = true;
                    }
                    Err(e) => {
                        log::warn!("daemon: {e}; retrying in {}s", backoff.as_secs());
                        shared.set_state(DaemonState::Backoff, None);
                        retry_at = Some(now + backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            None => {
                retry_at = None;
                shared.set_state(DaemonState::Stopped, None);
            }
            Some(_) => {}
        }

        let Some(r) = running.as_mut() else { continue };
        let answered = if reconcile_pending {
            match reconcile(shared, &r.client, verify_pending) {
                Ok(()) => {
                    (reconcile_pending, verify_pending) = (false, false);
                    true
                }
                Err(e) => {
                    log::warn!("daemon: cannot bring the daemon's torrents up to date: {e}");
                    false
                }
            }
        } else {
            r.client.answers_within(PROBE_TIMEOUT)
        };
        silent_ticks = if answered { 0 } else { silent_ticks + 1 };
        if silent_ticks >= HUNG_AFTER_TICKS {
            log::warn!("daemon: transmission-daemon alive but its RPC silent for {silent_ticks} checks; restarting it");
            stop(&mut r.child, grace, &shared.settings.pid_file());
            running = None;
            silent_ticks = 0;
            shared.restarts.fetch_add(1, Ordering::Relaxed);
            shared.set_state(DaemonState::Backoff, None);
            retry_at = Some(now + backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
            continue;
        }
        if wanted {
            idle_since = None;
        } else if now.duration_since(*idle_since.get_or_insert(now)) >= idle_stop {
            log::info!("daemon: nothing to seed for {}s; stopping transmission-daemon", idle_stop.as_secs());
            shared.set_state(DaemonState::Stopped, None);
            stop(&mut r.child, grace, &shared.settings.pid_file());
            running = None;
            idle_since = None;
        }
    }

    if let Some(mut r) = running {
        shared.set_state(DaemonState::Stopped, None);
        log::info!("daemon: stopping transmission-daemon (pid {})", r.child.id());
        stop(&mut r.child, grace, &shared.settings.pid_file());
    }
}

/// Makes the daemon's torrents equal to the desired set: adds what is missing, removes (keeping the
/// data) what is no longer wanted. After a start it also verifies every torrent the daemon holds as
/// incomplete: after an unclean exit (a crash, kill -9) its resume files can say less than the data
/// on disk holds, and it would download again what is there (a re-added torrent reuses them too),
/// and starts them all.
fn reconcile(shared: &Shared, client: &Client, after_start: bool) -> Result<(), crate::transmission::Error> {
    let have: BTreeSet<InfoHash> = client.torrent_get(None, &["hashString"])?.iter().filter_map(entry_hash).collect();
    let desired = shared.desired.snapshot();
    let data_dir = shared.settings.data_dir.to_string_lossy();
    for (hash, entry) in desired.iter().filter(|(h, _)| !have.contains(h)) {
        match client.torrent_add(&entry.metainfo, &data_dir) {
            Ok(added) if added.info_hash != *hash => {
                // Cannot happen for canonical bencode (metainfo.rs insists on it); never loop on it.
                let why = format!("transmission-daemon computed info hash {} for it", added.info_hash);
                log::warn!("daemon: refusing {hash}: {why}");
                client.torrent_remove(&[added.info_hash])?;
                shared.lock().errors.insert(*hash, why);
            }
            Ok(_) => {
                log::info!("daemon: seeding {hash} ({:?})", entry.name);
                shared.lock().errors.remove(hash);
            }
            Err(e @ crate::transmission::Error::Rpc { .. }) => {
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
        client.torrent_remove(&extra)?;
        extra.iter().for_each(|h| log::info!("daemon: stopped seeding {h}"));
    }
    if after_start {
        // Status 1 and 2: queued for or in verification already.
        let stale: Vec<InfoHash> = client
            .torrent_get(None, &["hashString", "percentDone", "status"])?
            .iter()
            .filter(|t| t["percentDone"].as_f64().unwrap_or(0.0) < 1.0 && !matches!(t["status"].as_i64(), Some(1 | 2)))
            .filter_map(entry_hash)
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
fn spawn(s: &Settings) -> Result<Running, String> {
    let (child, client) = launch(&s.daemon, &s.data_dir, &s.config_dir(), &json!({}), Some(&s.pid_file()), None)?;
    Ok(Running { child, client, since: Instant::now() })
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
    let ours = |pid: u32| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
        let dir = s.config_dir();
        !zombie && cmdline.split(|b| *b == 0).any(|arg| arg == dir.as_os_str().as_encoded_bytes())
    };
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
