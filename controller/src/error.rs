//! The controller's one error type: each variant says what failed, its message names the culprit.
//! main prints it once and maps it to an exit code in one `match` (2: the command line or the
//! config, to fix before running again; 1: a failure while running).

use std::fmt;

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The command line is wrong.
    Usage(String),
    /// The config file, or the EC2 setup it names (credentials, profile, region, endpoint), is unusable.
    Config(String),
    /// There is no config at this path (main shows a starter config after it).
    NoConfig(std::path::PathBuf),
    /// The ledger cannot be read or written: without it no helper may be engaged.
    Ledger(String),
    /// An instance another live run holds: this run may not use it.
    Held(String),
    /// The torrent to help cannot be found or read.
    Torrent(String),
    /// Instances this run started and could not stop; they stay in the ledger.
    Stranded(Vec<String>),
    /// `odseed release` could not release every helper; they stay in the ledger.
    NotReleased,
    /// The lab's swarm could not be built or did not finish.
    Lab(String),
    /// The system refused something (signal handlers, a helper process).
    System(String),
    /// `odseed stage` could stage the torrent on no helper.
    Stage(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m)
            | Error::Config(m)
            | Error::Ledger(m)
            | Error::Held(m)
            | Error::Torrent(m)
            | Error::Lab(m)
            | Error::Stage(m)
            | Error::System(m) => f.write_str(m),
            Error::Stranded(ids) => write!(
                f,
                "instance(s) {} could not be stopped; they stay in the ledger: run `odseed release`",
                ids.join(", ")
            ),
            Error::NotReleased => f.write_str("some helpers could not be released; they stay in the ledger"),
            Error::NoConfig(path) => write!(
                f,
                "no config at {} (pass --config PATH)",
                odseed_proto::printable::printable(&path.display().to_string())
            ),
        }
    }
}

impl std::error::Error for Error {}
