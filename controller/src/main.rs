//! odseed: the controller. `main` parses the command line, sets up logging and maps errors to exit
//! codes (0 normal end, 1 runtime failure, 2 usage or config error, 130 interrupted).

mod cli;
mod config;
mod policy;
mod tracker;

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    match cli::parse(std::env::args().skip(1).collect()) {
        Ok(cli::Command::Help) => {
            println!("{}", cli::HELP);
            ExitCode::SUCCESS
        }
        Ok(cli::Command::Version) => {
            println!("odseed {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("odseed: not built yet");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("odseed: {e}");
            ExitCode::from(2)
        }
    }
}
