//! A board: an always-on agent endpoint from the config's `[[board]]`.

use super::helper::{Helper, Kind};
use crate::config::BoardConfig;
use odseed_proto::agent_client::AgentClient;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn helper(c: &BoardConfig) -> Helper {
    let client = AgentClient::with_trust(&c.url, &c.token, c.trust(), TIMEOUT);
    Helper { slots: c.slots, ..Helper::new(&c.name, Kind::Board, client, c.token_file.clone()) }
}
