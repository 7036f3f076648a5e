//! odseed-agent: the helper seeder's daemon. It serves the agent HTTP API v1 ([`api`]) from a
//! bounded front ([`http`]), supervises one transmission-daemon ([`daemon`]), keeps what it must seed
//! ([`state`]) and the content it holds within its quota ([`inventory`]), and counts what it did
//! ([`metrics`], [`upload`], [`sent`]). Its configuration is [`config`], its token [`token`]. What it shares with the controller and the lab (wire types, metainfo, the Transmission
//! RPC client) lives in `odseed-proto`.
#![deny(unsafe_code)]

pub mod api;
pub mod config;
pub mod content;
pub mod daemon;
pub mod http;
pub mod inventory;
pub mod limits;
pub mod metrics;
pub mod ratelog;
pub mod sent;
pub mod state;
#[cfg(feature = "tls")]
pub mod tls;
pub mod token;
pub mod upload;
