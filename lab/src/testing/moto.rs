//! A moto server (the EC2 stand-in, from PyPI) on 127.0.0.1 in a temp dir.

use crate::process::Proc;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Moto {
    pub port: u16,
    proc: Proc,
}

impl Moto {
    /// Starts `moto_server` on 127.0.0.1 and a free port; returns once it listens.
    pub fn start(dir: &Path) -> Result<Moto, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("moto dir: {e}"))?;
        let port = crate::free_port(Ipv4Addr::LOCALHOST);
        let mut cmd = Command::new(bin());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]).current_dir(dir);
        let proc = Proc::spawn("moto_server", cmd, &dir.join("moto.log"))?;
        let mut m = Moto { port, proc };
        crate::wait_until(Duration::from_secs(60), "moto_server to listen", || {
            if let Some(s) = m.proc.exited() {
                return Some(Err(format!("moto_server exited ({s}): {}", m.proc.log_tail(5))));
            }
            TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(200))
                .ok()
                .map(|_| Ok(()))
        })??;
        Ok(m)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// `$ODSEED_MOTO_SERVER` (scripts/test points it at the venv scripts/setup makes), else
/// `moto_server` on PATH.
fn bin() -> PathBuf {
    std::env::var_os("ODSEED_MOTO_SERVER").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("moto_server"))
}
