//! odseed-agent: the helper seeder's daemon, and the pieces the controller reuses.
//!
//! Reused by the controller: [`transmission`] (RPC client), [`wire`] and [`client`] (the agent API),
//! [`infohash`], [`metainfo`], [`bencode`], [`fsutil`]. The agent's own: [`config`], [`api`],
//! [`daemon`] (supervisor of transmission-daemon), [`state`] (desired state), [`metrics`].
#![deny(unsafe_code)]

pub mod api;
pub mod bencode;
pub mod client;
pub mod config;
pub mod daemon;
pub mod fsutil;
pub mod http1;
pub mod infohash;
pub mod launch;
pub mod metainfo;
pub mod metrics;
pub mod state;
pub mod token;
pub mod transmission;
pub mod wire;

pub use infohash::InfoHash;
