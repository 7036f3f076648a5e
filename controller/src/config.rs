//! The controller's config: TOML at `--config PATH` or `$XDG_CONFIG_HOME/odseed/odseed.toml`.
//! Secrets (the Transmission password, the boards' tokens) come from files it names, read here once.
//! Relative paths are relative to the config file; `~/` is the home directory.

use crate::error::Error;
use crate::policy::{EmptyHelpers, Placement};
use odseed_proto::agent_client::Trust;
use odseed_proto::tls::Fingerprint;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

pub const EXAMPLE: &str = r#"[transmission]                    # your own seeder (omit to scrape the trackers instead)
url = "http://127.0.0.1:9091/transmission/rpc"

[[board]]                         # one per helper running odseed-agent
name = "pi1"
url = "http://192.168.1.20:5050"
token_file = "pi1.token"          # the agent's token, copied from the board

# [ec2]                           # EC2 instances tagged odseed:role=helper, started when needed
# max_instances = 2
# [[ec2.pool]]
# region = "eu-west-3"
# token_file = "ec2.token"        # the token of the instances' agents"#;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[transmission]`, the older spelling of `[client]` with `kind = "transmission"`: moved
    /// into `client` at load, so always `None` after [`parse`].
    pub transmission: Option<TransmissionConfig>,
    /// The publisher's own BitTorrent client.
    pub client: Option<ClientConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default, rename = "board")]
    pub boards: Vec<BoardConfig>,
    pub ec2: Option<Ec2Config>,
    #[serde(default)]
    pub watch: WatchConfig,
    #[serde(default)]
    pub budget: BudgetConfig,
}

/// `[watch]`: what `odseed watch` keeps healthy. The catalogue is every torrent the publisher's
/// client seeds (those with `label`, if set), or the `.torrent` files of `dir`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Target seeders per leecher, from 0 to 1, for every torrent.
    pub ratio: f64,
    /// Only the client's torrents with this label (Transmission, Deluge), category or tag
    /// (qBittorrent).
    pub label: Option<String>,
    /// A directory of `.torrent` files instead of Transmission's list.
    pub dir: Option<PathBuf>,
    /// More torrents than this are not watched (the first ones by info hash are).
    pub max_torrents: usize,
    /// Boards that should hold every torrent whole before a crowd comes: while a torrent's swarm
    /// needs no helper, boards that do not hold it download it, one torrent at a time (0: none).
    pub stage: u32,
    /// Each staging board's download cap in kB/s, so that the origin keeps serving its own
    /// leechers (0: none).
    pub stage_down_kbps: u32,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig { ratio: 0.5, label: None, dir: None, max_torrents: 10_000, stage: 0, stage_down_kbps: 0 }
    }
}

/// `[budget]`: what EC2 may cost, per calendar month (UTC), counted across runs: instance-hours,
/// and dollars (instance time, public addresses and bytes out at the pools' prices).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    pub instance_hours_per_month: Option<f64>,
    pub dollars_per_month: Option<f64>,
    /// The month's bytes out AWS does not bill (its 100 GB are shared with the whole account: 0
    /// unless you know none of it goes elsewhere).
    #[serde(default)]
    pub free_gb_per_month: f64,
}

/// `[ec2]`: where instances come from. Credentials are not here: they come from the environment or
/// `~/.aws/credentials` (ec2/credentials.rs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Config {
    /// The AWS profile (of ~/.aws/config and ~/.aws/credentials; else AWS_PROFILE, else "default").
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// A hard limit on instances running at once for a run.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Seconds an instance has to be running with its agent healthy; else it is stopped and replaced.
    #[serde(default = "default_boot_timeout")]
    pub boot_timeout: u64,
    /// Seconds one EC2 request may take.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: u64,
    #[serde(default, rename = "pool")]
    pub pools: Vec<Ec2PoolConfig>,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2PoolConfig {
    pub region: String,
    /// `key=value`: only instances with this tag are ever started or stopped.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// The agent's port on an instance without an `odseed:agent-url` tag.
    #[serde(default = "default_agent_port")]
    pub agent_port: u16,
    pub token_file: PathBuf,
    /// Read from `token_file` at load; never printed.
    #[serde(skip)]
    pub token: String,
    /// SHA-256 of the certificate the pool's agents serve (`odseed ec2 provision` makes it). An
    /// instance's agent is reached over TLS, trusting that certificate only.
    #[serde(default, deserialize_with = "fingerprint")]
    pub cert_sha256: Option<Fingerprint>,
    /// Reach instances over plain HTTP instead (the token crosses the internet in clear).
    #[serde(default)]
    pub plain_http: bool,
    /// Prices, in dollars, over the defaults of [`crate::price`]: an instance's hour (default: by
    /// its type), a public IPv4 address's hour, a GB sent out.
    pub instance_per_hour: Option<f64>,
    pub ipv4_per_hour: Option<f64>,
    pub egress_per_gb: Option<f64>,
    /// Caps each instance's upload (kB/s, its daemon's for all torrents) from its engagement on:
    /// speed traded for money.
    pub upload_kbps: Option<u32>,
}

/// `cert_sha256 = "..."`, read as a [`Fingerprint`].
fn fingerprint<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Fingerprint>, D::Error> {
    let text = String::deserialize(d)?;
    Fingerprint::parse(&text).map(Some).map_err(serde::de::Error::custom)
}

/// Whether a helper at `url` may be given its token: `https://` needs a pinned certificate, and
/// plain `http://` a loopback or private address unless `plain_http` says otherwise (a host name is
/// checked by the client as it resolves).
pub fn check_transport(url: &str, pin: Option<Fingerprint>, plain_http: bool) -> Result<(), String> {
    if url.starts_with("https://") {
        return match pin {
            Some(_) => Ok(()),
            None => Err("is https:// but no `cert_sha256` is pinned (run `odseed-agent --fingerprint` on the \
                         helper and set `cert_sha256`)"
                .into()),
        };
    }
    if pin.is_some() {
        return Err("has a `cert_sha256` but is not https://".into());
    }
    // A host name is checked as it resolves, when the client connects.
    let address = odseed_proto::agent_client::host_address(url);
    if plain_http || address.is_none_or(odseed_proto::agent_client::local_address) {
        return Ok(());
    }
    Err("is plain http:// to an address outside loopback and the private ranges: the token would \
         cross that network in clear (use https:// with `cert_sha256`, or set `plain_http = true`)"
        .into())
}

impl Ec2PoolConfig {
    /// The pool's prices: the defaults, with what the config sets over them.
    pub fn prices(&self) -> crate::price::Prices {
        let d = crate::price::Prices::default();
        crate::price::Prices {
            instance_per_hour: self.instance_per_hour,
            ipv4_per_hour: self.ipv4_per_hour.unwrap_or(d.ipv4_per_hour),
            egress_per_gb: self.egress_per_gb.unwrap_or(d.egress_per_gb),
        }
    }

    /// The tag filter as (key, value).
    pub fn tag_pair(&self) -> (&str, &str) {
        self.tag.split_once('=').unwrap_or((&self.tag, ""))
    }
}

impl fmt::Debug for Ec2PoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ec2PoolConfig").field("region", &self.region).field("tag", &self.tag).finish_non_exhaustive()
    }
}

fn default_max_instances() -> u32 {
    2
}
fn default_boot_timeout() -> u64 {
    300
}
fn default_request_timeout() -> u64 {
    20
}
fn default_tag() -> String {
    "odseed:role=helper".into()
}
fn default_agent_port() -> u16 {
    5050
}

/// `[transmission]`: read as `[client]` with `kind = "transmission"`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransmissionConfig {
    #[serde(default)]
    pub url: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl fmt::Debug for TransmissionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransmissionConfig").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Which program the publisher runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    Transmission,
    Qbittorrent,
    Deluge,
}

impl ClientKind {
    /// Its WebUI or RPC on this machine at the port it uses by default.
    pub fn default_url(self) -> &'static str {
        match self {
            ClientKind::Transmission => "http://127.0.0.1:9091/transmission/rpc",
            ClientKind::Qbittorrent => "http://127.0.0.1:8080",
            ClientKind::Deluge => "http://127.0.0.1:8112/json",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Transmission => "transmission",
            ClientKind::Qbittorrent => "qbittorrent",
            ClientKind::Deluge => "deluge",
        }
    }
}

/// `[client]`: the publisher's own BitTorrent client, asked for its torrents and its peers.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub kind: ClientKind,
    /// Its RPC (Transmission), WebUI (qBittorrent) or deluge-web's `/json` (Deluge); empty: the
    /// kind's default on 127.0.0.1, filled in at load.
    #[serde(default)]
    pub url: String,
    /// Transmission and qBittorrent; Deluge's web UI has a password only.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Read from `password_file` at load; never printed.
    #[serde(skip)]
    pub password: Option<String>,
    /// Deluge only: where deluged keeps its copy of each torrent (`HASH.torrent`), for finding a
    /// torrent by name. Default `~/.config/deluge/state`.
    pub state_dir: Option<PathBuf>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig").field("kind", &self.kind).field("url", &self.url).finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A client at `url` (empty: its default) with these credentials, as the lab and tests make one.
    pub fn new(kind: ClientKind, url: &str, credentials: Option<(&str, &str)>) -> ClientConfig {
        ClientConfig {
            kind,
            url: if url.is_empty() { kind.default_url().into() } else { url.into() },
            username: credentials.map(|c| c.0.to_string()).filter(|u| !u.is_empty()),
            password_file: None,
            password: credentials.map(|c| c.1.to_string()),
            state_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub interval: u64,
    pub max_time: u64,
    pub min_size: u64,
    pub cooldown: u64,
    pub placement: PlacementName,
    /// When a helper that does not hold a torrent whole is engaged ([`policy::worth_engaging`]).
    pub empty_helpers: EmptyHelpersName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EmptyHelpersName {
    #[default]
    WithOtherSeeders,
    Always,
}

impl From<EmptyHelpersName> for EmptyHelpers {
    fn from(e: EmptyHelpersName) -> EmptyHelpers {
        match e {
            EmptyHelpersName::WithOtherSeeders => EmptyHelpers::WithOtherSeeders,
            EmptyHelpersName::Always => EmptyHelpers::Always,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacementName {
    Fill,
    Seed,
}

impl From<PlacementName> for Placement {
    fn from(p: PlacementName) -> Placement {
        match p {
            PlacementName::Fill => Placement::Fill,
            PlacementName::Seed => Placement::Seed,
        }
    }
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    pub name: String,
    pub url: String,
    pub token_file: PathBuf,
    /// Read from `token_file` at load; never printed.
    #[serde(skip)]
    pub token: String,
    /// SHA-256 of the agent's TLS certificate (`odseed-agent --fingerprint`): required with an
    /// `https://` URL, the only certificate trusted there.
    #[serde(default, deserialize_with = "fingerprint")]
    pub cert_sha256: Option<Fingerprint>,
    /// Allows a plain `http://` URL to an address outside loopback and the private ranges (the
    /// token then crosses that network in clear).
    #[serde(default)]
    pub plain_http: bool,
    /// How many torrents it may seed at once, for all of odseed's runs together.
    #[serde(default = "default_slots")]
    pub slots: u32,
    /// Its upload in kB/s, if known: `odseed watch` gives the neediest torrent the board with the
    /// most upload per torrent it seeds.
    #[serde(default)]
    pub upload_kbps: u32,
}

fn default_slots() -> u32 {
    1
}

impl BoardConfig {
    pub fn trust(&self) -> Trust {
        Trust { pin: self.cert_sha256, plain_http: self.plain_http }
    }
}

impl fmt::Debug for BoardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoardConfig").field("name", &self.name).field("url", &self.url).finish_non_exhaustive()
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            interval: 60,
            max_time: 600,
            min_size: 50 << 20,
            cooldown: 120,
            placement: PlacementName::Fill,
            empty_helpers: EmptyHelpersName::default(),
        }
    }
}

/// The default config path: `$XDG_CONFIG_HOME/odseed/odseed.toml` (or `~/.config/...`).
pub fn default_path() -> PathBuf {
    crate::xdg::config_dir().join("odseed.toml")
}

/// Loads, validates and reads the secret files. The error is for the user (exit 2).
pub fn load(path: &Path) -> Result<Config, Error> {
    let text = match odseed_proto::fsutil::read_text_bounded(path, odseed_proto::fsutil::MAX_CONFIG_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoConfig(path.to_path_buf())),
        Err(e) => return Err(Error::Config(format!("config {}: cannot read: {e}", path.display()))),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|m| Error::Config(format!("config {}: {m}", path.display())))
}

/// Parses TOML `text`, resolving relative paths against `base`.
pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
    let mut cfg: Config = toml::from_str(text).map_err(|e| odseed_proto::toml_error::toml_error(text, &e))?;
    if cfg.policy.interval == 0 {
        return Err("`policy.interval` must be at least 1".into());
    }
    if let Some(t) = cfg.transmission.take() {
        if cfg.client.is_some() {
            return Err("[transmission] and [client] exclude each other ([transmission] is [client] with \
                        kind = \"transmission\")"
                .into());
        }
        let TransmissionConfig { url, username, password_file } = t;
        cfg.client = Some(ClientConfig {
            url,
            username,
            password_file,
            ..ClientConfig::new(ClientKind::Transmission, "", None)
        });
        check_client(cfg.client.as_mut().unwrap(), base, "transmission")?;
    } else if let Some(c) = cfg.client.as_mut() {
        check_client(c, base, "client")?;
    }
    for (i, b) in cfg.boards.iter_mut().enumerate() {
        if b.name.trim().is_empty() {
            return Err(format!("board {}: `name` is empty", i + 1));
        }
        check_url(&b.url, &format!("board {}: `url`", b.name))?;
        check_transport(&b.url, b.cert_sha256, b.plain_http)
            .map_err(|why| format!("board {}: `url` {:?} {why}", b.name, b.url))?;
        b.token_file = resolve(base, &b.token_file);
        b.token = read_secret(&b.token_file).map_err(|e| format!("board {}: `token_file` {e}", b.name))?;
    }
    if let Some(ec2) = cfg.ec2.as_mut() {
        check_ec2(ec2, base)?;
    }
    if let Some(b) = cfg.boards.iter().find(|b| !(1..=100).contains(&b.slots)) {
        return Err(format!("board {}: `slots` must be from 1 to 100 (an agent seeds at most 100 torrents)", b.name));
    }
    let w = &mut cfg.watch;
    if !(w.ratio.is_finite() && (0.0..=1.0).contains(&w.ratio)) {
        return Err(format!("`watch.ratio` must be from 0 to 1, got {}", w.ratio));
    }
    if w.label.is_some() && w.dir.is_some() {
        return Err("`watch.label` and `watch.dir` exclude each other (a label picks the client's torrents)".into());
    }
    if !(1..=100_000).contains(&w.max_torrents) {
        return Err("`watch.max_torrents` must be from 1 to 100000".into());
    }
    if w.stage > 100 {
        return Err(format!("`watch.stage` is a number of boards, from 0 to 100, got {}", w.stage));
    }
    w.dir = w.dir.as_ref().map(|d| resolve(base, d));
    if cfg.budget.instance_hours_per_month.is_some_and(|h| !(h.is_finite() && h >= 0.0)) {
        return Err("`budget.instance_hours_per_month` must be a number of hours, 0 or more".into());
    }
    crate::price::check(cfg.budget.dollars_per_month, "budget.dollars_per_month")?;
    if !(cfg.budget.free_gb_per_month.is_finite() && cfg.budget.free_gb_per_month >= 0.0) {
        return Err("`budget.free_gb_per_month` must be a number of GB, 0 or more".into());
    }
    let mut names: Vec<&str> = cfg.boards.iter().map(|b| b.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("two boards are named {:?}", w[0]));
    }
    Ok(cfg)
}

/// Fills in the defaults of `[client]` (or `[transmission]`, named by `section`), checks its URL
/// and reads its password.
fn check_client(c: &mut ClientConfig, base: &Path, section: &str) -> Result<(), String> {
    if c.url.is_empty() {
        c.url = c.kind.default_url().into();
    }
    check_url(&c.url, &format!("{section}.url"))?;
    if c.url.starts_with("https://") {
        // odseed speaks plain HTTP/1.1 to the client, as these clients serve it by default.
        return Err(format!(
            "`{section}.url` {:?}: https:// is not supported (reach a remote client through an SSH tunnel \
             to 127.0.0.1)",
            crate::ec2::credentials::redacted(&c.url)
        ));
    }
    if c.url.split("://").nth(1).is_some_and(|rest| rest.split('/').next().unwrap_or_default().contains('@')) {
        return Err(format!(
            "`{section}.url`: no user or password in the URL (use username and password_file), got {:?}",
            crate::ec2::credentials::redacted(&c.url)
        ));
    }
    if c.kind == ClientKind::Qbittorrent && c.username.is_some() && c.password_file.is_none() {
        return Err(
            "`client.username` needs `password_file` (qBittorrent bans an address after 5 failed logins)".into()
        );
    }
    if c.kind == ClientKind::Deluge && c.username.is_some() {
        return Err("`client.username`: Deluge's web UI has a password only (`password_file`)".into());
    }
    if c.kind != ClientKind::Deluge && c.state_dir.is_some() {
        return Err(format!("`{section}.state_dir` is for Deluge only (other clients give odseed the torrent)"));
    }
    if let Some(file) = &c.password_file {
        let file = resolve(base, file);
        c.password = Some(read_secret(&file).map_err(|e| format!("`{section}.password_file` {e}"))?);
    }
    if c.kind == ClientKind::Deluge {
        let dir = c.state_dir.clone().unwrap_or_else(|| PathBuf::from("~/.config/deluge/state"));
        c.state_dir = Some(resolve(base, &dir));
    }
    Ok(())
}

fn check_ec2(ec2: &mut Ec2Config, base: &Path) -> Result<(), String> {
    if !(1..=86_400).contains(&ec2.boot_timeout) || !(1..=3_600).contains(&ec2.request_timeout) {
        return Err("`ec2.boot_timeout` must be from 1 to 86400 s and `ec2.request_timeout` from 1 to 3600 s".into());
    }
    if let Some(url) = &ec2.endpoint_url {
        crate::ec2::credentials::check_endpoint(url)
            .map_err(|why| format!("`ec2.endpoint_url` {:?}: {why}", crate::ec2::credentials::redacted(url)))?;
    }
    for (i, p) in ec2.pools.iter_mut().enumerate() {
        let at = format!("ec2 pool {}", i + 1);
        crate::ec2::credentials::check_region(&p.region).map_err(|e| format!("{at}: `region` {e}"))?;
        let (k, v) = p.tag_pair();
        if k.is_empty() || v.is_empty() {
            return Err(format!("{at}: `tag` must be key=value, got {:?}", p.tag));
        }
        if p.agent_port == 0 {
            return Err(format!("{at}: `agent_port` must be from 1 to 65535"));
        }
        if p.plain_http && p.cert_sha256.is_some() {
            return Err(format!("{at}: `plain_http` and `cert_sha256` exclude each other"));
        }
        for (value, key) in [
            (p.instance_per_hour, "instance_per_hour"),
            (p.ipv4_per_hour, "ipv4_per_hour"),
            (p.egress_per_gb, "egress_per_gb"),
        ] {
            crate::price::check(value, key).map_err(|e| format!("{at}: {e}"))?;
        }
        p.token_file = resolve(base, &p.token_file);
        p.token = read_secret(&p.token_file).map_err(|e| format!("{at}: `token_file` {e}"))?;
    }
    let mut regions: Vec<&str> = ec2.pools.iter().map(|p| p.region.as_str()).collect();
    regions.sort_unstable();
    if let Some(w) = regions.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("two ec2 pools are in region {:?}", w[0]));
    }
    Ok(())
}

fn check_url(url: &str, key: &str) -> Result<(), String> {
    let ok = ["http://", "https://"].iter().any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(format!("{key} must be an http:// or https:// URL, got {:?}", crate::ec2::credentials::redacted(url)))
    }
}

/// `~/x` -> home/x; relative -> base/x.
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => crate::xdg::home().join(rest),
        Err(_) if p.is_relative() => base.join(p),
        Err(_) => p.to_path_buf(),
    }
}

fn read_secret(path: &Path) -> Result<String, String> {
    let text = odseed_proto::fsutil::read_text_bounded(path, odseed_proto::fsutil::MAX_SECRET_BYTES)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_token() -> PathBuf {
        let d = std::env::temp_dir().join(format!("odseed-cfg-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("pi1.token"), "secret-token-secret\n").unwrap();
        d
    }

    #[test]
    fn the_example_parses_and_reads_the_token() {
        let d = dir_with_token();
        let c = parse(EXAMPLE, &d).unwrap();
        assert_eq!(c.boards[0].token, "secret-token-secret");
        assert_eq!(c.boards[0].token_file, d.join("pi1.token"));
        assert_eq!(c.policy, PolicyConfig::default());
        assert!(!format!("{c:?}").contains("secret-token"), "Debug must not show the token");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_example_file_parses_and_names_every_key_the_config_accepts() {
        let d = dir_with_token();
        std::fs::write(d.join("ec2.token"), "secret-token-secret\n").unwrap();
        let example = include_str!("../../examples/odseed.toml");
        let c = parse(example, &d).unwrap();
        assert_eq!(
            (c.policy, c.watch.clone()),
            (PolicyConfig::default(), WatchConfig::default()),
            "it shows the defaults"
        );
        // The keys the example names, per section (commented-out ones too).
        let mut named: Vec<(String, String)> = Vec::new();
        let mut section = String::new();
        for line in example.lines() {
            let line = line.trim_start_matches('#').trim();
            if let Some(h) = line.strip_prefix('[').map(|h| h.trim_start_matches('[')) {
                section = h.split(']').next().unwrap_or_default().to_string();
                named.push((String::new(), section.clone()));
            } else if let Some((key, _)) = line.split_once('=') {
                if !key.trim().is_empty()
                    && key.trim().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    named.push((section.clone(), key.trim().to_string()));
                }
            }
        }
        // The keys the config accepts, per section, as serde lists them for one it does not know.
        for (section, header) in [
            ("", ""),
            ("transmission", "[transmission]"),
            ("client", "[client]\nkind = \"deluge\""),
            ("policy", "[policy]"),
            ("board", "[[board]]"),
            ("ec2", "[ec2]"),
            ("ec2.pool", "[[ec2.pool]]"),
            ("watch", "[watch]"),
            ("budget", "[budget]"),
        ] {
            let e = parse(&format!("{header}\nzz_unknown = 1\n"), &d).unwrap_err();
            let expected = e.split("expected").nth(1).unwrap_or_else(|| panic!("{header}: {e}"));
            let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            assert!(!keys.is_empty(), "{header}: {e}");
            for key in keys {
                // A table is named by its header: `board` by [[board]], `pool` of [ec2] by [[ec2.pool]].
                let table = if section.is_empty() { key.to_string() } else { format!("{section}.{key}") };
                let header_named = named.iter().any(|(s, k)| s.is_empty() && k.starts_with(&table));
                assert!(
                    header_named || named.contains(&(section.into(), key.into())),
                    "examples/odseed.toml lacks {header} {key}"
                );
            }
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn bad_configs_name_what_is_wrong() {
        let d = dir_with_token();
        let cases = [
            ("[policy]\nplacement = \"random\"\n", "placement"),
            ("[policy]\nintervall = 5\n", "intervall"),
            ("[policy]\ninterval = 0\n", "policy.interval"),
            ("[[board]]\nname = \"a\"\nurl = \"ftp://x\"\ntoken_file = \"pi1.token\"\n", "board a: `url`"),
            ("[[board]]\nname = \"a\"\nurl = \"http://x\"\ntoken_file = \"missing\"\n", "board a: `token_file`"),
            ("[[board]]\nname = \"a\"\nurl = \"http://x\"\ntoken_file = \"pi1.token\"\n[[board]]\nname = \"a\"\nurl = \"http://y\"\ntoken_file = \"pi1.token\"\n", "two boards"),
            ("[transmission]\nurl = \"localhost\"\n", "transmission.url"),
            ("[transmission]\nurl = \"https://seedbox:9091/transmission/rpc\"\n", "https:// is not supported"),
            ("[transmission]\npassword_file = \"nope\"\n", "password_file"),
            ("[client]\nkind = \"utorrent\"\n", "utorrent"),
            ("[client]\nurl = \"http://x\"\n", "kind"),
            ("[client]\nkind = \"deluge\"\nusername = \"a\"\n", "password only"),
            ("[client]\nkind = \"qbittorrent\"\nstate_dir = \"a\"\n", "Deluge only"),
            ("[client]\nkind = \"qbittorrent\"\nurl = \"https://box:8080\"\n", "client.url"),
            ("[client]\nkind = \"qbittorrent\"\n[transmission]\n", "exclude each other"),
            ("[client]\nkind = \"qbittorrent\"\nusername = \"admin\"\n", "needs `password_file`"),
            ("[client]\nkind = \"qbittorrent\"\nurl = \"http://admin:secret@box:8080\"\n", "no user or password in the URL"),
            ("[[ec2.pool]]\nregion = \"EU\"\ntoken_file = \"pi1.token\"\n", "ec2 pool 1: `region`"),
            ("[[ec2.pool]]\nregion = \"eu-west-3\"\n", "token_file"),
            ("[[ec2.pool]]\nregion = \"eu-west-3\"\ntag = \"x\"\ntoken_file = \"pi1.token\"\n", "`tag` must be key=value"),
            ("[ec2]\nendpoint_url = \"localhost:5000\"\n[[ec2.pool]]\nregion = \"eu-west-3\"\ntoken_file = \"pi1.token\"\n", "ec2.endpoint_url"),
            ("[watch]\nratio = 2\n", "watch.ratio"),
            ("[watch]\nlabel = \"a\"\ndir = \"b\"\n", "exclude each other"),
            ("[watch]\nstage = 1000\n", "watch.stage"),
            ("[watch]\nstage = -1\n", "stage"),
            ("[budget]\ninstance_hours_per_month = -1\n", "budget.instance_hours_per_month"),
            ("[budget]\ndollars_per_month = -5\n", "budget.dollars_per_month"),
            ("[budget]\ndollars_per_month = \"twenty\"\n", "dollars_per_month"),
            ("[budget]\nfree_gb_per_month = -1\n", "budget.free_gb_per_month"),
            ("[[ec2.pool]]\nregion = \"eu-west-3\"\ntoken_file = \"pi1.token\"\negress_per_gb = -0.09\n", "ec2 pool 1: `egress_per_gb`"),
            ("[[ec2.pool]]\nregion = \"eu-west-3\"\ntoken_file = \"pi1.token\"\ninstance_per_hour = \"cheap\"\n", "instance_per_hour"),
            ("[[board]]\nname = \"a\"\nurl = \"http://x\"\ntoken_file = \"pi1.token\"\nslots = 0\n", "board a: `slots`"),
            ("[[ec2.pool]]\nregion = \"a\"\ntoken_file = \"pi1.token\"\n[[ec2.pool]]\nregion = \"a\"\ntoken_file = \"pi1.token\"\n", "two ec2 pools"),
        ];
        for (text, needle) in cases {
            let e = parse(text, &d).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        std::fs::remove_dir_all(d).unwrap();
    }
}
