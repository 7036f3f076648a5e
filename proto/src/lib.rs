//! odseed-proto: what the agent, the controller and the lab share, and nothing that only one of
//! them needs.
//!
//! - BitTorrent: [`infohash`], [`bencode`], [`metainfo`] (parse, validate, create).
//! - The agent HTTP API v1: [`wire`] (the types both sides serialise, with [`wire::ErrorCode`]) and,
//!   behind the `client` feature, [`agent_client`] (the blocking client; the only part needing ureq).
//! - Transmission: [`transmission`] (its RPC client over a minimal HTTP/1.1 exchange, and starting
//!   and stopping a `transmission-daemon` process).
//! - Files and processes: [`fsutil`] (atomic writes, random secrets), [`procfs`], [`toml_error`].
//! - Text from outside made safe to print: [`printable`].
#![deny(unsafe_code)]

#[cfg(feature = "client")]
pub mod agent_client;
pub mod bencode;
pub mod fsutil;
pub mod infohash;
pub mod metainfo;
pub mod printable;
pub mod procfs;
pub mod toml_error;
pub mod transmission;
pub mod wire;

pub use infohash::InfoHash;
