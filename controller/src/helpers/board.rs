//! A board: an always-on agent endpoint from the config's `[[board]]`.

use super::{Helper, Kind};
use crate::config::BoardConfig;
use odseed_agent::client::AgentClient;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn helper(c: &BoardConfig) -> Helper {
    Helper::new(&c.name, Kind::Board, AgentClient::new(&c.url, &c.token, TIMEOUT), c.token_file.clone())
}
