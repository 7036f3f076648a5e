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
//! - TLS, behind the `tls` feature: [`tls`] (fingerprints, PEM, self-signed certificates) and, with
//!   `client`, [`pinned`] (the client's trust in one certificate).
#![deny(unsafe_code)]

#[cfg(feature = "client")]
pub mod agent_client;
pub mod bencode;
pub mod fsutil;
pub mod infohash;
pub mod metainfo;
#[cfg(feature = "client")]
pub mod pinned;
pub mod printable;
pub mod procfs;
#[cfg(feature = "tls")]
pub mod tls;
pub mod toml_error;
pub mod transmission;
pub mod wire;

pub use infohash::InfoHash;
