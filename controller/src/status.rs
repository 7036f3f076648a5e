//! `odseed status`: every configured board (reachable?, daemon, what it seeds, what content it
//! holds), per torrent the boards that hold it, each EC2 pool's tagged instances and their states,
//! and the ledger. [`gather`] asks them into a [`Report`],
//! which prints itself as a table or, with `--json`, as one JSON object.

use crate::budget::Budget;
use crate::config::Config;
use crate::ec2::{Instance, InstanceState};
use crate::error::Error;
use crate::helpers::ec2::{Ec2Pool, Fleet, URL_TAG};
use crate::ledger::{HelperKind, Ledger};
use crate::output::say;
use odseed_proto::agent_client::{AgentClient, Error as AgentError};
use odseed_proto::wire::{Content, DaemonState, Health, Torrent};
use odseed_proto::InfoHash;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// What `odseed status` found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub boards: Vec<BoardStatus>,
    /// Per torrent, the boards that hold its content (whole or in part).
    pub held: Vec<HeldBy>,
    pub ec2: Vec<PoolStatus>,
    /// Where the AWS credentials came from (never a secret) and when they expire.
    pub aws_credentials: Option<CredentialStatus>,
    pub ledger: Vec<Engaged>,
    #[serde(skip)]
    pub ledger_path: PathBuf,
    /// This month's EC2 use, when `[ec2]` or `[budget]` is configured.
    pub budget: Option<BudgetStatus>,
}

#[derive(Debug, Serialize)]
pub struct CredentialStatus {
    pub source: String,
    /// RFC 3339; `None` for credentials that do not expire.
    pub expires: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BudgetStatus {
    pub month: String,
    pub used_hours: f64,
    /// `None`: no `[budget]` limit.
    pub left_hours: Option<f64>,
    /// Dollars spent this month (instance time, addresses, bytes out), its limit, GB sent out.
    pub dollars: f64,
    pub dollars_limit: Option<f64>,
    pub gb_out: f64,
    /// The month per region and per instance (dollars before the month's free GB).
    pub regions: Vec<MonthOf>,
    pub instances: Vec<MonthOf>,
    /// Why the budget file could not be read.
    pub error: Option<String>,
}

/// A region's or an instance's month.
#[derive(Debug, Serialize)]
pub struct MonthOf {
    /// The region, or the instance's id.
    pub name: String,
    pub region: String,
    pub hours: f64,
    pub gb_out: f64,
    pub dollars: f64,
}

/// Each instance's month, and each region's (their sum).
fn months(instances: &std::collections::BTreeMap<String, crate::budget::InstanceUse>) -> (Vec<MonthOf>, Vec<MonthOf>) {
    let of = |name: &str, u: &crate::budget::InstanceUse| MonthOf {
        name: name.to_string(),
        region: u.region.clone(),
        hours: u.seconds / 3600.0,
        gb_out: u.bytes_out as f64 / 1e9,
        dollars: u.dollars,
    };
    let mut regions: std::collections::BTreeMap<String, crate::budget::InstanceUse> = Default::default();
    for u in instances.values() {
        let r = regions.entry(u.region.clone()).or_default();
        r.region.clone_from(&u.region);
        r.seconds += u.seconds;
        r.bytes_out += u.bytes_out;
        r.dollars += u.dollars;
    }
    (regions.iter().map(|(n, u)| of(n, u)).collect(), instances.iter().map(|(n, u)| of(n, u)).collect())
}

#[derive(Debug, Serialize)]
pub struct BoardStatus {
    pub name: String,
    pub url: String,
    /// "http" or "https".
    pub transport: &'static str,
    /// Over https: whether the agent's certificate is the pinned one.
    pub pin: Option<Pin>,
    pub reachable: bool,
    pub daemon: Option<DaemonState>,
    /// Its transmission-daemon's version, once its agent knows it.
    pub daemon_version: Option<String>,
    /// Why it could not be asked, or could not list its torrents.
    pub error: Option<String>,
    pub torrents: Vec<Torrent>,
    /// The content it holds, seeded or not (None: it did not say; an agent older than
    /// `GET /v1/content` does not).
    pub content: Option<Content>,
}

/// A torrent's content and the boards that hold it.
#[derive(Debug, Serialize)]
pub struct HeldBy {
    pub info_hash: InfoHash,
    pub name: String,
    /// Boards that hold it whole.
    pub whole: Vec<String>,
    /// Boards that hold part of it, with how much (0.0 to 1.0).
    pub part: Vec<(String, f64)>,
}

/// Per torrent, which boards hold it (ordered by name).
fn held_by(boards: &[BoardStatus]) -> Vec<HeldBy> {
    let mut by: std::collections::BTreeMap<(String, InfoHash), HeldBy> = Default::default();
    for b in boards {
        for t in b.content.iter().flat_map(|c| &c.torrents).filter(|t| t.have_bytes > 0) {
            let e = by.entry((t.name.clone(), t.info_hash)).or_insert_with(|| HeldBy {
                info_hash: t.info_hash,
                name: t.name.clone(),
                whole: Vec::new(),
                part: Vec::new(),
            });
            match t.complete() {
                true => e.whole.push(b.name.clone()),
                false => e.part.push((b.name.clone(), t.percent_done)),
            }
        }
    }
    by.into_values().collect()
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
    /// "http" or "https", for a running instance's agent.
    pub transport: Option<&'static str>,
    /// Over https, for a running instance: whether its agent's certificate is the pinned one.
    pub pin: Option<Pin>,
    /// Why a running instance's agent could not be asked.
    pub error: Option<String>,
}

/// What became of a pinned certificate when the agent was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pin {
    /// The agent served the pinned certificate.
    Matched,
    /// The TLS handshake failed: another certificate (or none pinned).
    Failed,
    /// No answer at all: nothing is known of its certificate.
    Unknown,
}

impl Pin {
    fn of(url: &str, result: &Result<Health, AgentError>) -> Option<Pin> {
        url.starts_with("https://").then_some(match result {
            Ok(_) => Pin::Matched,
            Err(AgentError::Tls { .. }) => Pin::Failed,
            Err(_) => Pin::Unknown,
        })
    }

    fn column(pin: Option<Pin>) -> &'static str {
        match pin {
            None => "-",
            Some(Pin::Matched) => "pinned",
            Some(Pin::Failed) => "PIN FAILED",
            Some(Pin::Unknown) => "pinned?",
        }
    }
}

fn transport(url: &str) -> &'static str {
    if url.starts_with("https://") {
        "https"
    } else {
        "http"
    }
}

/// One ledger entry, with whether the run that engaged it still lives.
#[derive(Debug, Serialize)]
pub struct Engaged {
    pub kind: HelperKind,
    pub name: String,
    pub region: Option<String>,
    /// `null`: an instance still being provisioned.
    pub info_hash: Option<InfoHash>,
    /// The torrent's name, as recorded when it was engaged.
    pub torrent: Option<String>,
    pub owner_pid: u32,
    pub owner_alive: bool,
}

pub fn status(cfg: &Config, ledger: &Ledger, as_json: bool) -> Result<(), Error> {
    let report = gather(cfg, ledger)?;
    if as_json {
        // Our own plain structs: serialising them cannot fail. Names and messages come from agents.
        println!("{}", crate::output::json_line(serde_json::to_value(&report).unwrap_or_default()));
    } else {
        report.print();
    }
    Ok(())
}

/// Asks every board and EC2 pool, and reads the ledger.
pub fn gather(cfg: &Config, ledger: &Ledger) -> Result<Report, Error> {
    let boards: Vec<BoardStatus> = cfg
        .boards
        .iter()
        .map(|b| board(&b.name, AgentClient::with_trust(&b.url, &b.token, b.trust(), Duration::from_secs(5))))
        .collect();
    let held = held_by(&boards);
    let fleet = Fleet::from_config(cfg.ec2.as_ref());
    let aws_credentials =
        fleet.as_ref().ok().and_then(|f| f.credentials.as_ref()).and_then(|c| c.source()).map(|(source, expires)| {
            CredentialStatus { source, expires: expires.map(crate::ec2::credentials::format_time) }
        });
    let ec2 = match fleet {
        Err(e) => vec![PoolStatus { region: None, error: Some(e.to_string()), instances: Vec::new() }],
        Ok(fleet) => fleet
            .pools
            .iter()
            .map(|p| match p.describe() {
                Ok(list) => PoolStatus {
                    region: Some(p.region().to_string()),
                    error: None,
                    instances: list.iter().map(|i| instance(p, i)).collect(),
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
            torrent: e.torrent,
        })
        .collect();
    let b = Budget::at(&Budget::default_path(), &cfg.budget);
    let budget = (cfg.ec2.is_some() || b.limited()).then(|| {
        let hours = |d: Duration| d.as_secs_f64() / 3600.0;
        match b.standing_now() {
            Ok(s) => BudgetStatus {
                regions: months(&s.instances).0,
                instances: months(&s.instances).1,
                used_hours: hours(s.used),
                left_hours: s.left.map(hours),
                dollars: s.dollars,
                dollars_limit: s.dollars_limit,
                gb_out: s.bytes_out as f64 / 1e9,
                month: s.month,
                error: None,
            },
            Err(e) => BudgetStatus {
                month: String::new(),
                used_hours: 0.0,
                left_hours: None,
                dollars: 0.0,
                dollars_limit: cfg.budget.dollars_per_month,
                gb_out: 0.0,
                regions: Vec::new(),
                instances: Vec::new(),
                error: Some(e.to_string()),
            },
        }
    });
    Ok(Report {
        boards,
        held,
        ec2,
        aws_credentials,
        ledger: ledger_entries,
        ledger_path: ledger.path().to_path_buf(),
        budget,
    })
}

/// An instance, and for a running one its agent's transport and certificate.
fn instance(p: &Ec2Pool, i: &Instance) -> InstanceStatus {
    let mut s = InstanceStatus {
        id: i.id.clone(),
        state: i.state.to_string(),
        public_ip: i.public_ip.clone(),
        agent_url: i.tag(URL_TAG).map(str::to_string),
        transport: None,
        pin: None,
        error: None,
    };
    if i.state != InstanceState::Running {
        return s;
    }
    let Some(url) = p.agent_url(i) else { return s };
    s.transport = Some(transport(&url));
    match p.client(&crate::helpers::agent::Http, &url, Duration::from_secs(5)) {
        Ok(c) => {
            let health = c.health();
            s.pin = Pin::of(&url, &health);
            s.error = health.err().map(|e| e.to_string());
        }
        Err(why) => s.error = Some(why),
    }
    s.agent_url = Some(url);
    s
}

fn board(name: &str, c: AgentClient) -> BoardStatus {
    let url = c.base();
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
        transport: transport(url),
        pin: Pin::of(url, &health),
        reachable: health.is_ok(),
        daemon: health.as_ref().ok().map(|h| h.daemon),
        daemon_version: health.as_ref().ok().and_then(|h| h.daemon_version.clone()),
        error,
        torrents: torrents.and_then(Result::ok).unwrap_or_default(),
        content: health.as_ref().ok().and_then(|_| c.content().ok()),
    }
}

impl Report {
    /// The human tables: boards, EC2 instances, the ledger.
    pub fn print(&self) {
        say(&format!(
            "{:<16} {:<28} {:<11} {:<10} {:<9} {:<8} SEEDS",
            "BOARD", "URL", "TLS", "REACHABLE", "DAEMON", "VERSION"
        ));
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
            let tls = Pin::column(b.pin);
            say(&format!("{:<16} {:<28} {tls:<11} {reach:<10} {daemon:<9} {version:<8} {seeds}", b.name, b.url));
        }
        if !self.held.is_empty() {
            println!();
            say("CONTENT HELD");
        }
        for h in &self.held {
            let mut on: Vec<String> = h.whole.clone();
            on.extend(h.part.iter().map(|(b, f)| format!("{b} ({:.0}%)", f * 100.0)));
            say(&format!("  {} ({}): {} board(s) whole: {}", h.name, h.info_hash, h.whole.len(), on.join(", ")));
        }
        if !self.ec2.is_empty() {
            println!();
            if let Some(c) = &self.aws_credentials {
                let expires = c.expires.as_ref().map(|t| format!(", expiring at {t}")).unwrap_or_default();
                say(&format!("AWS credentials from {}{expires}", c.source));
            }
            say(&format!("{:<16} {:<22} {:<14} {:<11} AGENT", "REGION", "INSTANCE", "STATE", "TLS"));
        }
        for p in &self.ec2 {
            let region = p.region.as_deref().unwrap_or("-");
            if let Some(err) = &p.error {
                say(&format!("{region:<16} {err}"));
            }
            for i in &p.instances {
                let agent = i.agent_url.as_deref().or(i.public_ip.as_deref()).unwrap_or("-");
                let error = i.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default();
                let tls = Pin::column(i.pin);
                say(&format!("{region:<16} {:<22} {:<14} {tls:<11} {agent}{error}", i.id, i.state));
            }
        }
        if let Some(b) = &self.budget {
            println!();
            match (&b.error, b.left_hours) {
                (Some(e), _) => say(&format!("EC2 budget: {e}")),
                (None, Some(left)) => {
                    say(&format!("EC2 budget {}: {:.2} instance-hours used, {left:.2} left", b.month, b.used_hours))
                }
                (None, None) => say(&format!("EC2 {}: {:.2} instance-hours used (no [budget])", b.month, b.used_hours)),
            }
            if b.error.is_none() {
                let limit = b.dollars_limit.map_or(" (no dollars_per_month)".into(), |l| format!(" of ${l:.2}"));
                say(&format!("EC2 {}: ${:.2}{limit}, {:.2} GB out", b.month, b.dollars, b.gb_out));
                for m in b.regions.iter().chain(&b.instances) {
                    let (hours, gb, dollars) = (m.hours, m.gb_out, m.dollars);
                    let what = if m.name == m.region { m.name.clone() } else { format!("  {} ({})", m.name, m.region) };
                    say(&format!("  {what}: {hours:.2} instance-hours, {gb:.3} GB out, ${dollars:.2}"));
                }
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
            let torrent = match (&e.torrent, e.info_hash) {
                (Some(name), Some(hash)) => format!("{name} ({hash})"),
                (_, Some(hash)) => hash.to_string(),
                (_, None) => "nothing yet (provisioning)".into(),
            };
            say(&format!("  {} {}{region} seeds {torrent} for {owner}", e.kind, e.name));
        }
    }
}
