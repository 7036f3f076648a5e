//! odseed-agent: args, logging, signals and wiring. Everything else lives in the library.

use odseed_agent::api::Api;
use odseed_agent::config::{self, Config};
use odseed_agent::daemon::{Settings, Supervisor};
use odseed_agent::http::{Limits, Server};
use odseed_agent::inventory::{Inventory, Quota};
use odseed_agent::state::Desired;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const HELP: &str = "\
odseed-agent: a helper seeder for odseed. Owns one transmission-daemon and seeds the torrents the
odseed controller asks for over an authenticated HTTP API (v1).

USAGE:
    odseed-agent [--config PATH] [--check-config | --fingerprint]

OPTIONS:
    -c, --config PATH   config file (default /etc/odseed/agent.toml); every key has a default
        --check-config  validate the config and exit (0 ok, 2 bad)
        --fingerprint   print the SHA-256 of the API's TLS certificate (the controller's
                        cert_sha256), making a self-signed one first if [tls] names none yet
    -h, --help          this text
    -V, --version       the version

Logs go to stderr; RUST_LOG sets the level (default: info).
Exit codes: 0 after SIGTERM/SIGINT, 1 a runtime failure, 2 a usage or config error.
More: docs/agent.md";

struct Args {
    config: PathBuf,
    check_only: bool,
    fingerprint: bool,
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args { config: PathBuf::from(config::DEFAULT_PATH), check_only: false, fingerprint: false };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => args.config = parser.value()?.into(),
            Long("check-config") => args.check_only = true,
            Long("fingerprint") => args.fingerprint = true,
            Short('h') | Long("help") => {
                println!("{HELP}");
                return Ok(None);
            }
            Short('V') | Long("version") => {
                println!("odseed-agent {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(args))
}

/// Keeps glibc's heap from holding on to what a request freed: large buffers (a PUT's body, the
/// daemon's answers) are mmapped and so returned at once (glibc otherwise raises this threshold to
/// the largest block freed, up to 32 MiB, and keeps such blocks in the heap after `free`), and one
/// connection thread's arena is shared with the next instead of one arena per thread.
fn bound_the_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets glibc's allocator parameters; it is called before any thread starts.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    bound_the_heap();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("odseed-agent: {e} (try --help)");
            return ExitCode::from(2);
        }
    };
    let loaded = Config::load(&args.config).map_err(|e| e.to_string());
    let cfg = match loaded.and_then(|c| odseed_agent::token::check(&c.token_file).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.check_only {
        println!("config {}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    if args.fingerprint {
        return print_fingerprint(&cfg);
    }
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(feature = "tls")]
fn print_fingerprint(cfg: &Config) -> ExitCode {
    if !cfg.tls.enabled {
        log::error!("TLS is off in this config ([tls] enabled = false): there is no certificate");
        return ExitCode::from(2);
    }
    match odseed_agent::tls::load_or_create(&cfg.tls) {
        Ok(f) => {
            println!("{f}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(feature = "tls"))]
fn print_fingerprint(_: &Config) -> ExitCode {
    log::error!("this odseed-agent was built without TLS (cargo feature `tls`)");
    ExitCode::from(2)
}

#[cfg(feature = "tls")]
fn tls_acceptor(cfg: &Config) -> Result<Option<odseed_agent::http::Acceptor>, String> {
    if !cfg.tls.enabled {
        return Ok(None);
    }
    let (acceptor, fingerprint) = odseed_agent::tls::acceptor(&cfg.tls)?;
    log::info!("API over TLS; certificate SHA-256 {fingerprint}");
    Ok(Some(acceptor))
}

#[cfg(not(feature = "tls"))]
fn tls_acceptor(_: &Config) -> Result<Option<odseed_agent::http::Acceptor>, String> {
    Ok(None) // Config::validate refuses `tls.enabled` in this build.
}

fn run(cfg: Config) -> Result<(), String> {
    if cfg.workers.is_some() {
        log::warn!(
            "config: `workers` is no longer used (one thread per connection, up to `max_connections`); remove it"
        );
    }
    for (key, dir) in [("data_dir", &cfg.data_dir), ("state_dir", &cfg.state_dir)] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{key} {}: cannot create: {e}", dir.display()))?;
    }
    let token = odseed_agent::token::load_or_create(&cfg.token_file)?;
    let desired =
        Arc::new(Desired::open(&cfg.state_dir).map_err(|e| format!("state_dir {}: {e}", cfg.state_dir.display()))?);
    if !desired.is_empty() {
        log::info!("restoring {} torrent(s) from {}", desired.len(), cfg.state_dir.display());
    }
    let quota = Quota { max_content_bytes: cfg.max_content_bytes, min_free_bytes: cfg.min_free_bytes };
    let inventory = Arc::new(
        Inventory::open(&cfg.state_dir, &cfg.data_dir, quota, desired.clone())
            .map_err(|e| format!("state_dir {}: {e}", cfg.state_dir.display()))?,
    );
    let limits = Limits {
        max_connections: cfg.max_connections,
        max_per_address: cfg.max_connections_per_address,
        ..Limits::default()
    };
    let tls = tls_acceptor(&cfg)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = Server::bind(cfg.listen, limits, tls).map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let listening = server.local_addr().map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let settings =
        Settings { daemon: cfg.daemon.clone(), data_dir: cfg.data_dir.clone(), state_dir: cfg.state_dir.clone() };
    let supervisor = Arc::new(
        Supervisor::start(settings, desired.clone(), inventory.clone())
            .map_err(|e| format!("cannot start the supervisor: {e}"))?,
    );
    let api = Arc::new(Api::new(token, desired, inventory, supervisor.clone(), &cfg));
    log::info!("odseed-agent {} listening on {scheme}://{listening}", env!("CARGO_PKG_VERSION"));

    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let stopper = server.stopper();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("signal {sig}: shutting down");
            stopper.stop();
        }
    });
    server.run(api);
    supervisor.shutdown();
    log::info!("stopped");
    Ok(())
}
