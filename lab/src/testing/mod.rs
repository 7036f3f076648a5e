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
