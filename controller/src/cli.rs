//! The command line: `odseed run|status|release` and their flags. Parsing only; no I/O.

use crate::error::Error;
use crate::stage::StageArgs;
use odseed_lab::leecher::Kind;
use odseed_lab::origin::OriginClient;
use odseed_lab::swarm::Spec;
use std::path::PathBuf;

pub const HELP: &str = "\
odseed: on-demand BitTorrent seeding. Watches a torrent's swarm and, while seeders per leecher are
below RATIO, engages helper seeders (boards running odseed-agent, and EC2 instances it starts), then
releases them (instances are stopped, never terminated) when the swarm no longer needs them.

USAGE:
    odseed run <TORRENT> <RATIO> [SEEDERS LEECHERS] [OPTIONS]
    odseed status [--json] [--config PATH]     every board (reachable?, what it seeds), each EC2
                                               region's tagged instances, the ledger
    odseed release [--json] [--config PATH]    release every helper recorded in the ledger
                                               (stops the instances a killed run left running)
    odseed watch [--once] [--dry-run] [--interval SECS] [--max-time SECS] [--metrics-file PATH]
                 [--json] [--config PATH]
                                               keep a whole catalogue healthy (see WATCH)
    odseed stage <TORRENT> [--helpers N] [--down-kbps RATE] [--max-time SECS] [--json] [--config PATH]
                                               put a torrent's content on helpers before a crowd
                                               comes (see STAGE)
    odseed lab [OPTIONS]                       a whole swarm on this machine, helped by odseed
    odseed ec2 provision [--region R] --count N --allow-from CIDR [OPTIONS]
                                               make EC2 helpers from nothing (see EC2 PROVISION)
    odseed ec2 deprovision [--region R] --yes [--config PATH]
                                               terminate what provision made in R, delete its
                                               security group and the agent's S3 object

RUN ARGUMENTS:
    TORRENT     a torrent's name in your client ([client]), a .torrent file, or a 40-hex info hash
    RATIO       target seeders per leecher, from 0 to 1 (1 = one seeder per leecher, .5 = one per two)
    SEEDERS LEECHERS
                replace the observed counts for the first round (for testing, as the original did)

RUN OPTIONS:
    --config PATH     config file (default $XDG_CONFIG_HOME/odseed/odseed.toml)
    --interval SECS   seconds between rounds (default 60, or [policy] interval)
    --max-time SECS   release everything and stop after this long (run: default 600, or [policy]
                      max_time; watch: none, it runs until stopped)
    --min-size BYTES  torrents smaller than this are not worth helping (default 52428800)
    --once            one round (observe, decide, act), then release and exit
    --dry-run         observe and decide, print what would be done, engage nothing
    --json            one JSON object per line on stdout instead of human lines
    --metrics-file PATH  watch: write a Prometheus textfile there each round (atomically, for
                      node_exporter's textfile collector): torrents, helpers, EC2 dollars and bytes
More on run, status, release and the config: docs/controller.md

WATCH: every interval ([policy] interval, 60 s), lists the torrents your client seeds
([watch] label = \"L\": only those labelled L; [watch] dir = \"DIR\": the .torrent files of DIR
instead), counts every swarm (one batched scrape per tracker), decides per torrent as `run` does
([watch] ratio, 0.5; [policy] min_size and cooldown), and shares the helpers out, neediest first
(leechers x helpers wanted): boards first (each seeds up to [[board]] slots torrents, 1 by default;
[policy] placement = \"seed\": boards for fewer than 3 wanted, else instances only),
then EC2 instances within [ec2] max_instances and [budget] instance_hours_per_month (counted per
UTC month in $XDG_STATE_HOME/odseed/budget.json, across runs). A helper stays on its torrent while
that torrent still wants it; one that is no longer wanted is released after the cooldown. Prints a
line per round (torrents, needing help, helpers busy, budget left; --json: events with info_hash).
Ctrl-C or SIGTERM releases everything (exit 130); so do --once after one round and any error.
As a systemd user service: copy controller/systemd/odseed-watch.service (it runs
%h/.cargo/bin/odseed watch; SIGTERM exit 130 counts as a clean stop) to ~/.config/systemd/user/,
then `systemctl --user enable --now odseed-watch` (and `loginctl enable-linger $USER` to keep it
running while you are logged out); `journalctl --user -u odseed-watch` shows its lines.
More: docs/watch.md

STAGE: a helper that does not hold a torrent whole is not engaged while the origin is its swarm's
only seeder ([policy] empty_helpers): it would take the origin's upload from the leechers. Stage
while the swarm is quiet: helpers that do not hold TORRENT (those holding part of it first) download
it, each capped at --down-kbps (kB/s, 0 = no cap, the default; give one if the swarm has leechers,
so the origin keeps serving them), and are released as soon as each holds it whole (its agent keeps
the content). Staged together they trade pieces, so the origin sends about one copy in all.
--helpers N: how many (default: every board that does not hold it); past the boards, EC2 instances
are started (counted in the budget) and stopped when done, their disks keeping the content.
--max-time SECS (7200): release everything and stop. Exit 0 with reason staged, or max_time.

LAB OPTIONS (rates in kB/s = 1000 bytes/s; 0 = no cap):
    --leechers N (6)  --helpers K (4)  --size BYTES (67108864; 8388608 for a quick look)  --ratio R (1)
    --origin-kbps U (200)  --helper-kbps U (200)  --leecher-kbps D (1000)  --leecher-up-kbps U (500)
    --leecher-clients LIST (transmission,libtorrent)  the leechers' clients, in turn
    --piece-size BYTES  the torrent's pieces (default: what transmission-create would choose)
    --svg PATH        where to write the picture ($XDG_STATE_HOME/odseed/lab.svg)
    --torrents K (1)  K torrents of BYTES each, of different demand (torrent i is wanted by
                      ceil(N x (K - i) / K) of the N leechers) sharing the helpers, helped by
                      `odseed watch`; a report per torrent
    --no-helpers      the same swarm without odseed (the baseline)
    --cold-helpers    the boards start empty, as fresh boards do (odseed engages none while the
                      origin is the only seeder: [policy] empty_helpers)
    --stage           the boards start empty and `odseed stage` fills them before the leechers come;
                      the report says how long that took and what the origin sent for it
    --webseed KBPS    no helpers: the torrent's url-list names a web seed of the origin's file
                      capped at KBPS kB/s (BEP 19), what a publisher could rent instead
    --transmission PATH  the transmission-daemon of the origin, the Transmission leechers and the
                      boards (default: the one on PATH), e.g. scripts/transmission-daemon-4
    --origin-client NAME  the origin's client, the publisher's: transmission (default), qbittorrent
                      (qbittorrent-nox) or deluge (deluged and deluge-web), from PATH
    --crowd           a flash crowd: `odseed watch` (default interval, the origin as the publisher's
                      client, [client]) runs over a quiet swarm, then every leecher comes at once;
                      the report says how fast helpers were engaged and uploaded
    --keep            keep the lab's directory (logs, data) afterwards
    --timeout SECS    give up after this long (900)
    --json            one JSON object per line
More: docs/lab.md

EC2 PROVISION: launches N instances of the newest official Debian 13 image that set themselves up
(transmission-daemon, the agent over TLS, the region's token and certificate, made and kept 0600
under $XDG_CONFIG_HOME/odseed/ec2-REGION/) and power off; waits (bounded) until each has stopped,
then adds the region's [[ec2.pool]] (with cert_sha256) to the config, or prints it.
    --allow-from CIDR     who may reach the agent's port (your controller's address); required
    --count N             instances (1 to 20)
    --region R            (AWS_REGION, AWS_DEFAULT_REGION, else the AWS profile's region)
    --arch x86_64|arm64   (x86_64)       --instance-type T   (t3.small; t4g.small on arm64)
    --agent PATH          the odseed-agent binary for that architecture (default: beside odseed)
    --ami ID              an image instead of Debian's newest
    --bucket NAME         the S3 bucket for the agent binary (default: one made for this region)
    --wait SECS           how long to wait for the instances to stop (900)
    --no-wait             return once the instances are launched and tagged
    --config PATH  --json
More: docs/ec2.md

A run ends (exit 0, after releasing every helper) when: the publisher's client has no connected
peer (no_peers); natural seeders alone meet the ratio (ratio_met); the ratio was met at the start
(already_sufficient); the torrent is smaller than --min-size (too_small); --max-time passed
(max_time); --once (once). Exit 1: a runtime failure (helpers released first). Exit 2: usage or
config error. Ctrl-C or SIGTERM: helpers released, exit 130.

EC2 credentials, found as AWS's tools find them: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web
identity, a profile of ~/.aws/config and ~/.aws/credentials ([ec2] profile, else AWS_PROFILE, else
default: keys, credential_process, role_arn with source_profile, SSO after `aws sso login`), a
container's, an EC2 instance's role; renewed before they expire. `odseed status` says which.
Endpoint: AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, [ec2] endpoint_url, else AWS's. A run prints the
instance-seconds it used per region.

Logs go to stderr (RUST_LOG sets the level; default info).";

/// `odseed run`'s arguments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunArgs {
    pub torrent: String,
    pub ratio: f64,
    /// The SEEDERS LEECHERS override.
    pub counts: Option<(u32, u32)>,
    pub config: Option<PathBuf>,
    pub interval: Option<u64>,
    pub max_time: Option<u64>,
    pub min_size: Option<u64>,
    pub once: bool,
    pub dry_run: bool,
    pub json: bool,
    /// `watch`: a Prometheus textfile written each round.
    pub metrics_file: Option<PathBuf>,
}

/// `odseed lab`'s arguments: the swarm to build (rates in Transmission's kB/s, 1000 bytes/s, 0 = no
/// cap) and how to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabArgs {
    /// The swarm; `boards` is `--helpers`.
    pub spec: Spec,
    pub ratio: f64,
    /// The same swarm without odseed (the baseline).
    pub no_helpers: bool,
    pub keep: bool,
    pub json: bool,
    /// Give up after this many seconds.
    pub timeout: u64,
    /// Where to write the picture (default `$XDG_STATE_HOME/odseed/lab.svg`).
    pub svg: Option<PathBuf>,
    /// The leechers come at once after a quiet start, to a controller already watching.
    pub crowd: bool,
    /// The boards start empty, as fresh boards do.
    pub cold_helpers: bool,
    /// The boards start empty and `odseed stage` fills them before the leechers come.
    pub stage: bool,
}

impl Default for LabArgs {
    fn default() -> Self {
        let spec = Spec {
            size: 64 << 20,
            leechers: 6,
            boards: 4,
            origin_kbps: 200,
            helper_kbps: 200,
            leecher_kbps: 1000,
            leecher_up_kbps: 500,
            daemon: None,
            board_tls: None,
            torrents: 1,
            leecher_clients: vec![Kind::Transmission, Kind::Libtorrent],
            piece_size: None,
            empty_boards: 0,
            webseed_kbps: None,
            origin_client: OriginClient::Transmission,
            origin_program: None,
        };
        LabArgs {
            spec,
            ratio: 1.0,
            no_helpers: false,
            keep: false,
            json: false,
            timeout: 900,
            svg: None,
            crowd: false,
            cold_helpers: false,
            stage: false,
        }
    }
}

/// `odseed ec2 provision`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionArgs {
    pub region: String,
    pub count: u32,
    pub allow_from: String,
    pub arch: String,
    pub instance_type: String,
    pub agent: Option<PathBuf>,
    pub ami: Option<String>,
    pub bucket: Option<String>,
    pub wait: u64,
    pub no_wait: bool,
    pub config: Option<PathBuf>,
    pub json: bool,
}

/// `odseed ec2 deprovision`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct DeprovisionArgs {
    pub region: String,
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(RunArgs),
    Status { config: Option<PathBuf>, json: bool },
    Release { config: Option<PathBuf>, json: bool },
    Watch(RunArgs),
    Lab(LabArgs),
    Provision(ProvisionArgs),
    Deprovision(DeprovisionArgs),
    Stage(StageArgs),
    Help,
    Version,
}

/// Parses `args` (without the program name). The error is one line for the user.
pub fn parse(args: Vec<String>) -> Result<Command, Error> {
    parse_words(args).map_err(Error::Usage)
}

fn parse_words(args: Vec<String>) -> Result<Command, String> {
    use lexopt::prelude::*;
    if args.first().map(String::as_str) == Some("lab") {
        return parse_lab(args[1..].to_vec());
    }
    if args.first().map(String::as_str) == Some("ec2") {
        return parse_ec2(args[1..].to_vec());
    }
    if args.first().map(String::as_str) == Some("stage") {
        return parse_stage(args[1..].to_vec());
    }
    let mut p = lexopt::Parser::from_args(args);
    let mut sub: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();
    let mut run = RunArgs::default();
    let mut help = false;
    let e = |err: lexopt::Error| err.to_string();
    while let Some(arg) = p.next().map_err(e)? {
        match arg {
            Short('h') | Long("help") => help = true,
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("config") => run.config = Some(p.value().map_err(e)?.into()),
            Long("json") => run.json = true,
            Long("metrics-file") => run.metrics_file = Some(p.value().map_err(e)?.into()),
            Long("once") => run.once = true,
            Long("dry-run") => run.dry_run = true,
            Long("interval") => run.interval = Some(number(&p.value().map_err(e)?.string().map_err(e)?, "--interval")?),
            Long("max-time") => run.max_time = Some(number(&p.value().map_err(e)?.string().map_err(e)?, "--max-time")?),
            Long("min-size") => run.min_size = Some(number(&p.value().map_err(e)?.string().map_err(e)?, "--min-size")?),
            Value(v) => {
                let v = v.string().map_err(e)?;
                if sub.is_none() {
                    sub = Some(v);
                } else {
                    positional.push(v);
                }
            }
            // A negative RATIO such as -0.1 looks like a flag; give the useful error.
            Short(c) if c.is_ascii_digit() || c == '.' => {
                return Err("RATIO must be a number from 0 to 1 (it is negative)".into())
            }
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    if help {
        return Ok(Command::Help);
    }
    let only_json = |run: &RunArgs, name: &str| -> Result<(), String> {
        let extra = run.once
            || run.dry_run
            || run.interval.is_some()
            || run.max_time.is_some()
            || run.min_size.is_some()
            || run.metrics_file.is_some();
        if extra || !positional.is_empty() {
            return Err(format!("`odseed {name}` takes only --json and --config"));
        }
        Ok(())
    };
    match sub.as_deref() {
        None => Ok(Command::Help),
        Some("help") => Ok(Command::Help),
        Some("run") => {
            let (torrent, ratio) = match positional.as_slice() {
                [t, r, ..] => (t.clone(), r.clone()),
                _ => return Err("`odseed run` needs TORRENT and RATIO (try --help)".into()),
            };
            run.torrent = torrent;
            run.ratio = ratio_arg(&ratio)?;
            run.counts = match &positional[2..] {
                [] => None,
                [s, l] => Some((count(s, "SEEDERS")?, count(l, "LEECHERS")?)),
                _ => return Err("give both SEEDERS and LEECHERS, or neither".into()),
            };
            if run.interval == Some(0) {
                return Err("--interval must be at least 1 second".into());
            }
            if run.metrics_file.is_some() {
                return Err("--metrics-file is for `odseed watch`".into());
            }
            Ok(Command::Run(run))
        }
        Some("status") => only_json(&run, "status").map(|()| Command::Status { config: run.config, json: run.json }),
        Some("watch") => {
            if run.min_size.is_some() || !positional.is_empty() {
                return Err(
                    "`odseed watch` takes --once, --dry-run, --interval, --max-time, --metrics-file, --json and \
                            --config (the rest is in the config's [watch] and [policy])"
                        .into(),
                );
            }
            if run.interval == Some(0) {
                return Err("--interval must be at least 1 second".into());
            }
            Ok(Command::Watch(run))
        }
        Some("release") => only_json(&run, "release").map(|()| Command::Release { config: run.config, json: run.json }),
        Some(other) => Err(format!("unknown command `{other}` (try --help)")),
    }
}

fn parse_lab(args: Vec<String>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut a = LabArgs::default();
    let e = |err: lexopt::Error| err.to_string();
    while let Some(arg) = p.next().map_err(e)? {
        let flag = match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long(f) => f.to_string(),
            _ => return Err(arg.unexpected().to_string()),
        };
        let mut value =
            || -> Result<String, String> { p.value().map_err(e)?.string().map_err(|_| format!("--{flag}: not UTF-8")) };
        match flag.as_str() {
            "leechers" => a.spec.leechers = count(&value()?, "--leechers")? as usize,
            "helpers" => a.spec.boards = count(&value()?, "--helpers")? as usize,
            "size" => a.spec.size = number(&value()?, "--size")?,
            "ratio" => a.ratio = ratio_arg(&value()?)?,
            "origin-kbps" => a.spec.origin_kbps = count(&value()?, "--origin-kbps")?,
            "helper-kbps" => a.spec.helper_kbps = count(&value()?, "--helper-kbps")?,
            "leecher-kbps" => a.spec.leecher_kbps = count(&value()?, "--leecher-kbps")?,
            "leecher-up-kbps" => a.spec.leecher_up_kbps = count(&value()?, "--leecher-up-kbps")?,
            "timeout" => a.timeout = number(&value()?, "--timeout")?,
            "torrents" => a.spec.torrents = count(&value()?, "--torrents")? as usize,
            "leecher-clients" => a.spec.leecher_clients = leecher_clients(&value()?)?,
            "svg" => a.svg = Some(PathBuf::from(value()?)),
            "no-helpers" => a.no_helpers = true,
            "crowd" => a.crowd = true,
            "cold-helpers" => a.cold_helpers = true,
            "stage" => a.stage = true,
            "webseed" => {
                let kbps = count(&value()?, "--webseed")?;
                if kbps == 0 {
                    return Err("--webseed: give the web seed's capacity in kB/s, 1 or more".into());
                }
                a.spec.webseed_kbps = Some(kbps);
            }
            "transmission" => a.spec.daemon = Some(PathBuf::from(value()?)),
            "origin-client" => {
                let v = value()?;
                a.spec.origin_client = OriginClient::parse(&v)
                    .ok_or_else(|| format!("--origin-client {v:?}: give transmission, qbittorrent or deluge"))?;
            }
            "piece-size" => a.spec.piece_size = Some(piece_size(&value()?)?),
            "keep" => a.keep = true,
            "json" => a.json = true,
            other => return Err(format!("invalid option '--{other}' for `odseed lab` (try --help)")),
        }
    }
    if !(1..=200).contains(&a.spec.leechers) || a.spec.boards > 100 {
        return Err("--leechers must be 1 to 200 and --helpers at most 100".into());
    }
    if a.spec.size == 0 {
        return Err("--size must be at least 1 byte".into());
    }
    let webseed = a.spec.webseed_kbps.is_some();
    if [a.no_helpers, a.cold_helpers, a.stage, webseed].iter().filter(|x| **x).count() > 1 {
        return Err("give one of --no-helpers, --cold-helpers, --stage and --webseed".into());
    }
    if webseed && a.crowd {
        return Err("--webseed runs without odseed: --crowd has nothing to show then".into());
    }
    // A web seed instead of helpers.
    a.no_helpers |= webseed;
    if a.crowd && a.stage {
        return Err("--stage stages before the leechers come; --crowd is a quiet start of its own: give one".into());
    }
    if a.cold_helpers || a.stage {
        a.spec.empty_boards = a.spec.boards;
    }
    if !(1..=20).contains(&a.spec.torrents) {
        return Err("--torrents must be 1 to 20".into());
    }
    Ok(Command::Lab(a))
}

/// `--piece-size BYTES`: a power of two from 16 KiB to 16 MiB (what clients accept).
fn piece_size(v: &str) -> Result<u64, String> {
    let n: u64 = number(v, "--piece-size")?;
    if n.is_power_of_two() && (16 << 10..=16 << 20).contains(&n) {
        Ok(n)
    } else {
        Err(format!("--piece-size must be a power of two from 16384 to 16777216, not {n}"))
    }
}

/// `--leecher-clients transmission,libtorrent`: the clients leechers run, in turn.
fn leecher_clients(v: &str) -> Result<Vec<Kind>, String> {
    let kinds = v.split(',').map(|k| Kind::parse(k.trim()).map_err(|e| format!("--leecher-clients: {e}")));
    kinds.collect::<Result<Vec<_>, _>>().and_then(|k| {
        if k.is_empty() {
            Err("--leecher-clients: none given".into())
        } else {
            Ok(k)
        }
    })
}

fn parse_ec2(args: Vec<String>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let what = args.first().cloned().unwrap_or_default();
    if !matches!(what.as_str(), "provision" | "deprovision") {
        return Err("`odseed ec2` takes `provision` or `deprovision` (try --help)".into());
    }
    let mut p = lexopt::Parser::from_args(args[1..].to_vec());
    let mut opts: std::collections::BTreeMap<String, String> = Default::default();
    let (mut yes, mut no_wait, mut json) = (false, false, false);
    let e = |err: lexopt::Error| err.to_string();
    while let Some(arg) = p.next().map_err(e)? {
        let flag = match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long(f) => f.to_string(),
            _ => return Err(arg.unexpected().to_string()),
        };
        match flag.as_str() {
            "yes" => yes = true,
            "no-wait" => no_wait = true,
            "json" => json = true,
            "region" | "count" | "allow-from" | "arch" | "instance-type" | "agent" | "ami" | "bucket" | "wait"
            | "config" => {
                let v = p.value().map_err(e)?.string().map_err(|_| format!("--{flag}: not UTF-8"))?;
                opts.insert(flag, v);
            }
            other => return Err(format!("invalid option '--{other}' for `odseed ec2 {what}` (try --help)")),
        }
    }
    // None given: the AWS way (AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`), at the start.
    let region = opts.remove("region").unwrap_or_default();
    let config = opts.remove("config").map(PathBuf::from);
    if what == "deprovision" {
        if let Some(k) =
            opts.keys().next().cloned().or(json.then(|| "json".into())).or(no_wait.then(|| "no-wait".into()))
        {
            return Err(format!("`odseed ec2 deprovision` takes only --region, --yes and --config, not --{k}"));
        }
        if !yes {
            return Err(format!(
                "`odseed ec2 deprovision` terminates every instance provision made in {region}: add --yes"
            ));
        }
        return Ok(Command::Deprovision(DeprovisionArgs { region, config }));
    }
    let count = opts.remove("count").ok_or("`odseed ec2 provision` needs --count N")?;
    let count = count.parse().ok().filter(|n| (1..=20).contains(n)).ok_or("--count must be from 1 to 20")?;
    let allow_from = opts.remove("allow-from").ok_or(
        "`odseed ec2 provision` needs --allow-from CIDR: who may reach the agent's port (your controller's address)",
    )?;
    cidr(&allow_from)?;
    let arch = opts.remove("arch").unwrap_or_else(|| "x86_64".into());
    let default_type = match arch.as_str() {
        "x86_64" => "t3.small",
        "arm64" => "t4g.small",
        _ => return Err(format!("--arch must be x86_64 or arm64, got {arch:?}")),
    };
    Ok(Command::Provision(ProvisionArgs {
        region,
        count,
        allow_from,
        instance_type: opts.remove("instance-type").unwrap_or_else(|| default_type.into()),
        arch,
        agent: opts.remove("agent").map(PathBuf::from),
        ami: opts.remove("ami"),
        bucket: opts.remove("bucket"),
        wait: opts.remove("wait").map(|w| number(&w, "--wait")).transpose()?.unwrap_or(900),
        no_wait,
        config,
        json,
    }))
}

/// `a.b.c.d/n` or an IPv6 prefix.
fn cidr(s: &str) -> Result<(), String> {
    let bad = || format!("--allow-from must be an IPv4 address range such as 198.51.100.7/32, got {s:?}");
    let (ip, len) = s.split_once('/').ok_or_else(bad)?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    // IPv4 only: the security group rule is written as CidrIp.
    match ip.parse::<std::net::Ipv4Addr>() {
        Ok(_) if len <= 32 => Ok(()),
        _ => Err(bad()),
    }
}

fn ratio_arg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("RATIO must be a number from 0 to 1, got {s:?}")),
    }
}

fn count(s: &str, what: &str) -> Result<u32, String> {
    s.parse().map_err(|_| format!("{what} must be a whole number, got {s:?}"))
}

fn number(s: &str, flag: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("{flag} takes a whole number, got {s:?}"))
}

/// `odseed stage <TORRENT> [--helpers N] [--down-kbps RATE] [--max-time SECS] [--interval SECS]`.
fn parse_stage(args: Vec<String>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut a = StageArgs::default();
    let e = |err: lexopt::Error| err.to_string();
    let value = |p: &mut lexopt::Parser, flag: &str| -> Result<u64, String> {
        number(&p.value().map_err(e)?.string().map_err(e)?, flag)
    };
    let mut torrent = None;
    while let Some(arg) = p.next().map_err(e)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("config") => a.config = Some(p.value().map_err(e)?.into()),
            Long("json") => a.json = true,
            Long("helpers") => {
                a.helpers = Some(u32::try_from(value(&mut p, "--helpers")?).map_err(|_| "--helpers is too large")?)
            }
            Long("down-kbps") => {
                a.down_kbps = u32::try_from(value(&mut p, "--down-kbps")?)
                    .ok()
                    .filter(|k| *k <= 10_000_000)
                    .ok_or("--down-kbps is at most 10000000 (kB/s)")?
            }
            Long("max-time") => a.max_time = value(&mut p, "--max-time")?,
            Long("interval") => a.interval = value(&mut p, "--interval")?,
            Value(v) if torrent.is_none() => torrent = Some(v.string().map_err(e)?),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    a.torrent = torrent.ok_or("`odseed stage` needs TORRENT (try --help)")?;
    if a.interval == 0 {
        return Err("--interval must be at least 1 second".into());
    }
    if a.helpers == Some(0) {
        return Err("--helpers must be at least 1".into());
    }
    Ok(Command::Stage(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_originals_command_lines() {
        let Command::Run(r) = parse(args("run filename.txt 1")).unwrap() else { panic!() };
        assert_eq!((r.torrent.as_str(), r.ratio, r.counts), ("filename.txt", 1.0, None));
        let Command::Run(r) = parse(args("run filename.txt .5 3 8 --once --json")).unwrap() else { panic!() };
        assert_eq!((r.ratio, r.counts, r.once, r.json), (0.5, Some((3, 8)), true, true));
        let Command::Run(r) =
            parse(args("run --config /c x 0 --interval 5 --max-time 9 --min-size 1 --dry-run")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r.config, r.interval, r.max_time, r.min_size, r.dry_run),
            (Some("/c".into()), Some(5), Some(9), Some(1), true)
        );
    }

    #[test]
    fn bad_ratios_and_counts_are_refused_with_a_clear_line() {
        for bad in ["run f 1.5", "run f -0.1", "run f abc", "run f NaN", "run f inf", "run f"] {
            let e = parse(args(bad)).unwrap_err().to_string();
            assert!(e.contains("RATIO"), "{bad}: {e}");
        }
        assert!(parse(args("run f .5 3")).unwrap_err().to_string().contains("both SEEDERS and LEECHERS"));
        assert!(parse(args("run f .5 3 x")).unwrap_err().to_string().contains("LEECHERS"));
        assert!(parse(args("run f .5 --interval 0")).is_err());
        assert!(parse(args("run f .5 --bogus")).is_err());
        assert!(parse(args("frobnicate")).unwrap_err().to_string().contains("unknown command"));
        assert!(parse(args("status --once")).is_err());
    }

    #[test]
    fn lab_flags() {
        let Command::Lab(a) =
            parse(args("lab --leechers 3 --helpers 0 --size 1000 --no-helpers --json --keep")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (a.spec.leechers, a.spec.boards, a.spec.size, a.no_helpers, a.json, a.keep),
            (3, 0, 1000, true, true, true)
        );
        assert_eq!(parse(args("lab")).unwrap(), Command::Lab(LabArgs::default()));
        assert!(parse(args("lab --leechers 0")).is_err());
        assert!(parse(args("lab --ratio 2")).unwrap_err().to_string().contains("RATIO"));
        assert!(parse(args("lab --size x")).is_err());
        let Command::Lab(a) =
            parse(args("lab --crowd --leecher-clients libtorrent,transmission --transmission /t4 --svg /p.svg"))
                .unwrap()
        else {
            panic!()
        };
        assert!(a.crowd);
        assert_eq!(a.spec.leecher_clients, vec![Kind::Libtorrent, Kind::Transmission]);
        assert_eq!((a.spec.daemon, a.svg), (Some(PathBuf::from("/t4")), Some(PathBuf::from("/p.svg"))));
        let Command::Lab(a) = parse(args("lab --piece-size 131072")).unwrap() else { panic!() };
        assert_eq!(a.spec.piece_size, Some(131072));
        for bad in ["1000", "8192", "33554432", "x"] {
            assert!(parse(args(&format!("lab --piece-size {bad}"))).unwrap_err().to_string().contains("--piece-size"));
        }
        let bad = parse(args("lab --leecher-clients transmission,qbittorrent")).unwrap_err().to_string();
        assert!(bad.contains("--leecher-clients") && bad.contains("qbittorrent"), "{bad}");
        let Command::Lab(a) = parse(args("lab --origin-client deluge")).unwrap() else { panic!() };
        assert_eq!(a.spec.origin_client, OriginClient::Deluge);
        let bad = parse(args("lab --origin-client utorrent")).unwrap_err().to_string();
        assert!(bad.contains("--origin-client") && bad.contains("utorrent"), "{bad}");
    }

    #[test]
    fn other_commands() {
        assert_eq!(parse(args("status --json")).unwrap(), Command::Status { config: None, json: true });
        assert_eq!(parse(args("release")).unwrap(), Command::Release { config: None, json: false });
        let Command::Watch(w) = parse(args("watch --once --dry-run --interval 5 --json")).unwrap() else { panic!() };
        assert_eq!((w.once, w.dry_run, w.interval, w.json), (true, true, Some(5), true));
        assert!(parse(args("watch x")).unwrap_err().to_string().contains("odseed watch"));
        assert!(parse(args("watch --min-size 5")).is_err());
        let Command::Watch(w) = parse(args("watch --max-time 5")).unwrap() else { panic!() };
        assert_eq!(w.max_time, Some(5));
        assert_eq!(parse(args("")).unwrap(), Command::Help);
        assert_eq!(parse(args("run --help")).unwrap(), Command::Help);
    }

    #[test]
    fn ec2_provision_and_deprovision() {
        let Command::Provision(p) = parse(args(
            "ec2 provision --region eu-west-3 --count 2 --allow-from 198.51.100.7/32 --arch arm64 --no-wait",
        ))
        .unwrap() else {
            panic!("not provision")
        };
        assert_eq!(
            (p.region.as_str(), p.count, p.instance_type.as_str(), p.wait, p.no_wait),
            ("eu-west-3", 2, "t4g.small", 900, true)
        );
        assert_eq!(
            parse(args("ec2 deprovision --region us-east-1 --yes")).unwrap(),
            Command::Deprovision(DeprovisionArgs { region: "us-east-1".into(), config: None })
        );
        for (line, says) in [
            ("ec2 provision --region r --count 2", "--allow-from"),
            ("ec2 provision --region r --count 0 --allow-from 1.2.3.4/32", "--count"),
            ("ec2 provision --region r --count 1 --allow-from 1.2.3.4", "IPv4 address range"),
            ("ec2 provision --region r --count 1 --allow-from 1.2.3.4/32 --arch sparc", "--arch"),
            ("ec2 deprovision --region r", "add --yes"),
            ("ec2 deprovision --region r --yes --count 2", "not --count"),
            ("ec2 launch", "provision"),
        ] {
            let e = parse(args(line)).unwrap_err().to_string();
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn stage_arguments() {
        let Command::Stage(a) = parse(args("stage t.torrent --helpers 3 --down-kbps 250 --json")).unwrap() else {
            panic!()
        };
        assert_eq!((a.torrent.as_str(), a.helpers, a.down_kbps, a.json), ("t.torrent", Some(3), 250, true));
        let Command::Stage(a) = parse(args("stage name")).unwrap() else { panic!() };
        assert_eq!((a.helpers, a.down_kbps, a.max_time), (None, 0, 7200));
        for (line, says) in [
            ("stage", "TORRENT"),
            ("stage t --helpers 0", "--helpers"),
            ("stage t --down-kbps 20000000", "--down-kbps"),
            ("stage t --interval 0", "--interval"),
            ("stage t u", "unexpected"),
        ] {
            let e = parse(args(line)).unwrap_err().to_string();
            assert!(e.contains(says), "{line}: {e}");
        }
    }
}
