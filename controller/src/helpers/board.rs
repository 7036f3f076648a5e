//! A board: an always-on agent endpoint from the config's `[[board]]`.

use super::agent::Connect;
use super::helper::{Helper, Kind};
use crate::config::BoardConfig;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn helper(c: &BoardConfig, connect: &dyn Connect) -> Helper {
    let client = connect.connect(&c.url, &c.token, c.trust(), TIMEOUT);
    Helper { slots: c.slots, ..Helper::new(&c.name, Kind::Board, client, c.token_file.clone()) }
}
