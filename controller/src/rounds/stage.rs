//! `[watch] stage = K`: `watch` puts a torrent's content on K boards before a crowd needs them, as
//! `odseed stage` does by hand. While a torrent's swarm wants no helper, boards that do not hold it
//! whole are engaged to download it (those holding part of it first), capped in download so that
//! the origin keeps serving its leechers, and each is released as soon as it holds it whole. One
//! torrent at a time, so that the boards staging it trade pieces among themselves and the origin
//! sends about one copy. Boards only: an instance started to stage would cost money while nobody
//! needs it. Staging is no help a torrent wants: it stops (the board released, its cap lifted)
//! when the torrent's swarm needs helpers, when the torrent leaves the catalogue, when the board is
//! wanted for a crowd elsewhere, and at the end.

use super::{Decided, Loop};
use crate::allocate::{Board, Plan};
use crate::policy::{Action, ExitReason, Helpers};
use odseed_proto::wire::Limits;
use odseed_proto::wire::TorrentState;
use odseed_proto::InfoHash;
use std::time::Instant;

/// How `watch` stages (`[watch] stage`, `stage_down_kbps`); `boards` 0: it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StageOptions {
    pub boards: u32,
    pub down_kbps: u32,
}

/// A board staging a torrent.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Staging {
    board: String,
    hash: InfoHash,
    name: String,
    since: Instant,
}

impl Loop<'_> {
    /// Boards staging `hash` now (not helpers its policy wants).
    pub(super) fn staging_of(&self, hash: &InfoHash) -> u32 {
        self.staging.iter().filter(|s| s.hash == *hash).count() as u32
    }

    /// A torrent's helpers without the boards staging it (their counts taken off the swarm's
    /// leechers instead, whatever they say: one that has just become whole may not have told the
    /// trackers yet).
    pub(super) fn without_staging(&self, hash: &InfoHash, view: Helpers) -> Helpers {
        let Some(h) = self.guard.helped.get(hash) else { return view };
        let staging: Vec<_> =
            (h.pool.helpers.iter()).filter(|x| x.active() && self.is_staging(&x.name, hash)).collect();
        let n = |state| staging.iter().filter(|x| x.torrent_state() == Some(state)).count() as u32;
        Helpers {
            seeding: view.seeding.saturating_sub(n(TorrentState::Seeding)),
            downloading: view.downloading.saturating_sub(n(TorrentState::Downloading)),
            engaged: view.engaged.saturating_sub(staging.len() as u32),
            capacity: view.capacity,
        }
    }

    /// Whether `board` is staging `hash`.
    pub(super) fn is_staging(&self, board: &str, hash: &InfoHash) -> bool {
        self.staging.iter().any(|s| s.board == board && s.hash == *hash)
    }

    /// Ends the stagings that are done or must stop, starts the next one if none is left, and adds
    /// them all to `plan`.
    pub(super) fn stage(&mut self, decided: &[Decided], plan: &mut Plan, boards: &[Board]) {
        if self.o.stage.boards == 0 {
            return;
        }
        for s in std::mem::take(&mut self.staging) {
            let helper = (self.guard.helped.get(&s.hash))
                .and_then(|h| h.pool.helpers.iter().find(|x| x.name == s.board && x.active()));
            let active = helper.is_some();
            // Seeding says it sooner than its agent's inventory does.
            let whole = helper.is_some_and(|x| x.torrent_state() == Some(TorrentState::Seeding))
                || (self.holdings.get(&s.board).cloned().flatten())
                    .and_then(|m| m.get(&s.hash).copied())
                    .is_some_and(|f| f >= 1.0);
            let d = decided.iter().find(|d| d.item.hash == s.hash);
            let why = if whole {
                self.printer.staged(&s.board, (&s.hash, &s.name), s.since.elapsed());
                None
            } else if d.is_none() {
                Some("it left the catalogue")
            } else if d.is_some_and(|d| d.seen.is_err() || d.wanted > 0) {
                Some("its swarm needs helpers, or cannot be seen")
            } else if !active {
                Some("the board could not be engaged, or was lost")
            } else if !has_room(plan, boards, &s.board) {
                Some("the board is wanted for a crowd")
            } else {
                plan.boards.push((s.board.clone(), s.hash));
                self.staging.push(s);
                continue;
            };
            if let Some(why) = why {
                self.printer.staging(&s.board, (&s.hash, &s.name), Some(why));
            }
            self.cap(&s.board, 0);
        }
        if self.staging.is_empty() {
            self.start_staging(decided, plan, boards);
        }
    }

    /// Stages the first torrent of the catalogue that wants no helper and is held whole by fewer
    /// than K boards, on the boards (with room) that do not hold it whole.
    fn start_staging(&mut self, decided: &[Decided], plan: &mut Plan, boards: &[Board]) {
        // Not one too small to be helped ever.
        let quiet = |d: &&Decided| {
            d.wanted == 0
                && d.ours == 0
                && d.seen.as_ref().is_ok_and(|(_, x)| x.action != Action::Exit(ExitReason::TooSmall))
        };
        for d in decided.iter().filter(quiet) {
            let hash = d.item.hash;
            let whole = self.held(&hash);
            let want = self.o.stage.boards.saturating_sub(whole) as usize;
            if want == 0 || plan.helpers_of(&hash) > 0 || self.broken.contains_key(&hash) {
                continue;
            }
            let mut candidates: Vec<(&Board, f64)> = (boards.iter())
                .filter(|b| !b.resting && !b.skip.contains(&hash) && has_room(plan, boards, &b.name))
                // Only a board that says what it holds: one that cannot might hold it already.
                .filter_map(|b| Some((b, b.held(&hash)?)))
                .filter(|(_, held)| *held < 1.0)
                .collect();
            candidates.sort_by(|x, y| y.1.total_cmp(&x.1));
            if candidates.is_empty() {
                continue;
            }
            let chosen: Vec<String> = candidates.iter().take(want).map(|(b, _)| b.name.clone()).collect();
            log::info!(
                "{}: its swarm needs no helper and {whole} board(s) hold it whole, of {} wanted: staging it",
                d.item.name,
                self.o.stage.boards
            );
            for board in chosen {
                self.printer.staging(&board, (&hash, &d.item.name), None);
                self.cap(&board, self.o.stage.down_kbps);
                plan.boards.push((board.clone(), hash));
                self.staging.push(Staging { board, hash, name: d.item.name.clone(), since: Instant::now() });
            }
            return;
        }
    }

    /// Adds the stagings going on to `plan` again (a plan made anew within a round).
    pub(super) fn keep_staging(&self, plan: &mut Plan, boards: &[Board]) {
        for s in &self.staging {
            if has_room(plan, boards, &s.board) {
                plan.boards.push((s.board.clone(), s.hash));
            }
        }
    }

    /// Ends every staging: caps lifted (the boards are released with every helper).
    pub(super) fn end_staging(&mut self) {
        for s in std::mem::take(&mut self.staging) {
            self.cap(&s.board, 0);
        }
    }

    /// Sets `board`'s download cap (`stage_down_kbps`; 0 lifts it), when staging caps at all.
    fn cap(&self, board: &str, down_kbps: u32) {
        if self.o.stage.down_kbps == 0 {
            return;
        }
        let Some(i) = self.cfg.boards.iter().position(|b| b.name == board) else { return };
        let agent = &self.board_agents[i];
        let set = agent.limits().and_then(|l| agent.set_limits(&Limits { download_kbps: down_kbps, ..l }));
        if let Err(e) = set {
            log::warn!("{board}: cannot set its download cap to {down_kbps} kB/s: {e}");
        }
    }
}

/// Whether `board` has a slot the plan leaves free.
fn has_room(plan: &Plan, boards: &[Board], board: &str) -> bool {
    let used = plan.boards.iter().filter(|(b, _)| b == board).count() as u32;
    boards.iter().find(|b| b.name == board).is_some_and(|b| used < b.slots)
}
