//! One helper: an agent endpoint (a board's, or a started instance's), whether it is engaged, what
//! its agent last said about the torrent, whether it is healthy; and what happens to helpers, as
//! [`Event`]s for the output.

use crate::target::Target;
use odseed_proto::agent_client::{AgentClient, Error as AgentError};
use odseed_proto::wire::{ErrorCode, Torrent, TorrentState};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A failed helper is not tried again for this long.
pub(super) const UNHEALTHY_FOR: Duration = Duration::from_secs(120);
/// An engaged helper whose torrent stays queued or verifying without progress this long has failed.
pub(super) const STALLED_AFTER: Duration = Duration::from_secs(300);

/// Something that happened to a helper, for the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Engaged(String),
    Released(String),
    /// One line about a failure that the run survives.
    Fault(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Board,
    /// An instance of `fleet.pools[pool]`, running since `started`.
    Instance {
        pool: usize,
        region: String,
        started: Instant,
    },
}

/// An engagement that failed, and whether the agent may have taken the torrent all the same (the
/// `PUT` timed out or broke after it was sent): such a helper must be released like an engaged one.
#[derive(Debug)]
pub struct EngageFailure {
    pub error: AgentError,
    pub maybe_seeding: bool,
}

pub struct Helper {
    /// A board's name or an instance's id.
    pub name: String,
    pub kind: Kind,
    pub token_file: PathBuf,
    /// How many torrents it may seed at once, for all runs together (an instance: 1).
    pub slots: u32,
    pub client: AgentClient,
    pub engaged: bool,
    pub engaged_at: Option<Instant>,
    /// Engaged, but its agent stopped answering: not counted until it answers again.
    pub lost: bool,
    pub session: Option<Torrent>,
    pub unhealthy_until: Option<Instant>,
    /// Why it cannot seed this run's torrent (its daemon refused it or failed on it): never used again.
    pub cannot_seed: Option<String>,
    /// The last change of its session's state or progress, to tell a stalled one.
    pub progress: Option<(TorrentState, u64, Instant)>,
}

impl Helper {
    pub fn new(name: &str, kind: Kind, client: AgentClient, token_file: PathBuf) -> Helper {
        Helper {
            name: name.into(),
            kind,
            token_file,
            slots: 1,
            client,
            engaged: false,
            engaged_at: None,
            lost: false,
            session: None,
            unhealthy_until: None,
            cannot_seed: None,
            progress: None,
        }
    }

    /// "board pi1", "instance i-0abc (eu-west-3)".
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Board => format!("board {}", self.name),
            Kind::Instance { region, .. } => format!("instance {} ({region})", self.name),
        }
    }

    pub fn healthy(&self, now: Instant) -> bool {
        self.cannot_seed.is_none() && !self.resting(now)
    }

    /// It failed lately (unreachable, or refused an engagement) and is not tried again yet.
    pub fn resting(&self, now: Instant) -> bool {
        self.unhealthy_until.is_some_and(|t| now < t)
    }

    /// Takes in what its agent says of the torrent; why it has failed there, if it has: the daemon
    /// reports an error, or the torrent has stayed queued or verifying with no progress for
    /// [`STALLED_AFTER`].
    pub(super) fn update(&mut self, t: Torrent, now: Instant) -> Option<String> {
        let mark = (t.state, (t.percent_done * 1e6) as u64);
        if self.progress.is_none_or(|(s, p, _)| (s, p) != mark) {
            self.progress = Some((mark.0, mark.1, now));
        }
        let failed = match t.state {
            TorrentState::Error => Some(t.error.clone().unwrap_or_else(|| "the daemon reports an error".into())),
            TorrentState::Queued | TorrentState::Verifying => {
                let since = self.progress.map_or(now, |(_, _, at)| at);
                (now.duration_since(since) >= STALLED_AFTER).then(|| {
                    format!("{} with no progress for {} s", t.state.as_str(), now.duration_since(since).as_secs())
                })
            }
            _ => None,
        };
        self.session = Some(t);
        failed
    }

    /// Health check, then `PUT` of the torrent.
    pub fn engage(&mut self, target: &Target) -> Result<(), EngageFailure> {
        self.client.health().map_err(|error| EngageFailure { error, maybe_seeding: false })?;
        let (session, _) = self
            .client
            .put(&target.meta.info_hash, &target.bytes)
            .map_err(|error| EngageFailure { maybe_seeding: error.maybe_applied(), error })?;
        self.session = Some(session);
        self.progress = None;
        self.engaged = true;
        self.lost = false;
        self.engaged_at = Some(Instant::now());
        Ok(())
    }

    /// Sets the helper aside for this torrent for good; the one line that says so.
    pub(super) fn cannot_seed(&mut self, why: &str) -> Event {
        self.cannot_seed = Some(why.to_string());
        Event::Fault(format!("{}: cannot seed this torrent ({why}); another helper will be used", self.label()))
    }

    /// Marks an engaged helper unreachable; the one line that says so.
    pub(super) fn mark_lost(&mut self, why: &str) -> Event {
        self.lost = true;
        self.session = None;
        self.progress = None;
        self.unhealthy_until = Some(Instant::now() + UNHEALTHY_FOR);
        Event::Fault(format!("{}: lost ({why}); another helper will be used", self.label()))
    }
}

/// Whether an agent refused the torrent as one its daemon cannot seed (v2-only, or hybrid on 3.00).
pub fn unsupported(e: &AgentError) -> bool {
    matches!(e, AgentError::Status { code: Some(ErrorCode::UnsupportedTorrent), .. })
}
