//! Leechers that are not Transmission, as most of a real swarm is not: aria2c and libtorrent (through
//! Debian's python3-libtorrent). Each downloads one torrent into a dir of its own, bound to one host
//! address of the namespace, and exits 0 once it has the whole file (no seeding afterwards).

use crate::process::Proc;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which program a [`Leecher`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Aria2,
    Libtorrent,
}

impl Client {
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Aria2 => "aria2c",
            Client::Libtorrent => "libtorrent",
        }
    }
}

pub struct Leecher {
    pub client: Client,
    pub data_dir: PathBuf,
    pub proc: Proc,
}

/// Downloads with python3-libtorrent's session until the torrent is complete, then exits 0.
const LIBTORRENT: &str = r#"
import libtorrent as lt, sys, time
torrent, save, ip = sys.argv[1:4]
s = lt.session({'listen_interfaces': ip + ':6881', 'outgoing_interfaces': ip, 'enable_dht': False,
                'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False, 'announce_ip': ip,
                'allow_multiple_connections_per_ip': True})
h = s.add_torrent({'ti': lt.torrent_info(torrent), 'save_path': save})
while not h.status().is_seeding:
    st = h.status()
    print('%.3f %d peers' % (st.progress, st.num_peers), flush=True)
    time.sleep(1)
print('done', flush=True)
"#;

impl Leecher {
    /// Starts `client` on `ip` with `torrent` (its bytes), downloading under `dir/<name>`.
    pub fn start(dir: &Path, name: &str, client: Client, ip: Ipv4Addr, torrent: &[u8]) -> Result<Leecher, String> {
        let root = dir.join(name);
        let data_dir = root.join("data");
        std::fs::create_dir_all(&data_dir).map_err(|e| format!("{name}: {e}"))?;
        let file = root.join("t.torrent");
        std::fs::write(&file, torrent).map_err(|e| format!("{name}: {e}"))?;
        let cmd = match client {
            Client::Aria2 => {
                let mut c = Command::new("aria2c");
                c.arg(format!("--dir={}", data_dir.display()))
                    .arg(format!("--interface={ip}"))
                    .args(["--seed-time=0", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false"])
                    .args(["--enable-peer-exchange=false", "--listen-port=6881", "--summary-interval=1"])
                    .args(["--console-log-level=notice", "--file-allocation=none", "--check-certificate=false"])
                    .arg(&file);
                c
            }
            Client::Libtorrent => {
                let mut c = Command::new("/usr/bin/python3");
                c.arg("-u").arg("-c").arg(LIBTORRENT).arg(&file).arg(&data_dir).arg(ip.to_string());
                c
            }
        };
        let proc = Proc::spawn(name, cmd, &root.join(format!("{}.log", client.as_str())))?;
        Ok(Leecher { client, data_dir, proc })
    }
}
