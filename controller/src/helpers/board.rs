//! A board: an always-on agent endpoint from the config's `[[board]]`.

use crate::config::BoardConfig;
use crate::target::Target;
use odseed_agent::client::{AgentClient, ClientError};
use odseed_agent::wire::Torrent;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Board {
    pub name: String,
    pub token_file: PathBuf,
    pub client: AgentClient,
    pub engaged: bool,
    pub engaged_at: Option<Instant>,
    /// Engaged, but its agent stopped answering: not counted until it answers again.
    pub lost: bool,
    pub session: Option<Torrent>,
    pub unhealthy_until: Option<Instant>,
}

impl Board {
    pub fn new(c: &BoardConfig) -> Board {
        Board {
            name: c.name.clone(),
            token_file: c.token_file.clone(),
            client: AgentClient::new(&c.url, &c.token, TIMEOUT),
            engaged: false,
            engaged_at: None,
            lost: false,
            session: None,
            unhealthy_until: None,
        }
    }

    pub fn healthy(&self, now: Instant) -> bool {
        self.unhealthy_until.is_none_or(|t| now >= t)
    }

    /// Health check, then `PUT` of the torrent.
    pub fn engage(&mut self, target: &Target) -> Result<(), ClientError> {
        self.client.health()?;
        let (session, _) = self.client.put(&target.meta.info_hash, &target.bytes)?;
        self.session = Some(session);
        self.engaged = true;
        self.lost = false;
        self.engaged_at = Some(Instant::now());
        Ok(())
    }

    /// Marks an engaged board unreachable; the one line that says so.
    pub fn mark_lost(&mut self, why: &str) -> super::Event {
        self.lost = true;
        self.session = None;
        self.unhealthy_until = Some(Instant::now() + super::UNHEALTHY_FOR);
        super::Event::Fault(format!("board {}: lost ({why}); another helper will be used", self.name))
    }
}
