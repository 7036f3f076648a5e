//! `odseed status`: every configured board (reachable?, daemon, what it seeds), each EC2 pool's
//! tagged instances and their states, and the ledger. [`gather`] asks them into a [`Report`],
//! which prints itself as a table or, with `--json`, as one JSON object.

use crate::config::Config;
use crate::error::Error;
use crate::helpers::ec2::{Fleet, URL_TAG};
use crate::ledger::{HelperKind, Ledger};
use crate::output::say;
use odseed_proto::agent_client::AgentClient;
use odseed_proto::wire::{DaemonState, Torrent};
use odseed_proto::InfoHash;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// What `odseed status` found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub boards: Vec<BoardStatus>,
    pub ec2: Vec<PoolStatus>,
    pub ledger: Vec<Engaged>,
    #[serde(skip)]
    pub ledger_path: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct BoardStatus {
    pub name: String,
    pub url: String,
    pub reachable: bool,
    pub daemon: Option<DaemonState>,
    /// Its transmission-daemon's version, once its agent knows it.
    pub daemon_version: Option<String>,
    /// Why it could not be asked, or could not list its torrents.
    pub error: Option<String>,
    pub torrents: Vec<Torrent>,
}

/// One `[[ec2.pool]]`: its instances, or why they could not be listed.
#[derive(Debug, Serialize)]
pub struct PoolStatus {
    pub region: Option<String>,
    pub error: Option<String>,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Serialize)]
pub struct InstanceStatus {
    pub id: String,
    pub state: String,
    pub public_ip: Option<String>,
    pub agent_url: Option<String>,
}

/// One ledger entry, with whether the run that engaged it still lives.
#[derive(Debug, Serialize)]
pub struct Engaged {
    pub kind: HelperKind,
    pub name: String,
    pub region: Option<String>,
    pub info_hash: InfoHash,
    pub owner_pid: u32,
    pub owner_alive: bool,
}

pub fn status(cfg: &Config, ledger: &Ledger, as_json: bool) -> Result<(), Error> {
    let report = gather(cfg, ledger)?;
    if as_json {
        // Our own plain structs: serialising them cannot fail.
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        report.print();
    }
    Ok(())
}

/// Asks every board and EC2 pool, and reads the ledger.
pub fn gather(cfg: &Config, ledger: &Ledger) -> Result<Report, Error> {
    let boards = cfg.boards.iter().map(|b| board(&b.name, &b.url, &b.token)).collect();
    let ec2 = match Fleet::from_config(cfg.ec2.as_ref()) {
        Err(e) => vec![PoolStatus { region: None, error: Some(e.to_string()), instances: Vec::new() }],
        Ok(fleet) => fleet
            .pools
            .iter()
            .map(|p| match p.describe() {
                Ok(list) => PoolStatus {
                    region: Some(p.region().to_string()),
                    error: None,
                    instances: list
                        .iter()
                        .map(|i| InstanceStatus {
                            id: i.id.clone(),
                            state: i.state.to_string(),
                            public_ip: i.public_ip.clone(),
                            agent_url: i.tag(URL_TAG).map(str::to_string),
                        })
                        .collect(),
                },
                Err(e) => PoolStatus {
                    region: Some(p.region().to_string()),
                    error: Some(e.to_string()),
                    instances: Vec::new(),
                },
            })
            .collect(),
    };
    let ledger_entries = ledger
        .entries()?
        .into_iter()
        .map(|e| Engaged {
            kind: e.kind,
            owner_alive: e.owner.alive(),
            owner_pid: e.owner.pid,
            name: e.name,
            region: e.region,
            info_hash: e.info_hash,
        })
        .collect();
    Ok(Report { boards, ec2, ledger: ledger_entries, ledger_path: ledger.path().to_path_buf() })
}

fn board(name: &str, url: &str, token: &str) -> BoardStatus {
    let c = AgentClient::new(url, token, Duration::from_secs(5));
    let health = c.health();
    let torrents = health.as_ref().ok().map(|_| c.list());
    let error = match (&health, &torrents) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(_), Some(Err(e))) => Some(e.to_string()),
        _ => None,
    };
    BoardStatus {
        name: name.into(),
        url: url.into(),
        reachable: health.is_ok(),
        daemon: health.as_ref().ok().map(|h| h.daemon),
        daemon_version: health.as_ref().ok().and_then(|h| h.daemon_version.clone()),
        error,
        torrents: torrents.and_then(Result::ok).unwrap_or_default(),
    }
}

impl Report {
    /// The human tables: boards, EC2 instances, the ledger.
    pub fn print(&self) {
        say(&format!("{:<16} {:<28} {:<10} {:<9} {:<8} SEEDS", "BOARD", "URL", "REACHABLE", "DAEMON", "VERSION"));
        for b in &self.boards {
            let seeds: Vec<String> = (b.torrents.iter())
                .map(|t| format!("{} ({}, {:.0}%)", t.name, t.state.as_str(), t.percent_done * 100.0))
                .collect();
            let seeds = match &b.error {
                Some(err) => err.clone(),
                None if seeds.is_empty() => "-".into(),
                None => seeds.join(", "),
            };
            let reach = if b.reachable { "yes" } else { "NO" };
            let daemon = b.daemon.map_or("-", DaemonState::as_str);
            // "3.00 (bb6b5a062e)" -> "3.00": the build id is in --json.
            let version = b.daemon_version.as_deref().and_then(|v| v.split_whitespace().next()).unwrap_or("-");
            say(&format!("{:<16} {:<28} {:<10} {:<9} {:<8} {seeds}", b.name, b.url, reach, daemon, version));
        }
        if !self.ec2.is_empty() {
            println!();
            say(&format!("{:<16} {:<22} {:<14} AGENT", "REGION", "INSTANCE", "STATE"));
        }
        for p in &self.ec2 {
            let region = p.region.as_deref().unwrap_or("-");
            if let Some(err) = &p.error {
                say(&format!("{region:<16} {err}"));
            }
            for i in &p.instances {
                let agent = i.agent_url.as_deref().or(i.public_ip.as_deref()).unwrap_or("-");
                say(&format!("{region:<16} {:<22} {:<14} {agent}", i.id, i.state));
            }
        }
        let path = self.ledger_path.display();
        if self.ledger.is_empty() {
            println!();
            say(&format!("ledger {path}: nothing engaged"));
            return;
        }
        println!();
        say(&format!("ledger {path}: engaged"));
        for e in &self.ledger {
            let owner = if e.owner_alive {
                format!("run pid {}", e.owner_pid)
            } else {
                format!("dead run pid {} (run `odseed release`)", e.owner_pid)
            };
            let region = e.region.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
            say(&format!("  {} {}{region} seeds {} for {owner}", e.kind, e.name, e.info_hash));
        }
    }
}
