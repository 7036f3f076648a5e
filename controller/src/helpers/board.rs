//! A board: an always-on agent endpoint from the config's `[[board]]`.

use super::agent::{Agent, Connect};
use super::helper::{Helper, Kind};
use crate::config::BoardConfig;
use odseed_proto::InfoHash;
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn helper(c: &BoardConfig, connect: &dyn Connect) -> Helper {
    let client = self::client(c, connect);
    Helper { slots: c.slots, ..Helper::new(&c.name, Kind::Board, client, c.token_file.clone()) }
}

/// A client of the board's agent.
pub fn client(c: &BoardConfig, connect: &dyn Connect) -> Box<dyn Agent> {
    connect.connect(&c.url, &c.token, c.trust(), TIMEOUT)
}

/// What each agent holds of each torrent (0.0 to 1.0), asked of all at once; `None` for one that
/// did not say (down, or older than `GET /v1/content`).
pub fn holdings(agents: &[Box<dyn Agent>]) -> Vec<Option<BTreeMap<InfoHash, f64>>> {
    std::thread::scope(|s| {
        let asks: Vec<_> = (agents.iter())
            .map(|a| {
                s.spawn(move || {
                    let content = a.content().ok()?;
                    Some(content.torrents.iter().map(|t| (t.info_hash, t.percent_done.clamp(0.0, 1.0))).collect())
                })
            })
            .collect();
        asks.into_iter().map(|a| a.join().ok().flatten()).collect()
    })
}
