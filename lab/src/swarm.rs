//! A whole swarm in one network namespace: opentracker, an origin seeder, leechers, and boards
//! (agents holding a copy of the content, not yet engaged). Each host has its own address, so
//! Transmission treats them as distinct peers; bandwidth is capped with Transmission's own limits.

use crate::content::{self, Made};
use crate::leecher::{Kind, Leecher};
use crate::origin::{Origin, OriginClient};
use crate::webseed::WebSeed;
use crate::{Agent, AgentOptions, Netns, Tracker};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shape of a swarm.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spec {
    pub size: u64,
    pub leechers: usize,
    pub boards: usize,
    /// Caps in Transmission's kB/s (1000 bytes/s; 0 = none): the origin's and each board's upload,
    /// each leecher's download.
    pub origin_kbps: u32,
    pub helper_kbps: u32,
    pub leecher_kbps: u32,
    /// Upload cap of each leecher (0 = none).
    pub leecher_up_kbps: u32,
    /// The transmission-daemon of the origin, the leechers and the boards (None: the one on PATH).
    pub daemon: Option<PathBuf>,
    /// The boards' API over TLS with this certificate and key (PEM), as a provisioned EC2 pool's
    /// agents share them (None: plain HTTP).
    pub board_tls: Option<(String, String)>,
    /// Torrents of `size` bytes each (0 counts as 1), of different demand: see [`Spec::demand`].
    pub torrents: usize,
    /// The torrents' piece size (None: what transmission-create would choose, [`content::piece_size`]).
    pub piece_size: Option<u64>,
    /// The leechers' clients, in turn (leecher i runs `leecher_clients[i % len]`; empty: all
    /// Transmission).
    pub leecher_clients: Vec<Kind>,
    /// How many boards (the last ones) start empty, as fresh boards do; the others are given a
    /// copy of the content before the run.
    pub empty_boards: usize,
    /// A web seed of the origin's files at this many kB/s, in every torrent's `url-list` (None:
    /// none).
    pub webseed_kbps: Option<u32>,
    /// The origin's client (the publisher's), and its program (None: `daemon` for Transmission,
    /// the other's on PATH).
    pub origin_client: OriginClient,
    pub origin_program: Option<PathBuf>,
}

impl Spec {
    /// How many torrents.
    pub fn torrent_count(&self) -> usize {
        self.torrents.max(1)
    }

    /// How many leechers want torrent `i` (leechers 0 to that number less one): all of them the
    /// first, then fewer: ceil(leechers x (K - i) / K) of K torrents.
    pub fn demand(&self, i: usize) -> usize {
        let k = self.torrent_count();
        (self.leechers * (k - i.min(k))).div_ceil(k)
    }

    /// The client of leecher `i`.
    pub fn leecher_client(&self, i: usize) -> Kind {
        match self.leecher_clients.len() {
            0 => Kind::Transmission,
            n => self.leecher_clients[i % n],
        }
    }

    fn program(&self) -> PathBuf {
        self.daemon.clone().unwrap_or_else(|| odseed_proto::transmission::DaemonConfig::default().program)
    }
}

pub struct Swarm {
    pub tracker: Tracker,
    pub origin: Origin,
    pub leechers: Vec<Leecher>,
    pub boards: Vec<Agent>,
    /// The torrents, and their .torrent files (all in one directory, [`Swarm::torrents_dir`]).
    pub torrents: Vec<Made>,
    pub torrent_files: Vec<PathBuf>,
    /// How many leechers want each torrent ([`Spec::demand`]).
    pub demand: Vec<usize>,
    /// The web seed (`Spec::webseed_kbps`).
    pub webseed: Option<WebSeed>,
    dir: PathBuf,
}

/// Host addresses: the tracker, the origin, leecher i, board i.
pub fn tracker_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 1)
}
pub fn origin_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 2)
}
pub fn leecher_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 1, 10 + i as u8)
}
pub fn board_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 2, 10 + i as u8)
}
pub fn webseed_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 3)
}

impl Swarm {
    /// Builds the swarm under `dir` (tracker, origin seeding, boards idle); leechers are added by
    /// [`Swarm::start_leechers`], so a test can look at the swarm before the crowd arrives.
    pub fn start(ns: &Netns, dir: &Path, spec: &Spec, agent_bin: &Path) -> Result<Swarm, String> {
        for ip in [tracker_ip(), origin_ip()]
            .into_iter()
            .chain((0..spec.leechers).map(leecher_ip))
            .chain((0..spec.boards).map(board_ip))
        {
            ns.add_host(ip)?;
        }
        let origin_program = match (&spec.origin_program, spec.origin_client) {
            (Some(p), _) => p.clone(),
            (None, OriginClient::Transmission) => spec.program(),
            (None, other) => other.default_program(),
        };
        let origin = Origin::start(spec.origin_client, &origin_program, dir, origin_ip(), spec.origin_kbps)?;
        let announce = format!("http://{}:6969/announce", tracker_ip());
        let torrents_dir = dir.join("torrents");
        std::fs::create_dir_all(&torrents_dir).map_err(|e| format!("torrents dir: {e}"))?;
        let (mut torrents, mut torrent_files) = (Vec::new(), Vec::new());
        let webseed = match spec.webseed_kbps {
            Some(kbps) => {
                ns.add_host(webseed_ip())?;
                Some(WebSeed::start(webseed_ip(), 8080, origin.data_dir(), kbps)?)
            }
            None => None,
        };
        for i in 0..spec.torrent_count() {
            let name = content_name(i);
            let made = content::make_in_pieces(
                origin.data_dir(),
                &name,
                spec.size,
                0x0d5eed + i as u64,
                std::slice::from_ref(&announce),
                spec.piece_size.unwrap_or_else(|| content::piece_size(spec.size)),
            )?;
            let made = match &webseed {
                Some(w) => content::with_url_list(made, &w.url())?,
                None => made,
            };
            let file = torrents_dir.join(name.replace(".bin", ".torrent"));
            std::fs::write(&file, &made.bytes).map_err(|e| format!("torrent file: {e}"))?;
            torrents.push(made);
            torrent_files.push(file);
        }
        let mut boards = Vec::new();
        // The first `full` boards are given a copy of every torrent's content; the rest start empty.
        let full = spec.boards.saturating_sub(spec.empty_boards);
        for i in 0..spec.boards {
            let o = AgentOptions {
                host: board_ip(i),
                listen: board_ip(i),
                upload_kbps: spec.helper_kbps,
                program: spec.program(),
                tls: spec.board_tls.is_some(),
                ..AgentOptions::default()
            };
            let root = dir.join(format!("board{i}"));
            std::fs::create_dir_all(root.join("data")).map_err(|e| e.to_string())?;
            if let Some((cert, key)) = &spec.board_tls {
                std::fs::create_dir_all(root.join("tls")).map_err(|e| e.to_string())?;
                std::fs::write(root.join("tls/cert.pem"), cert).map_err(|e| format!("board certificate: {e}"))?;
                odseed_proto::fsutil::write_atomic(&root.join("tls/key.pem"), key.as_bytes(), 0o600)
                    .map_err(|e| format!("board key: {e}"))?;
            }
            for k in (0..torrents.len()).filter(|_| i < full) {
                let name = content_name(k);
                std::fs::copy(origin.data_dir().join(&name), root.join("data").join(&name))
                    .map_err(|e| format!("copy content: {e}"))?;
            }
            boards.push(Agent::start(agent_bin, &root, &o)?);
        }
        // Each board checks its copies (at once: their daemons work side by side), before the
        // tracker is there: their announces while they do go nowhere, and none is left counted.
        let all: Vec<&Made> = torrents.iter().collect();
        std::thread::scope(|s| {
            let checks: Vec<_> = boards.iter().take(full).map(|b| s.spawn(|| b.register(&all))).collect();
            checks.into_iter().try_for_each(|c| c.join().unwrap_or_else(|_| Err("a board's check panicked".into())))
        })?;
        boards.iter_mut().take(full).try_for_each(Agent::restart)?;
        let hashes: Vec<_> = torrents.iter().map(|t| t.meta.info_hash).collect();
        let tracker = Tracker::start(&dir.join("tracker"), tracker_ip(), 6969, &hashes)?;
        for t in &torrents {
            origin.add(&t.bytes)?;
        }
        let leechers = Vec::new();
        let demand = (0..torrents.len()).map(|i| spec.demand(i)).collect();
        Ok(Swarm {
            tracker,
            origin,
            leechers,
            boards,
            torrents,
            torrent_files,
            demand,
            webseed,
            dir: dir.to_path_buf(),
        })
    }

    /// The first torrent (the only one unless `Spec::torrents` says more).
    pub fn torrent(&self) -> &Made {
        &self.torrents[0]
    }

    pub fn torrent_file(&self) -> &Path {
        &self.torrent_files[0]
    }

    /// The directory holding every .torrent file.
    pub fn torrents_dir(&self) -> PathBuf {
        self.dir.join("torrents")
    }

    /// (torrent, leecher) for every leecher that wants a torrent.
    pub fn wants(&self) -> impl Iterator<Item = (&Made, &Leecher)> {
        self.torrents.iter().zip(&self.demand).flat_map(|(t, n)| self.leechers.iter().take(*n).map(move |l| (t, l)))
    }

    /// Starts the leechers and gives them the torrent.
    pub fn start_leechers(&mut self, spec: &Spec) -> Result<(), String> {
        for i in 0..spec.leechers {
            let (name, rates) = (format!("leecher{i}"), (spec.leecher_kbps, spec.leecher_up_kbps));
            let p = Leecher::start(&self.dir, &name, spec.leecher_client(i), leecher_ip(i), rates, &spec.program())?;
            let wanted: Vec<&Made> =
                self.torrents.iter().zip(&self.demand).filter(|(_, n)| i < **n).map(|(t, _)| t).collect();
            for (k, t) in wanted.iter().enumerate() {
                p.add(&t.bytes)?;
                // Transmission refuses a handshake from an address it is already handshaking with,
                // whatever the torrent, and waits longer after each failure: a leecher that opens
                // its torrents at once may never reach the origin for one of them. One at a time,
                // each once connected (or after 10 s).
                if k + 1 < wanted.len() {
                    let hash = t.meta.info_hash;
                    let connected = || p.sample(&hash).map(|s| s.peers).filter(|n| *n > 0);
                    let _ = crate::wait_until(Duration::from_secs(10), "a first peer", connected);
                }
            }
            self.leechers.push(p);
        }
        Ok(())
    }

    /// Waits until the origin and every leecher have announced (so a scrape counts them all).
    pub fn wait_announced(&self, timeout: std::time::Duration) -> Result<(), String> {
        let start = std::time::Instant::now();
        let mut asked = 0;
        crate::wait_until(timeout, "every peer's first announce", || {
            let late: Vec<_> = self.torrents.iter().filter(|t| !self.origin.announced(&t.meta.info_hash)).collect();
            // A client whose first announce failed waits a while before the next: ask for one
            // every 10 s.
            if start.elapsed().as_secs() / 10 > asked {
                asked = start.elapsed().as_secs() / 10;
                late.iter().for_each(|t| self.origin.reannounce(&t.meta.info_hash));
            }
            (late.is_empty() && self.wants().all(|(t, l)| l.announced(&t.meta.info_hash))).then_some(())
        })
        .map_err(|e| format!("{e} (the origin, {}: announced {})", self.origin.describe(), self.origin_announced()))
    }

    /// Which torrents the origin has announced, for a message.
    fn origin_announced(&self) -> String {
        let done = self.torrents.iter().filter(|t| self.origin.announced(&t.meta.info_hash)).count();
        format!("{done} of {}", self.torrents.len())
    }

    /// A controller config naming every board (and its token file).
    pub fn controller_config(&self) -> String {
        self.boards
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let pin = a.pin.map(|p| format!("cert_sha256 = \"{p}\"\n")).unwrap_or_default();
                format!(
                    "[[board]]\nname = \"board{i}\"\nurl = \"{}\"\ntoken_file = \"{}\"\n{pin}",
                    a.url,
                    a.root.join("token").display()
                )
            })
            .collect()
    }

    /// The leechers whose file differs from the origin's, byte for byte (as "leecher1 (payload2.bin)").
    pub fn mismatched(&self) -> Result<Vec<String>, String> {
        let mut differ = Vec::new();
        for i in 0..self.torrents.len() {
            let name = content_name(i);
            let want =
                std::fs::read(self.origin.data_dir().join(&name)).map_err(|e| format!("origin's {name}: {e}"))?;
            for l in self.leechers.iter().take(self.demand[i]) {
                if std::fs::read(l.data_dir.join(&name)).map_or(true, |got| got != want) {
                    differ.push(format!("{} ({name})", l.name));
                }
            }
        }
        Ok(differ)
    }

    /// The directory it lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True once every leecher has the whole file.
    pub fn all_complete(&self) -> bool {
        self.wants().all(|(t, l)| l.percent_done(&t.meta.info_hash) >= 1.0)
    }
}

/// The content file of torrent `i`: payload.bin, payload1.bin, ...
pub fn content_name(i: usize) -> String {
    if i == 0 {
        "payload.bin".into()
    } else {
        format!("payload{i}.bin")
    }
}
