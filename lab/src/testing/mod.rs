//! What only odseed's tests and benchmarks need (the `testing` feature): a moto server, an
//! `odseed-agent` built by cargo when the test run did not build one, and [`hostile`] clients.

pub mod hostile;
mod moto;

pub use moto::Moto;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The `odseed-agent` of this build ([`crate::agent_bin`]); if there is none (`cargo test -p
/// odseed` alone), it is built into a target dir of its own (a nested cargo on the test run's own
/// dir could wait forever on the lock the run holds). Panics if it cannot be had: tests need it.
pub fn agent_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    if let Ok(found) = crate::agent_bin() {
        return found;
    }
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap_or_default();
            // target/<profile>/deps/<test binary> -> target
            let target = exe.ancestors().nth(3).unwrap_or(Path::new("target")).to_path_buf();
            let target_dir = target.join("lab-agent");
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

/// The transmission-daemon versions the daemon tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// Debian 12's 3.00, from PATH.
    T3,
    /// 4.x from a Debian 13 root, through `$ODSEED_TRANSMISSION_4` (scripts/transmission-daemon-4).
    T4,
}

impl Daemon {
    pub const ALL: [Daemon; 2] = [Daemon::T3, Daemon::T4];

    /// The program to give as `daemon.program`. Panics if 4.x is not set up: a test of it must not
    /// pass without it.
    pub fn program(self) -> PathBuf {
        match self {
            Daemon::T3 => PathBuf::from("transmission-daemon"),
            Daemon::T4 => std::env::var_os("ODSEED_TRANSMISSION_4")
                .map(PathBuf::from)
                .expect("ODSEED_TRANSMISSION_4 is not set (scripts/test points it at scripts/transmission-daemon-4)"),
        }
    }

    /// Its major version.
    pub fn major(self) -> u32 {
        match self {
            Daemon::T3 => 3,
            Daemon::T4 => 4,
        }
    }
}

/// Declares `fn $name(d: Daemon)` and one test per daemon version calling it.
#[macro_export]
macro_rules! each_daemon {
    ($(#[$doc:meta])* fn $name:ident($d:ident: Daemon) $body:block) => {
        $(#[$doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run($d: $crate::testing::Daemon) $body
            #[test]
            fn transmission_3() {
                run($crate::testing::Daemon::T3)
            }
            #[test]
            fn transmission_4() {
                run($crate::testing::Daemon::T4)
            }
        }
    };
}

/// A file system of `bytes` mounted at a dir (tmpfs: only what is written takes memory), for tests
/// that hand an agent torrents larger than this machine's disk; unmounted on drop. Declare it
/// before the agent that uses it, so it outlives the agent.
pub struct LargeDisk(PathBuf);

impl LargeDisk {
    pub fn mount(dir: &Path, bytes: u64) -> Result<LargeDisk, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount tmpfs on {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(LargeDisk(dir.to_path_buf()))
    }
}

impl Drop for LargeDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
