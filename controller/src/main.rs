//! odseed: the controller. `main` parses the command line, sets up logging and signals, and maps
//! outcomes to exit codes in one place: 0 a normal end, 1 a runtime failure (helpers released
//! first), 2 a usage or config error, 130 interrupted (Ctrl-C / SIGTERM, helpers released first).

use odseed::budget::Budget;
use odseed::cli::{self, Command};
use odseed::error::Error;
use odseed::guard::End;
use odseed::helpers::ec2::Fleet;
use odseed::ledger::{self, Ledger};
use odseed::output::Printer;
use odseed::settings::Settings;
use odseed::{config, release, run, status};
use odseed_proto::printable::printable_line;
use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;

fn main() -> ExitCode {
    let mut logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // One line per record, with what agents, trackers and EC2 said escaped: nothing they send may
    // act on the terminal or forge a log line.
    logger.format(|buf, record| {
        let text = printable_line(&record.args().to_string(), odseed::output::MAX_LINE_CHARS);
        writeln!(buf, "[{:<5}] {text}", record.level())
    });
    // ureq's trace level is its wire, unredacted: agents' tokens, AWS session tokens. Never that.
    if std::env::var("RUST_LOG").is_ok_and(|v| v.to_ascii_lowercase().contains("trace")) {
        logger.filter_module("ureq", log::LevelFilter::Debug).filter_module("ureq_proto", log::LevelFilter::Debug);
    }
    logger.init();
    match odseed_main() {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code(&e);
            // A usage or config error is the user's to fix: said plainly. A failure goes to the log.
            if let Error::NoConfig(_) = e {
                // A starter config: odseed's own text, printed with its newlines.
                eprintln!("odseed: {e}. A minimal one:\n\n{}\n", config::EXAMPLE);
            } else if code == 2 {
                eprintln!("odseed: {}", printable_line(&e.to_string(), odseed::output::MAX_LINE_CHARS));
            } else {
                log::error!("{e}");
            }
            ExitCode::from(code)
        }
    }
}

/// Every error's exit code, in one place: 2 for what the user fixes before running again (the
/// command line, the config); 1 for a failure while running (helpers are released first).
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Usage(_) | Error::Config(_) | Error::NoConfig(_) => 2,
        // Ledger, Held, Torrent, Stranded, NotReleased, Lab, System, and whatever comes later.
        _ => 1,
    }
}

/// The command, carried out; the exit code of a normal end (0, or 130 when interrupted).
fn odseed_main() -> Result<ExitCode, Error> {
    let command = cli::parse(std::env::args().skip(1).collect())?;
    let ledger = Ledger::at(&Ledger::default_path());
    let load = |path: &Option<std::path::PathBuf>| config::load(&path.clone().unwrap_or_else(config::default_path));
    match command {
        Command::Help => {
            println!("{}", cli::HELP);
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("odseed {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let cfg = load(&args.config)?;
            let fleet = Fleet::from_config(cfg.ec2.as_ref())?;
            let stop = signals()?;
            release_on_panic(ledger.clone(), cfg.clone());
            let settings = Settings::resolve(&args, &cfg.policy);
            let budget = Budget::at(&Budget::default_path(), &cfg.budget);
            Ok(exit(run::run(&settings, &cfg, fleet, &ledger, Some(&budget), &stop)?))
        }
        Command::Watch(args) => {
            let cfg = load(&args.config)?;
            let fleet = Fleet::from_config(cfg.ec2.as_ref())?;
            let stop = signals()?;
            release_on_panic(ledger.clone(), cfg.clone());
            let options = odseed::watch::Options {
                interval: std::time::Duration::from_secs(args.interval.unwrap_or(cfg.policy.interval)),
                max_time: args.max_time.map(std::time::Duration::from_secs),
                metrics_file: args.metrics_file.clone(),
                once: args.once,
                dry_run: args.dry_run,
                json: args.json,
            };
            let budget = Budget::at(&Budget::default_path(), &cfg.budget);
            Ok(exit(odseed::watch::watch(&options, &cfg, fleet, &ledger, &budget, &stop)?))
        }
        Command::Stage(args) => {
            let cfg = load(&args.config)?;
            let fleet = Fleet::from_config(cfg.ec2.as_ref())?;
            let stop = signals()?;
            release_on_panic(ledger.clone(), cfg.clone());
            let budget = Budget::at(&Budget::default_path(), &cfg.budget);
            Ok(exit(odseed::stage::stage(&args, &cfg, fleet, &ledger, Some(&budget), &stop)?))
        }
        Command::Status { config, json } => {
            let cfg = load(&config)?;
            status::status(&cfg, &ledger, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lab(args) => {
            if let Some(code) = unshared_if_needed()? {
                return Ok(code);
            }
            let stop = signals()?;
            Ok(match odseed::lab::lab(&args, &stop)? {
                odseed::lab::Outcome::Done(reports, picture) => {
                    for r in reports {
                        r.print(args.json);
                    }
                    match (picture, args.json) {
                        (Some(p), true) => println!("{}", serde_json::json!({"event": "picture", "path": p})),
                        (Some(p), false) => println!("\npicture: {}", p.display()),
                        (None, _) => {}
                    }
                    ExitCode::SUCCESS
                }
                odseed::lab::Outcome::Interrupted => ExitCode::from(130),
            })
        }
        Command::Provision(args) => {
            let stop = signals()?;
            Ok(match odseed::provision::provision(&args, &ledger, &stop)? {
                odseed::provision::Outcome::Done => ExitCode::SUCCESS,
                odseed::provision::Outcome::Interrupted => ExitCode::from(130),
            })
        }
        Command::Deprovision(args) => {
            odseed::provision::deprovision(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Release { config, json } => {
            // The panic button works without a config too: the ledger names each helper's agent.
            let cfg = match config {
                Some(p) => Some(config::load(&p)?),
                None => config::load(&config::default_path()).ok(),
            };
            release::release_all(&ledger, cfg.as_ref(), &Printer { json })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A normal end's exit code: 0, or 130 when interrupted.
fn exit(end: End) -> ExitCode {
    match end {
        End::Normal(_) => ExitCode::SUCCESS,
        End::Interrupted => ExitCode::from(130),
    }
}

/// The lab makes a network namespace, which needs root. Without it, runs itself again inside a user
/// namespace where it is root (`unshare --user --map-root-user`); the exit code of that, if it did.
fn unshared_if_needed() -> Result<Option<ExitCode>, Error> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    if root || std::env::var_os("ODSEED_LAB_UNSHARED").is_some() {
        return Ok(None);
    }
    let exe = std::env::current_exe().map_err(|e| Error::System(format!("cannot find this program: {e}")))?;
    log::info!("not root: running the lab inside a user namespace (unshare --user --map-root-user)");
    let status = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env("ODSEED_LAB_UNSHARED", "1")
        .status();
    match status {
        Ok(s) => Ok(Some(ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8))),
        Err(e) => Err(Error::System(format!("cannot run unshare: {e}; run the lab as root"))),
    }
}

/// SIGINT and SIGTERM arrive as a message the run loop waits on between rounds.
fn signals() -> Result<mpsc::Receiver<()>, Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Error::System(format!("cannot install signal handlers: {e}")))?;
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
