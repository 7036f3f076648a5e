//! One helper: an agent endpoint (a board's, or a started instance's) and where it stands with a
//! torrent ([`State`], whose transitions are its methods, each given the time so that tests choose
//! it); and what happens to helpers, as [`Event`]s for the output.

use super::agent::Agent;
use crate::price::Meter;
use crate::target::Target;
use odseed_proto::agent_client::Error as AgentError;
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

/// Where a helper stands with its pool's torrent.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not engaged; free to be.
    Idle,
    /// Not engaged; it failed lately and is not tried again before `until`.
    Resting { until: Instant },
    /// Not engaged, and never again for this torrent: its daemon cannot open it, or failed on it.
    CannotSeed { why: String },
    /// Engaged since `since`, its agent answering: what it last said of the torrent, and when that
    /// last changed (to tell a stalled one).
    Engaged { since: Instant, session: Option<Torrent>, changed: Option<(TorrentState, u64, Instant)> },
    /// Engaged since `since`, its agent silent: given nothing new before `until`, released (or
    /// tried again) like an engaged one. If it was `seeding` when it went silent, trackers may
    /// still count it as a seeder (a helper that dies sends no "stopped"): it still counts as ours,
    /// never as a natural seeder.
    Lost { since: Instant, until: Instant, seeding: bool },
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
    pub client: Box<dyn Agent>,
    pub state: State,
    /// An instance's bill so far (`None` for a board: it costs nothing).
    pub meter: Option<Meter>,
}

impl Helper {
    pub fn new(name: &str, kind: Kind, client: Box<dyn Agent>, token_file: PathBuf) -> Helper {
        Helper { name: name.into(), kind, token_file, slots: 1, client, state: State::Idle, meter: None }
    }

    /// "board pi1", "instance i-0abc (eu-west-3)".
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Board => format!("board {}", self.name),
            Kind::Instance { region, .. } => format!("instance {} ({region})", self.name),
        }
    }

    /// Engaged, answering or not.
    pub fn engaged(&self) -> bool {
        matches!(self.state, State::Engaged { .. } | State::Lost { .. })
    }

    /// Engaged and answering: it counts.
    pub fn active(&self) -> bool {
        matches!(self.state, State::Engaged { .. })
    }

    pub fn lost(&self) -> bool {
        matches!(self.state, State::Lost { .. })
    }

    /// Lost while it seeded: trackers may still count it.
    pub fn lost_seeding(&self) -> bool {
        matches!(self.state, State::Lost { seeding: true, .. })
    }

    /// When it was engaged.
    pub fn since(&self) -> Option<Instant> {
        match self.state {
            State::Engaged { since, .. } | State::Lost { since, .. } => Some(since),
            _ => None,
        }
    }

    /// What its agent last said of the torrent's state.
    pub fn torrent_state(&self) -> Option<TorrentState> {
        match &self.state {
            State::Engaged { session: Some(t), .. } => Some(t.state),
            _ => None,
        }
    }

    /// Not engaged, and may be now.
    pub fn free(&self, now: Instant) -> bool {
        match self.state {
            State::Idle => true,
            State::Resting { until } => now >= until,
            _ => false,
        }
    }

    /// It failed lately (unreachable, or refused an engagement) and is given nothing new yet.
    pub fn resting(&self, now: Instant) -> bool {
        match self.state {
            State::Resting { until } | State::Lost { until, .. } => now < until,
            _ => false,
        }
    }

    pub fn cannot(&self) -> bool {
        matches!(self.state, State::CannotSeed { .. })
    }

    /// Health check, then `PUT` of the torrent.
    pub fn engage(&mut self, target: &Target, now: Instant) -> Result<(), EngageFailure> {
        self.client.health().map_err(|error| EngageFailure { error, maybe_seeding: false })?;
        let (session, _) = self
            .client
            .put(&target.meta.info_hash, &target.bytes)
            .map_err(|error| EngageFailure { maybe_seeding: error.maybe_applied(), error })?;
        self.state = State::Engaged { since: now, session: Some(session), changed: None };
        Ok(())
    }

    /// Takes in what its agent says of the torrent (a lost helper is found again); why it has
    /// failed there, if it has: the daemon reports an error, or the torrent has stayed queued or
    /// verifying with no progress for [`STALLED_AFTER`].
    pub(super) fn update(&mut self, t: Torrent, now: Instant) -> Option<String> {
        let (since, mut changed) = match &self.state {
            State::Engaged { since, changed, .. } => (*since, *changed),
            State::Lost { since, .. } => {
                log::info!("{}: reachable again", self.label());
                (*since, None)
            }
            _ => return None,
        };
        let mark = (t.state, (t.percent_done * 1e6) as u64);
        if changed.is_none_or(|(s, p, _)| (s, p) != mark) {
            changed = Some((mark.0, mark.1, now));
        }
        let failed = match t.state {
            TorrentState::Error => Some(t.error.clone().unwrap_or_else(|| "the daemon reports an error".into())),
            TorrentState::Queued | TorrentState::Verifying => {
                let at = changed.map_or(now, |(_, _, at)| at);
                (now.duration_since(at) >= STALLED_AFTER).then(|| {
                    format!("{} with no progress for {} s", t.state.as_str(), now.duration_since(at).as_secs())
                })
            }
            _ => None,
        };
        self.state = State::Engaged { since, session: Some(t), changed };
        failed
    }

    /// Reads its agent's counters into an instance's meter (a board has none); `session` is what
    /// its agent just said of the torrent.
    pub(super) fn read_meter(&mut self, session: &Torrent) {
        let Some(m) = self.meter.as_mut() else { return };
        m.payload = m.payload.max(session.uploaded_bytes);
        if let Ok(u) = self.client.usage() {
            m.last = Some(u);
            m.base.get_or_insert(u);
        }
    }

    /// Its agent took the torrent again (it had lost it): progress counts afresh.
    pub(super) fn given_again(&mut self, t: Torrent, now: Instant) {
        let since = self.since().unwrap_or(now);
        self.state = State::Engaged { since, session: Some(t), changed: None };
    }

    /// Marks an engaged helper unreachable; the one line that says so.
    pub(super) fn lose(&mut self, why: &str, now: Instant) -> Event {
        let seeding = self.torrent_state() == Some(TorrentState::Seeding)
            || matches!(self.state, State::Lost { seeding: true, .. });
        self.state = State::Lost { since: self.since().unwrap_or(now), until: now + UNHEALTHY_FOR, seeding };
        Event::Fault(format!("{}: lost ({why}); another helper will be used", self.label()))
    }

    /// It refused an engagement, or could not be reached: not tried again for a while.
    pub(super) fn rest(&mut self, now: Instant) {
        self.state = State::Resting { until: now + UNHEALTHY_FOR };
    }

    /// Released: free again.
    pub(super) fn released(&mut self) {
        self.state = State::Idle;
    }

    /// Sets the helper aside for this torrent for good; the one line that says so.
    pub(super) fn cannot_seed(&mut self, why: &str) -> Event {
        self.state = State::CannotSeed { why: why.to_string() };
        Event::Fault(format!("{}: cannot seed this torrent ({why}); another helper will be used", self.label()))
    }
}

/// Whether an agent refused the torrent as one its daemon cannot seed (v2-only, or hybrid on 3.00).
pub fn unsupported(e: &AgentError) -> bool {
    matches!(e, AgentError::Status { code: Some(ErrorCode::UnsupportedTorrent), .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpers::testing::{torrent, FakeAgent};

    fn helper() -> Helper {
        Helper::new("pi1", Kind::Board, Box::new(FakeAgent::default()), PathBuf::new())
    }

    #[test]
    fn engaged_lost_found_and_released() {
        let t0 = Instant::now();
        let mut h = helper();
        assert!(h.free(t0) && !h.engaged());
        h.state = State::Engaged { since: t0, session: None, changed: None };
        assert!(h.engaged() && h.active() && !h.free(t0));
        let e = h.lose("timed out", t0 + Duration::from_secs(5));
        assert!(matches!(e, Event::Fault(m) if m.contains("board pi1: lost (timed out)")));
        assert!(h.engaged() && !h.active() && h.lost());
        assert!(!h.lost_seeding(), "it had said nothing yet");
        // Lost while seeding: the trackers may still count it, so it stays ours (twice lost too).
        let mut s = helper();
        s.state = State::Engaged { since: t0, session: Some(torrent(TorrentState::Seeding, 1.0)), changed: None };
        s.lose("timed out", t0);
        s.lose("still", t0 + Duration::from_secs(1));
        assert!(s.lost_seeding());
        assert!(h.resting(t0 + Duration::from_secs(60)) && !h.resting(t0 + Duration::from_secs(130)));
        assert_eq!(h.since(), Some(t0), "still engaged since then");
        // Found again: engaged as before, counted again.
        assert_eq!(h.update(torrent(TorrentState::Seeding, 1.0), t0 + Duration::from_secs(9)), None);
        assert!(h.active() && h.since() == Some(t0) && h.torrent_state() == Some(TorrentState::Seeding));
        h.released();
        assert!(h.free(t0) && !h.engaged());
    }

    #[test]
    fn resting_and_cannot_seed() {
        let t0 = Instant::now();
        let mut h = helper();
        h.rest(t0);
        assert!(!h.free(t0 + Duration::from_secs(119)) && h.free(t0 + UNHEALTHY_FOR));
        assert!(h.resting(t0) && !h.engaged());
        h.cannot_seed("v2-only");
        assert!(h.cannot() && !h.free(t0 + Duration::from_secs(10_000)) && !h.resting(t0));
        // What an agent says of a torrent is not taken from a helper that is not engaged.
        assert_eq!(h.update(torrent(TorrentState::Error, 0.0), t0), None);
        assert!(h.cannot());
    }

    #[test]
    fn an_error_or_a_stall_is_a_failure() {
        let t0 = Instant::now();
        let mut h = helper();
        h.state = State::Engaged { since: t0, session: None, changed: None };
        let mut failed = torrent(TorrentState::Error, 0.5);
        failed.error = Some("No data found".into());
        assert_eq!(h.update(failed, t0).as_deref(), Some("No data found"));
        // Verifying with progress is not stalled; the same progress for STALLED_AFTER is.
        assert_eq!(h.update(torrent(TorrentState::Verifying, 0.1), t0), None);
        assert_eq!(h.update(torrent(TorrentState::Verifying, 0.2), t0 + Duration::from_secs(200)), None);
        assert_eq!(h.update(torrent(TorrentState::Verifying, 0.2), t0 + Duration::from_secs(499)), None);
        let stalled = h.update(torrent(TorrentState::Verifying, 0.2), t0 + Duration::from_secs(500));
        assert_eq!(stalled.as_deref(), Some("verifying with no progress for 300 s"));
        // Downloading slowly is never a stall.
        h.given_again(torrent(TorrentState::Downloading, 0.2), t0);
        assert_eq!(h.update(torrent(TorrentState::Downloading, 0.2), t0 + Duration::from_secs(9999)), None);
    }
}
