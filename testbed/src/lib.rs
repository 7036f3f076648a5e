//! Real parts on one machine, for odseed's tests, benchmarks and lab: temp dirs, network namespaces,
//! processes that are stopped on drop, opentracker, plain transmission-daemon peers, odseed agents.
//! Nothing here is a mock: every part is the real program, on addresses inside a namespace we made.

pub mod agent;
pub mod content;
pub mod dir;
pub mod moto;
pub mod netns;
pub mod peer;
pub mod process;
pub mod swarm;
pub mod tracker;

use std::time::{Duration, Instant};

pub use agent::{Agent, AgentOptions};
pub use dir::TempDir;
pub use moto::Moto;
pub use netns::Netns;
pub use peer::Peer;
pub use process::Proc;
pub use tracker::Tracker;

/// Polls `f` until it gives a value or `timeout` passes; the error says what was awaited.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("gave up after {}s waiting for {what}", timeout.as_secs_f32()));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The `odseed-agent` binary of this build: `$ODSEED_AGENT_BIN`, or the one beside the running test's
/// target dir; if that was not built (`cargo test -p odseed` alone), it is built into a target dir
/// of its own (a nested cargo on the same dir could wait forever on the lock the test run holds).
pub fn agent_bin() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(p) = std::env::var_os("ODSEED_AGENT_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test binary> -> target/<profile>
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    let beside = profile_dir.join("odseed-agent");
    if beside.exists() {
        return beside;
    }
    BUILT
        .get_or_init(|| {
            let target_dir = profile_dir.parent().unwrap_or(Path::new("target")).join("testbed-agent");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "-q", "-p", "odseed-agent", "--bin", "odseed-agent", "--target-dir"])
                .arg(&target_dir)
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "cannot build odseed-agent: run `cargo build --workspace` first"
            );
            target_dir.join("debug").join("odseed-agent")
        })
        .clone()
}

/// A TCP port nobody listens on right now, on `ip`.
pub fn free_port(ip: std::net::Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}
