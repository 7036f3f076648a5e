//! A board: an always-on agent endpoint from the config's `[[board]]`.

use super::helper::{Helper, Kind};
use crate::config::BoardConfig;
use odseed_proto::agent_client::AgentClient;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn helper(c: &BoardConfig) -> Helper {
    Helper::new(&c.name, Kind::Board, AgentClient::new(&c.url, &c.token, TIMEOUT), c.token_file.clone())
}
