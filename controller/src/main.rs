//! odseed: the controller. Its commands arrive with the controller issue; for now it explains itself.

use std::process::ExitCode;

const HELP: &str = "\
odseed: on-demand BitTorrent seeding. Watches a swarm and engages helper seeders (boards running
odseed-agent, EC2 instances) while seeders per leecher are below a target.

USAGE:
    odseed run <TORRENT> <RATIO> [SEEDERS] [LEECHERS]   (not built yet)
    odseed status | release | lab                        (not built yet)

Only the agent (odseed-agent) is built so far.";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None | Some("-h" | "--help" | "help") => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("odseed {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("odseed: `{other}` is not built yet (try --help)");
            ExitCode::from(2)
        }
    }
}
