//! Transmission, the one BitTorrent client odseed drives: [`rpc`] (a blocking RPC client over
//! [`http1`]), [`torrent`] (what `torrent-get` reports, typed), [`version`] (which daemon, and what that changes) and [`launch`] (a `transmission-daemon` process with the settings odseed gives it,
//! used by the agent's supervisor and by the lab's peers).

pub mod http1;
pub mod launch;
pub mod rpc;
pub mod torrent;
pub mod version;

pub use launch::DaemonConfig;
pub use rpc::{Client, Error};
pub use torrent::{Status, TorrentInfo};
pub use version::Version;
