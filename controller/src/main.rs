//! odseed: the controller. `main` parses the command line, sets up logging and signals, and maps
//! outcomes to exit codes in one place: 0 a normal end, 1 a runtime failure (helpers released
//! first), 2 a usage or config error, 130 interrupted (Ctrl-C / SIGTERM, helpers released first).

use odseed::cli::{self, Command};
use odseed::helpers::ec2::Fleet;
use odseed::ledger::{self, Ledger};
use odseed::output::Printer;
use odseed::{config, release, run, status};
use std::process::ExitCode;
use std::sync::mpsc;

fn main() -> ExitCode {
    let mut logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger.format_timestamp(None).format_target(false);
    // ureq's trace level is its wire, unredacted: agents' tokens, AWS session tokens. Never that.
    if std::env::var("RUST_LOG").is_ok_and(|v| v.to_ascii_lowercase().contains("trace")) {
        logger.filter_module("ureq", log::LevelFilter::Debug).filter_module("ureq_proto", log::LevelFilter::Debug);
    }
    logger.init();
    let command = match cli::parse(std::env::args().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("odseed: {e}");
            return ExitCode::from(2);
        }
    };
    let ledger = Ledger::at(&Ledger::default_path());
    let load = |path: &Option<std::path::PathBuf>| config::load(&path.clone().unwrap_or_else(config::default_path));
    match command {
        Command::Help => {
            println!("{}", cli::HELP);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("odseed {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let cfg = match load(&args.config) {
                Ok(c) => c,
                Err(e) => return usage(&e),
            };
            let fleet = match Fleet::from_config(cfg.ec2.as_ref()) {
                Ok(f) => f,
                Err(e) => return usage(&e),
            };
            let stop = match signals() {
                Ok(rx) => rx,
                Err(e) => return failure(&e),
            };
            release_on_panic(ledger.clone(), cfg.clone());
            match run::run(&args, &cfg, fleet, &ledger, &stop) {
                Ok(run::End::Normal(_)) => ExitCode::SUCCESS,
                Ok(run::End::Interrupted) => ExitCode::from(130),
                Err(e) => failure(&e),
            }
        }
        Command::Status { config, json } => match load(&config) {
            Ok(cfg) => match status::status(&cfg, &ledger, json) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => failure(&e),
            },
            Err(e) => usage(&e),
        },
        Command::Lab(args) => {
            if let Some(code) = unshared_if_needed() {
                return code;
            }
            let stop = match signals() {
                Ok(rx) => rx,
                Err(e) => return failure(&e),
            };
            match odseed::lab::lab(&args, &stop) {
                Ok(odseed::lab::Outcome::Done(report)) => {
                    report.print(args.json);
                    ExitCode::SUCCESS
                }
                Ok(odseed::lab::Outcome::Interrupted) => ExitCode::from(130),
                Err(e) => failure(&e),
            }
        }
        Command::Release { config, json } => {
            // The panic button works without a config too: the ledger names each helper's agent.
            let cfg = config.as_ref().map(|p| config::load(p)).transpose();
            let cfg = match cfg {
                Ok(c) => c.or_else(|| config::load(&config::default_path()).ok()),
                Err(e) => return usage(&e),
            };
            match release::release_all(&ledger, cfg.as_ref(), &Printer { json }) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => failure("some helpers could not be released; they stay in the ledger"),
                Err(e) => failure(&e),
            }
        }
    }
}

fn usage(e: &str) -> ExitCode {
    eprintln!("odseed: {e}");
    ExitCode::from(2)
}

fn failure(e: &str) -> ExitCode {
    log::error!("{e}");
    ExitCode::from(1)
}

/// The lab makes a network namespace, which needs root. Without it, runs itself again inside a user
/// namespace where it is root (`unshare --user --map-root-user`); the exit code of that, if it did.
fn unshared_if_needed() -> Option<ExitCode> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    if root || std::env::var_os("ODSEED_LAB_UNSHARED").is_some() {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    log::info!("not root: running the lab inside a user namespace (unshare --user --map-root-user)");
    let status = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env("ODSEED_LAB_UNSHARED", "1")
        .status();
    match status {
        Ok(s) => Some(ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8)),
        Err(e) => Some(failure(&format!("cannot run unshare: {e}; run the lab as root"))),
    }
}

/// SIGINT and SIGTERM arrive as a message the run loop waits on between rounds.
fn signals() -> Result<mpsc::Receiver<()>, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            log::warn!("signal {sig}: releasing helpers and stopping");
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// A panic (release builds abort on panic, so no destructor runs) still releases this run's helpers.
fn release_on_panic(ledger: Ledger, cfg: config::Config) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let me = ledger::Owner::me();
        for e in ledger.entries().unwrap_or_default().iter().filter(|e| e.owner == me) {
            let _ = release::release_entry(&ledger, Some(&cfg), e);
        }
    }));
}
