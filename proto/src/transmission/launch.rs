//! Starting and stopping one transmission-daemon: its settings.json (RPC on 127.0.0.1 with a
//! random password), the spawn in the foreground, readiness by polling its RPC with a deadline, and
//! a graceful stop (SIGTERM, then SIGKILL). Used by the agent's supervisor and the lab's peers. [`DaemonConfig`] is the agent config's
//! `[daemon]` table.

use super::rpc::Client;
use crate::fsutil::{random_hex, write_atomic};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How odseed runs a transmission-daemon: the agent config's `[daemon]` table, and the lab's peers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// The transmission-daemon executable (a name on PATH or a path).
    pub program: PathBuf,
    /// BitTorrent listening port.
    pub peer_port: u16,
    /// Local address for peer connections and tracker announces ("0.0.0.0" = any).
    pub bind_address: IpAddr,
    /// Port of the daemon's RPC on 127.0.0.1; 0 picks a free one at each start.
    pub rpc_port: u16,
    /// Transmission's disk cache, MiB (small on 512 MiB boards).
    pub cache_mb: u32,
    /// Peer connections, per torrent and overall.
    pub peer_limit: u32,
    /// Upload cap in Transmission's kB/s (1000 bytes/s, as its `speed-limit-up` counts them; measured
    /// in the lab's traces); 0 = no cap.
    pub upload_kbps: u32,
    /// Stop the daemon after this many seconds with nothing to seed (gives the RAM back).
    pub idle_stop_secs: u64,
    /// After SIGTERM, how long the daemon may take to exit before SIGKILL.
    pub stop_grace_secs: u64,
    /// Transmission 3.x only: uTP off for this long after each start of the daemon, then on again
    /// with a new announce; 0 = never off. 3.x connects to a peer by uTP first and drops its TCP
    /// fallback (fixed in 4.0.1), so with uTP on it never reaches a TCP-only peer (rTorrent) that
    /// was in the swarm before it; with uTP off, no 3.x peer can connect to it.
    pub utp_off_secs: u64,
    /// Distributed hash table and local peer discovery (off: helpers serve a known swarm).
    pub dht: bool,
    pub lpd: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            program: PathBuf::from("transmission-daemon"),
            peer_port: 51413,
            bind_address: IpAddr::from([0, 0, 0, 0]),
            rpc_port: 0,
            cache_mb: 4,
            peer_limit: 50,
            upload_kbps: 0,
            idle_stop_secs: 300,
            stop_grace_secs: 10,
            utp_off_secs: 150,
            dht: false,
            lpd: false,
        }
    }
}

/// The RPC user of every daemon odseed starts (the password is random per start).
const RPC_USER: &str = "odseed";
const READY_DEADLINE: Duration = Duration::from_secs(30);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings.json odseed gives a transmission-daemon, plus `extra` keys (which win).
pub fn settings_json(d: &DaemonConfig, data_dir: &Path, rpc_port: u16, password: &str, extra: &Value) -> Value {
    let peer_bind = peer_bind(d.bind_address);
    let mut settings = json!({
        "download-dir": data_dir,
        "incomplete-dir-enabled": false,
        "rpc-enabled": true,
        "rpc-bind-address": "127.0.0.1",
        "rpc-port": rpc_port,
        "rpc-authentication-required": true,
        "rpc-username": RPC_USER,
        "rpc-password": password,
        "rpc-whitelist-enabled": true,
        "rpc-whitelist": "127.0.0.1",
        "peer-port": d.peer_port,
        "peer-port-random-on-start": false,
        "port-forwarding-enabled": false,
        "bind-address-ipv4": peer_bind.0,
        "bind-address-ipv6": peer_bind.1,
        "dht-enabled": d.dht,
        "lpd-enabled": d.lpd,
        "cache-size-mb": d.cache_mb,
        "peer-limit-global": d.peer_limit,
        "peer-limit-per-torrent": d.peer_limit,
        "speed-limit-up": d.upload_kbps,
        "speed-limit-up-enabled": d.upload_kbps > 0,
        "ratio-limit-enabled": false,
        "idle-seeding-limit-enabled": false,
        "download-queue-enabled": false,
        "seed-queue-enabled": false,
        "queue-stalled-enabled": false,
        "start-added-torrents": true,
        "watch-dir-enabled": false,
        "script-torrent-done-enabled": false,
        "blocklist-enabled": false,
        "message-level": 1,
        "umask": 0o022,
    });
    if let (Some(map), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    settings
}

/// The daemon's IPv4 and IPv6 peer addresses for `bind_address`. Transmission always listens on
/// both families: an unspecified address (`0.0.0.0` or `::`) means every address of both; a
/// specific one binds its family to it and the other family to loopback only, so nothing outside
/// reaches a port the config did not name.
fn peer_bind(addr: std::net::IpAddr) -> (String, String) {
    use std::net::IpAddr;
    match addr {
        a if a.is_unspecified() => ("0.0.0.0".into(), "::".into()),
        IpAddr::V4(v4) => (v4.to_string(), "::1".into()),
        IpAddr::V6(v6) => ("127.0.0.1".into(), v6.to_string()),
    }
}

/// Writes settings.json into `config_dir` (the daemon must be stopped: it rewrites the file on exit),
/// spawns transmission-daemon in the foreground and waits until its RPC answers. The child gets
/// SIGTERM if the thread that launched it dies; its pid goes to `pid_file` right after the spawn,
/// its output to `log` if given.
pub fn launch(
    d: &DaemonConfig,
    data_dir: &Path,
    config_dir: &Path,
    extra: &Value,
    pid_file: Option<&Path>,
    log: Option<&Path>,
) -> Result<(Child, Arc<Client>), String> {
    let rpc_port = match d.rpc_port {
        0 => free_port().map_err(|e| format!("cannot find a free port for the RPC: {e}"))?,
        p => p,
    };
    // A fresh random password, unless the caller chose one (a test that hands it to the controller).
    let password = match extra.get("rpc-password").and_then(Value::as_str) {
        Some(p) => p.to_string(),
        None => random_hex(16).map_err(|e| format!("cannot read /dev/urandom: {e}"))?,
    };
    let settings = settings_json(d, data_dir, rpc_port, &password, extra);
    let file = config_dir.join("settings.json");
    std::fs::create_dir_all(config_dir)
        .and_then(|()| write_atomic(&file, settings.to_string().as_bytes(), 0o600))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;

    let mut cmd = Command::new(&d.program);
    cmd.arg("--foreground").arg("--config-dir").arg(config_dir);
    cmd.stdin(Stdio::null()).process_group(0);
    // Its output goes to `log` if given, else where ours goes (the agent's journal).
    if let Some(log) = log {
        let out = std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdout(out).stderr(err);
    }
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", d.program.display()))?;
    // Recorded at once: an agent killed during the start must still find this daemon next time.
    if let Some(file) = pid_file {
        let _ = write_atomic(file, child.id().to_string().as_bytes(), 0o644);
    }

    let url = format!("http://127.0.0.1:{rpc_port}/transmission/rpc");
    let client = Arc::new(Client::new(&url, Some((RPC_USER, &password)), RPC_TIMEOUT));
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("transmission-daemon exited during start ({status})"));
        }
        if client.session_get().is_ok() {
            return Ok((child, client));
        }
        if Instant::now() >= deadline {
            stop_child(&mut child, Duration::from_secs(2));
            return Err(format!(
                "transmission-daemon's RPC did not answer on 127.0.0.1:{rpc_port} within {}s",
                READY_DEADLINE.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then SIGKILL after `grace`; reaps the child. Safe to call on an exited child.
pub fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    log::warn!("daemon: pid {} ignored SIGTERM for {}s; killing it", child.id(), grace.as_secs());
    let _ = child.kill();
    let _ = child.wait();
}

/// Makes the process `cmd` starts get SIGTERM when the thread that started it dies (even if this
/// process is killed with -9), so no child outlives its owner.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `sig` to `pid` (a child of ours, or a leftover daemon checked via /proc).
pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory effects on this process.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}
