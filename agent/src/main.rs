//! odseed-agent: args, logging, signals and wiring. Everything else lives in the library.

use odseed_agent::api::Api;
use odseed_agent::config::{self, Config};
use odseed_agent::daemon::{Settings, Supervisor};
use odseed_agent::metrics::Metrics;
use odseed_agent::state::Desired;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

const HELP: &str = "\
odseed-agent: a helper seeder for odseed. Owns one transmission-daemon and seeds the torrents the
odseed controller asks for over an authenticated HTTP API (v1).

USAGE:
    odseed-agent [--config PATH] [--check-config]

OPTIONS:
    -c, --config PATH   config file (default /etc/odseed/agent.toml); every key has a default
        --check-config  validate the config and exit (0 ok, 2 bad)
    -h, --help          this text
    -V, --version       the version

Logs go to stderr; RUST_LOG sets the level (default: info).
Exit codes: 0 after SIGTERM/SIGINT, 1 a runtime failure, 2 a usage or config error.";

struct Args {
    config: PathBuf,
    check_only: bool,
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args { config: PathBuf::from(config::DEFAULT_PATH), check_only: false };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => args.config = parser.value()?.into(),
            Long("check-config") => args.check_only = true,
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

fn main() -> ExitCode {
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
    let cfg = match Config::load(&args.config) {
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
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

fn run(cfg: Config) -> Result<(), String> {
    for (key, dir) in [("data_dir", &cfg.data_dir), ("state_dir", &cfg.state_dir)] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{key} {}: cannot create: {e}", dir.display()))?;
    }
    let token = odseed_agent::token::load_or_create(&cfg.token_file)?;
    let desired =
        Arc::new(Desired::open(&cfg.state_dir).map_err(|e| format!("state_dir {}: {e}", cfg.state_dir.display()))?);
    if !desired.is_empty() {
        log::info!("restoring {} torrent(s) from {}", desired.len(), cfg.state_dir.display());
    }
    let server = tiny_http::Server::http(cfg.listen).map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let server = Arc::new(server);
    let settings =
        Settings { daemon: cfg.daemon.clone(), data_dir: cfg.data_dir.clone(), state_dir: cfg.state_dir.clone() };
    let supervisor = Arc::new(
        Supervisor::start(settings, desired.clone()).map_err(|e| format!("cannot start the supervisor: {e}"))?,
    );
    let api = Arc::new(Api {
        token,
        desired,
        supervisor: supervisor.clone(),
        metrics: Metrics::default(),
        max_torrent_bytes: cfg.max_torrent_bytes,
        leaked: Default::default(),
    });
    log::info!("odseed-agent {} listening on {}", env!("CARGO_PKG_VERSION"), server.server_addr());

    let stopping = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    {
        let (server, stopping, workers) = (server.clone(), stopping.clone(), cfg.workers);
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig}: shutting down");
                stopping.store(true, Ordering::SeqCst);
                (0..workers).for_each(|_| server.unblock());
            }
        });
    }

    // Workers take requests off the server and answer each on a thread of its own (at most
    // MAX_IN_FLIGHT at once), so a client that sends its body slowly or never holds up nobody else,
    // not even shutdown.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..cfg.workers)
        .map(|i| {
            let (server, api, stopping, in_flight) = (server.clone(), api.clone(), stopping.clone(), in_flight.clone());
            std::thread::Builder::new().name(format!("api-{i}")).spawn(move || loop {
                match server.recv() {
                    Ok(req) => dispatch(&api, &in_flight, req),
                    Err(_) if stopping.load(Ordering::SeqCst) => break,
                    Err(e) => log::warn!("api: {e}"),
                }
                if api.leaked() >= MAX_LEAKED {
                    log::error!("{MAX_LEAKED} oversized requests abandoned; exiting so the service manager restarts the agent cleanly");
                    stopping.store(true, Ordering::SeqCst);
                    server.unblock();
                    break;
                }
            })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot start API threads: {e}"))?;
    for w in workers {
        let _ = w.join();
    }
    supervisor.shutdown();
    if api.leaked() >= MAX_LEAKED {
        return Err("stopped after too many oversized requests".into());
    }
    log::info!("stopped");
    Ok(())
}

/// Requests answered at once on threads of their own; past this, a worker answers in place.
const MAX_IN_FLIGHT: usize = 64;
/// Oversized requests the agent abandons before it exits to be restarted (see `Api::serve`).
const MAX_LEAKED: u64 = 256;

fn dispatch(api: &Arc<Api>, in_flight: &Arc<AtomicUsize>, req: tiny_http::Request) {
    // Refusing an oversized body never blocks (and such a request must never be dropped): inline.
    if api.must_abandon(&req) {
        return api.serve(req);
    }
    if in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
        api.serve(req);
        in_flight.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let (api, counter) = (api.clone(), in_flight.clone());
    let spawned = std::thread::Builder::new().stack_size(256 * 1024).spawn(move || {
        api.serve(req);
        counter.fetch_sub(1, Ordering::SeqCst);
    });
    if let Err(e) = spawned {
        // The request went with the closure: tiny_http answers 500 when it is dropped.
        in_flight.fetch_sub(1, Ordering::SeqCst);
        log::error!("api: cannot start a thread for a request: {e}");
    }
}
