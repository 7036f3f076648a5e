//! Helpers: agent endpoints odseed engages for a torrent and releases. Boards ([`board`]) are always
//! on; EC2 instances are started to be engaged and stopped when released ([`ec2`] for the EC2 side,
//! [`instances`] for engaging them). A [`helper::Helper`] is one endpoint and what is known of it;
//! the [`pool::Pool`] holds them all for a run, and one failing helper never stops a run: it is set
//! aside for a while and another one is used.

pub mod agent;
pub mod board;
pub mod ec2;
pub mod helper;
mod instances;
pub mod pool;
#[cfg(test)]
pub(crate) mod testing;

pub use helper::{Event, Helper, Kind};
pub use pool::Pool;
