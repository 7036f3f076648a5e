//! A tracker, HTTP and UDP on one port: opentracker in a temp dir, with a whitelist of info hashes,
//! or (for tests) WebTorrent's `bittorrent-tracker`, a second implementation nobody here wrote.

use crate::process::Proc;
use odseed_proto::InfoHash;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub struct Tracker {
    pub ip: Ipv4Addr,
    pub port: u16,
    proc: Proc,
}

impl Tracker {
    /// Starts opentracker on `ip:port` (TCP and UDP) knowing only `hashes`; returns once it listens.
    pub fn start(dir: &Path, ip: Ipv4Addr, port: u16, hashes: &[InfoHash]) -> Result<Tracker, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("tracker dir: {e}"))?;
        let list: String = hashes.iter().map(|h| format!("{h}\n")).collect();
        std::fs::write(dir.join("whitelist"), list).map_err(|e| format!("tracker whitelist: {e}"))?;
        let mut cmd = Command::new("opentracker");
        let port_s = port.to_string();
        cmd.args(["-i", &ip.to_string(), "-p", &port_s, "-P", &port_s, "-w", "whitelist", "-d", "."]);
        cmd.current_dir(dir);
        Tracker::spawn("opentracker", cmd, &dir.join("opentracker.log"), ip, port)
    }

    /// Starts WebTorrent's `bittorrent-tracker` (node, `lab/node/tracker.mjs`, which
    /// `$ODSEED_NODE_TRACKER` names; scripts/setup installs it) on `ip:port`, TCP and UDP. It
    /// knows every hash announced to it.
    #[cfg(feature = "testing")]
    pub fn start_webtorrent(dir: &Path, ip: Ipv4Addr, port: u16) -> Result<Tracker, String> {
        let script = std::env::var_os("ODSEED_NODE_TRACKER")
            .ok_or("ODSEED_NODE_TRACKER is not set (scripts/test sets it to lab/node/tracker.mjs)")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("tracker dir: {e}"))?;
        let mut cmd = Command::new("node");
        cmd.arg(script).arg(ip.to_string()).arg(port.to_string());
        let t = Tracker::spawn("bittorrent-tracker", cmd, &dir.join("bittorrent-tracker.log"), ip, port)?;
        // TCP listens first; the script says "listening" once the UDP socket is bound too.
        crate::wait_until(Duration::from_secs(10), "bittorrent-tracker's UDP socket", || {
            t.proc.log_text().contains("listening on").then_some(())
        })?;
        Ok(t)
    }

    fn spawn(name: &str, cmd: Command, log: &Path, ip: Ipv4Addr, port: u16) -> Result<Tracker, String> {
        let proc = Proc::spawn(name, cmd, log)?;
        let mut t = Tracker { ip, port, proc };
        crate::wait_until(Duration::from_secs(20), &format!("{name} to listen"), || {
            if let Some(s) = t.proc.exited() {
                return Some(Err(format!("{name} exited ({s}): {}", t.proc.log_tail(5))));
            }
            TcpStream::connect_timeout(&(ip, port).into(), Duration::from_millis(200)).ok().map(|_| Ok(()))
        })??;
        Ok(t)
    }

    /// The HTTP announce URL.
    pub fn announce_url(&self) -> String {
        format!("http://{}:{}/announce", self.ip, self.port)
    }

    /// The UDP announce URL.
    pub fn udp_url(&self) -> String {
        format!("udp://{}:{}/announce", self.ip, self.port)
    }

    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}
