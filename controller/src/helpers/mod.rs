//! Helpers: agent endpoints odseed engages for a torrent and releases. Boards are always on (EC2
//! instances come later). The pool keeps, for each helper, whether it is engaged, what its agent last
//! said about the torrent, and whether it is healthy; one failing helper never stops a run: it is
//! marked unhealthy for a while and another one is used.

pub mod board;

use crate::ledger::{now_secs, Entry, Ledger, Owner};
use crate::policy;
use crate::target::Target;
use board::Board;
use odseed_agent::wire::TorrentState;
use std::time::{Duration, Instant};

/// A failed helper is not tried again for this long.
const UNHEALTHY_FOR: Duration = Duration::from_secs(120);

/// Something that happened to a helper, for the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Engaged(String),
    Released(String),
    /// One line about a failure that the run survives.
    Fault(String),
}

pub struct Pool {
    pub boards: Vec<Board>,
    target: Target,
    ledger: Ledger,
    owner: Owner,
}

impl Pool {
    pub fn new(boards: Vec<Board>, target: Target, ledger: Ledger) -> Pool {
        Pool { boards, target, ledger, owner: Owner::me() }
    }

    /// What the policy needs: how many of ours seed or download, are engaged, could be.
    pub fn view(&self) -> policy::Helpers {
        let now = Instant::now();
        let active: Vec<&Board> = self.boards.iter().filter(|b| b.engaged && !b.lost).collect();
        let state = |b: &&&Board| b.session.as_ref().map(|t| t.state);
        let seeding = active.iter().filter(|b| state(b) == Some(TorrentState::Seeding)).count();
        // Only a helper that downloads has announced itself as a leecher (a queued one has not yet).
        let downloading = active.iter().filter(|b| state(b) == Some(TorrentState::Downloading)).count();
        let free = self.boards.iter().filter(|b| !b.engaged && b.healthy(now)).count();
        policy::Helpers {
            seeding: seeding as u32,
            downloading: downloading as u32,
            engaged: active.len() as u32,
            capacity: (active.len() + free) as u32,
        }
    }

    /// Healthy boards not engaged.
    pub fn free_boards(&self) -> u32 {
        let now = Instant::now();
        self.boards.iter().filter(|b| !b.engaged && b.healthy(now)).count() as u32
    }

    /// Asks every engaged helper how its session is going.
    pub fn refresh(&mut self) -> Vec<Event> {
        let hash = self.target.meta.info_hash;
        let mut events = Vec::new();
        for b in self.boards.iter_mut().filter(|b| b.engaged) {
            match b.client.get(&hash) {
                Ok(Some(t)) => {
                    if b.lost {
                        log::info!("board {}: reachable again", b.name);
                    }
                    b.lost = false;
                    b.session = Some(t);
                }
                Ok(None) => {
                    // The agent lost its state (reinstalled?): give it the torrent again.
                    match b.client.put(&hash, &self.target.bytes) {
                        Ok((t, _)) => b.session = Some(t),
                        Err(e) => events.push(b.mark_lost(&e.to_string())),
                    }
                }
                Err(e) if !b.lost => events.push(b.mark_lost(&e.to_string())),
                Err(_) => {}
            }
        }
        events
    }

    /// Engages up to `n` boards; each failure is a fault and the next board is tried.
    pub fn engage_boards(&mut self, n: u32) -> Vec<Event> {
        let mut events = Vec::new();
        let mut done = 0;
        while done < n {
            let now = Instant::now();
            let Some(b) = self.boards.iter_mut().find(|b| !b.engaged && b.healthy(now)) else { break };
            let entry = Entry {
                kind: "board".into(),
                name: b.name.clone(),
                url: b.client.base().to_string(),
                token_file: b.token_file.clone(),
                info_hash: self.target.meta.info_hash,
                owner: self.owner,
                engaged_at: now_secs(),
            };
            if let Err(e) = self.ledger.record(entry) {
                // Without a record no helper may be engaged: it could outlive a crash unnoticed.
                events.push(Event::Fault(e));
                break;
            }
            match b.engage(&self.target) {
                Ok(()) => {
                    done += 1;
                    events.push(Event::Engaged(b.name.clone()));
                }
                Err(e) => {
                    b.unhealthy_until = Some(now + UNHEALTHY_FOR);
                    let _ = self.ledger.remove(&b.name, &self.target.meta.info_hash);
                    events.push(Event::Fault(format!("board {}: cannot engage: {e}; trying another", b.name)));
                }
            }
        }
        events
    }

    /// Releases `n` engaged helpers (lost ones first, then the most recently engaged).
    pub fn release(&mut self, n: usize) -> Vec<Event> {
        let mut order: Vec<usize> = (0..self.boards.len()).filter(|&i| self.boards[i].engaged).collect();
        order.sort_by_key(|&i| (!self.boards[i].lost, std::cmp::Reverse(self.boards[i].engaged_at)));
        order.truncate(n);
        order.into_iter().map(|i| self.release_one(i)).collect()
    }

    /// Releases every engaged helper.
    pub fn release_all(&mut self) -> Vec<Event> {
        self.release(self.boards.len())
    }

    fn release_one(&mut self, i: usize) -> Event {
        let hash = self.target.meta.info_hash;
        let b = &mut self.boards[i];
        match b.client.delete(&hash) {
            Ok(_) => {
                b.engaged = false;
                b.session = None;
                if let Err(e) = self.ledger.remove(&b.name, &hash) {
                    return Event::Fault(e);
                }
                Event::Released(b.name.clone())
            }
            Err(e) => {
                // The ledger keeps it: `odseed release` or the next run will try again.
                b.engaged = false;
                Event::Fault(format!("board {}: cannot release ({e}); kept in the ledger for `odseed release`", b.name))
            }
        }
    }
}
