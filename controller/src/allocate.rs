//! The helper budget shared by many torrents (for `odseed watch`, issue 11): which board seeds
//! which torrent, and how many EC2 instances each torrent gets. Pure: the same demand, helpers and
//! current plan give the same plan.
//!
//! Rules, in order:
//! 1. **Hysteresis.** A helper already on a torrent stays while that torrent still wants it (the
//!    per-torrent policy only lowers what it wants after its cooldown), so helpers do not flap
//!    between torrents whose needs are close.
//! 2. **Neediest first, one helper at a time.** Torrents are ranked by leechers x helpers wanted
//!    (ties: more leechers, then the lower info hash); each pass gives every torrent still wanting
//!    one more helper, so a first helper where none is goes before a second one elsewhere.
//! 3. **Boards before instances** (placement `fill`). Boards cost nothing more; an instance is used
//!    only when no board has a free slot, within `max_instances` (0 once the month's budget is
//!    spent), and, its content not being known, only where an empty helper may be engaged. Placement `seed`, the original's rule: a torrent that wants fewer than 3 helpers gets
//!    boards only, one that wants more gets instances only.
//! 4. A board that failed lately (resting) keeps its torrents and is given no new one.
//! 5. A board seeds a torrent at most once, and at most `slots` torrents at once; the neediest
//!    torrent gets a board that holds it whole, else one that holds part of it, else an empty one
//!    ([`Board::holds`]), and among those the one with the most upload per torrent it would then
//!    seed. A board that does not hold a torrent whole is given it only when
//!    [`policy::worth_engaging`] says so.

use crate::policy::{self, EmptyHelpers, Placement};
use odseed_proto::InfoHash;
use std::collections::BTreeMap;

/// What one torrent's policy asks for this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    pub hash: InfoHash,
    pub leechers: u32,
    /// Its swarm's seeders (the origin, and helpers that seed it, among them).
    pub seeders: u32,
    /// Helpers the torrent's policy wants engaged (0: none).
    pub wanted: u32,
}

/// A board and how many torrents it may seed at once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Board {
    pub name: String,
    pub slots: u32,
    /// Its upload in kB/s (0: not known, counted as equal to any other unknown one).
    pub upload_kbps: u32,
    /// Torrents it must not be given (it cannot seed them, or another run seeds them on it).
    pub skip: Vec<InfoHash>,
    /// It failed lately: it keeps the torrents it has, and is given no new one.
    pub resting: bool,
    /// What it holds of each torrent, 0.0 to 1.0 (its agent's `GET /v1/content`); a torrent not
    /// listed, nothing. `None`: not known (the agent did not say), taken as empty but never kept
    /// from a torrent by [`policy::worth_engaging`].
    pub holds: Option<BTreeMap<InfoHash, f64>>,
}

impl Board {
    /// What it holds of `hash` (`None`: not known).
    pub fn held(&self, hash: &InfoHash) -> Option<f64> {
        self.holds.as_ref().map(|h| h.get(hash).copied().unwrap_or(0.0))
    }
}

/// Who seeds what: (board, torrent) pairs, and instances per torrent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub boards: Vec<(String, InfoHash)>,
    pub instances: BTreeMap<InfoHash, u32>,
}

impl Plan {
    /// Helpers on `hash`, boards and instances together.
    pub fn helpers_of(&self, hash: &InfoHash) -> u32 {
        let boards = self.boards.iter().filter(|(_, h)| h == hash).count() as u32;
        boards + self.instances.get(hash).copied().unwrap_or(0)
    }
}

/// What may be given out: the boards, how many instances in all, and the placement rule.
#[derive(Debug, Clone, Default)]
pub struct Supply<'a> {
    pub boards: &'a [Board],
    pub max_instances: u32,
    pub placement: Placement,
    pub empty_helpers: EmptyHelpers,
}

pub fn allocate(demands: &[Demand], supply: &Supply, current: &Plan) -> Plan {
    let (boards, max_instances) = (supply.boards, supply.max_instances);
    let mut ranked: Vec<&Demand> = demands.iter().filter(|d| d.wanted > 0).collect();
    ranked.sort_by(|a, b| {
        let score = |d: &Demand| u64::from(d.leechers) * u64::from(d.wanted);
        score(b).cmp(&score(a)).then(b.leechers.cmp(&a.leechers)).then(a.hash.cmp(&b.hash))
    });
    let wanted: BTreeMap<InfoHash, u32> = ranked.iter().map(|d| (d.hash, d.wanted)).collect();
    let slots: BTreeMap<&str, u32> = boards.iter().map(|b| (b.name.as_str(), b.slots)).collect();
    let mut plan = Plan::default();
    let used = |plan: &Plan, board: &str| plan.boards.iter().filter(|(b, _)| b == board).count() as u32;
    let instances = |plan: &Plan| plan.instances.values().sum::<u32>();

    // 1. What is engaged and still wanted stays.
    for (board, hash) in &current.boards {
        let fits = slots.get(board.as_str()).is_some_and(|s| used(&plan, board) < *s);
        if fits && plan.helpers_of(hash) < wanted.get(hash).copied().unwrap_or(0) {
            plan.boards.push((board.clone(), *hash));
        }
    }
    for (hash, n) in &current.instances {
        let room = wanted.get(hash).copied().unwrap_or(0).saturating_sub(plan.helpers_of(hash));
        let keep = (*n).min(room).min(max_instances.saturating_sub(instances(&plan)));
        if keep > 0 {
            plan.instances.insert(*hash, keep);
        }
    }

    // 2-5. One more helper per torrent per pass, neediest first; boards, then instances.
    loop {
        let mut gave = false;
        for d in &ranked {
            if plan.helpers_of(&d.hash) >= d.wanted {
                continue;
            }
            let free = |b: &&Board| {
                !b.resting
                    && used(&plan, &b.name) < b.slots
                    && !b.skip.contains(&d.hash)
                    && !plan.boards.iter().any(|(n, h)| *n == b.name && *h == d.hash)
                    && policy::worth_engaging(b.held(&d.hash), d.seeders, supply.empty_helpers)
            };
            // Whole, then part, then nothing (or not known).
            let rank = |b: &Board| match b.held(&d.hash).unwrap_or(0.0) {
                h if h >= 1.0 => 0,
                h if h > 0.0 => 1,
                _ => 2,
            };
            // The most upload per torrent it would seed, a/(m+1) > b/(n+1); the first on a tie.
            let share = |b: &Board| (u64::from(b.upload_kbps.max(1)), u64::from(used(&plan, &b.name)) + 1);
            let board = boards.iter().filter(free).fold(None::<&Board>, |best, b| match best {
                Some(x) if rank(x) < rank(b) => Some(x),
                Some(x) if rank(x) == rank(b) && share(x).0 * share(b).1 >= share(b).0 * share(x).1 => Some(x),
                _ => Some(b),
            });
            let (use_boards, use_instances) = match supply.placement {
                Placement::Fill => (true, true),
                Placement::Seed => (d.wanted < 3, d.wanted >= 3),
            };
            if let Some(b) = board.filter(|_| use_boards) {
                plan.boards.push((b.name.clone(), d.hash));
                gave = true;
            } else if use_instances
                && instances(&plan) < max_instances
                // An instance's content is not known: taken as empty (a fresh one is).
                && policy::worth_engaging(Some(0.0), d.seeders, supply.empty_helpers)
            {
                *plan.instances.entry(d.hash).or_insert(0) += 1;
                gave = true;
            }
        }
        if !gave {
            return plan;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> InfoHash {
        InfoHash::from_bytes([n; 20])
    }

    fn d(n: u8, leechers: u32, wanted: u32) -> Demand {
        Demand { hash: h(n), leechers, seeders: 1, wanted }
    }

    fn boards(slots: &[u32]) -> Vec<Board> {
        slots.iter().enumerate().map(|(i, s)| Board { name: format!("b{i}"), slots: *s, ..Board::default() }).collect()
    }

    fn supply(boards: &[Board], max_instances: u32) -> Supply<'_> {
        Supply { boards, max_instances, placement: Placement::Fill, empty_helpers: EmptyHelpers::Always }
    }

    fn pairs(p: &Plan) -> Vec<(&str, u8)> {
        let mut v: Vec<(&str, u8)> = p.boards.iter().map(|(b, hash)| (b.as_str(), hash.as_bytes()[0])).collect();
        v.sort();
        v
    }

    #[test]
    fn upload_and_skips_choose_the_board() {
        let b = |name: &str, slots, upload_kbps, skip: &[u8]| Board {
            name: name.into(),
            slots,
            upload_kbps,
            skip: skip.iter().map(|n| h(*n)).collect(),
            resting: false,
            holds: None,
        };
        // fast has 2 slots at 900 kB/s: 900 > 400 for the neediest, then 450 > 400 for the next.
        let boards = [b("slow", 1, 400, &[]), b("fast", 2, 900, &[])];
        let p = allocate(&[d(1, 50, 1), d(2, 40, 1), d(3, 30, 1)], &supply(&boards, 0), &Plan::default());
        assert_eq!(pairs(&p), [("fast", 1), ("fast", 2), ("slow", 3)]);
        // Unknown rates: spread, one torrent per board before a second on any.
        let boards = [b("a", 2, 0, &[]), b("b", 2, 0, &[])];
        let p = allocate(&[d(1, 50, 1), d(2, 40, 1)], &supply(&boards, 0), &Plan::default());
        assert_eq!(pairs(&p), [("a", 1), ("b", 2)]);
        // A board that cannot seed a torrent is not given it; an instance is.
        let boards = [b("old", 1, 0, &[1])];
        let p = allocate(&[d(1, 50, 1)], &supply(&boards, 1), &Plan::default());
        assert_eq!((pairs(&p), p.instances.get(&h(1)).copied()), (vec![], Some(1)));
        // A resting board (it failed lately) keeps what it seeds and takes nothing new.
        let boards = [Board { resting: true, ..b("r", 2, 0, &[]) }];
        let current = Plan { boards: vec![("r".into(), h(1))], instances: BTreeMap::new() };
        let p = allocate(&[d(1, 50, 1), d(2, 60, 1)], &supply(&boards, 0), &current);
        assert_eq!(pairs(&p), [("r", 1)]);
    }

    #[test]
    fn the_table() {
        struct Case {
            what: &'static str,
            demands: Vec<Demand>,
            slots: Vec<u32>,
            max_instances: u32,
            current: Plan,
            boards: Vec<(&'static str, u8)>,
            instances: Vec<(u8, u32)>,
        }
        let none = Plan::default();
        let on = |pairs: &[(&str, u8)]| Plan {
            boards: pairs.iter().map(|(b, n)| (b.to_string(), h(*n))).collect(),
            instances: BTreeMap::new(),
        };
        let cases = vec![
            Case {
                what: "two boards go to the two neediest of three",
                demands: vec![d(1, 10, 1), d(2, 50, 1), d(3, 30, 1)],
                slots: vec![1, 1],
                max_instances: 0,
                current: none.clone(),
                boards: vec![("b0", 2), ("b1", 3)],
                instances: vec![],
            },
            Case {
                what: "a first helper everywhere before a second anywhere",
                demands: vec![d(1, 100, 3), d(2, 10, 1)],
                slots: vec![1, 1],
                max_instances: 0,
                current: none.clone(),
                boards: vec![("b0", 1), ("b1", 2)],
                instances: vec![],
            },
            Case {
                what: "ties: more leechers first, then the lower hash",
                demands: vec![d(2, 20, 1), d(1, 20, 1), d(3, 10, 2)],
                slots: vec![1],
                max_instances: 0,
                current: none.clone(),
                boards: vec![("b0", 1)],
                instances: vec![],
            },
            Case {
                what: "boards first, then instances up to max_instances",
                demands: vec![d(1, 40, 3), d(2, 30, 2)],
                slots: vec![1],
                max_instances: 2,
                current: none.clone(),
                boards: vec![("b0", 1)],
                instances: vec![(1, 1), (2, 1)],
            },
            Case {
                what: "budget spent: no instance",
                demands: vec![d(1, 40, 3)],
                slots: vec![1],
                max_instances: 0,
                current: none.clone(),
                boards: vec![("b0", 1)],
                instances: vec![],
            },
            Case {
                what: "no helper at all",
                demands: vec![d(1, 40, 3), d(2, 5, 1)],
                slots: vec![],
                max_instances: 0,
                current: none.clone(),
                boards: vec![],
                instances: vec![],
            },
            Case {
                what: "nobody wants help",
                demands: vec![d(1, 40, 0)],
                slots: vec![2, 2],
                max_instances: 4,
                current: on(&[("b0", 1)]),
                boards: vec![],
                instances: vec![],
            },
            Case {
                what: "a board with two slots seeds two torrents, never one twice",
                demands: vec![d(1, 40, 2), d(2, 30, 1)],
                slots: vec![2],
                max_instances: 0,
                current: none.clone(),
                boards: vec![("b0", 1), ("b0", 2)],
                instances: vec![],
            },
            Case {
                what: "hysteresis: a helper stays on a torrent that still wants it, though another is needier now",
                demands: vec![d(1, 10, 1), d(2, 60, 1)],
                slots: vec![1],
                max_instances: 0,
                current: on(&[("b0", 1)]),
                boards: vec![("b0", 1)],
                instances: vec![],
            },
            Case {
                what: "a helper moves once its torrent no longer wants it (after its cooldown)",
                demands: vec![d(1, 10, 0), d(2, 60, 1)],
                slots: vec![1],
                max_instances: 0,
                current: on(&[("b0", 1)]),
                boards: vec![("b0", 2)],
                instances: vec![],
            },
            Case {
                what: "a board that is gone is not kept",
                demands: vec![d(1, 10, 1)],
                slots: vec![1],
                max_instances: 0,
                current: on(&[("gone", 1)]),
                boards: vec![("b0", 1)],
                instances: vec![],
            },
        ];
        for c in cases {
            let b = boards(&c.slots);
            let p = allocate(&c.demands, &supply(&b, c.max_instances), &c.current);
            assert_eq!(pairs(&p), c.boards, "{}", c.what);
            let inst: Vec<(u8, u32)> = p.instances.iter().map(|(hash, n)| (hash.as_bytes()[0], *n)).collect();
            assert_eq!(inst, c.instances, "{}", c.what);
            assert_eq!(allocate(&c.demands, &supply(&b, c.max_instances), &c.current), p, "{}: pure", c.what);
        }
    }

    #[test]
    fn placements() {
        // (placement, wanted, boards free, instances allowed) -> (boards, instances) given
        #[rustfmt::skip]
        let cases = [
            (Placement::Fill, 3, 2, 10, (2, 1)),
            (Placement::Fill, 3, 5, 10, (3, 0)),
            (Placement::Fill, 5, 1, 2, (1, 2)),
            (Placement::Seed, 2, 5, 10, (2, 0)),
            (Placement::Seed, 2, 1, 10, (1, 0)),
            (Placement::Seed, 3, 5, 10, (0, 3)),
            (Placement::Seed, 4, 0, 2, (0, 2)),
        ];
        for (placement, wanted, free, max_instances, want) in cases {
            let b = boards(&vec![1; free]);
            let s = Supply { boards: &b, max_instances, placement, empty_helpers: EmptyHelpers::Always };
            let p = allocate(&[d(1, 9, wanted)], &s, &Plan::default());
            let got = (p.boards.len() as u32, p.instances.get(&h(1)).copied().unwrap_or(0));
            assert_eq!(got, want, "{placement:?} wanted={wanted} boards={free}");
        }
    }

    #[test]
    fn boards_that_hold_a_torrent_go_first_and_empty_ones_only_where_they_can_help() {
        let b = |name: &str, upload_kbps, holds: Option<&[(u8, f64)]>| Board {
            name: name.into(),
            slots: 1,
            upload_kbps,
            holds: holds.map(|l| l.iter().map(|(n, f)| (h(*n), *f)).collect()),
            ..Board::default()
        };
        fn supply(boards: &[Board], empty_helpers: EmptyHelpers) -> Supply<'_> {
            Supply { boards, max_instances: 0, placement: Placement::Fill, empty_helpers }
        }
        let with = EmptyHelpers::WithOtherSeeders;
        // (boards, torrent 1's seeders, rule) -> boards given torrent 1 (wanted: 2)
        let full = b("full", 100, Some(&[(1, 1.0)]));
        let half = b("half", 900, Some(&[(1, 0.5)]));
        let empty = b("empty", 900, Some(&[(2, 1.0)]));
        let unknown = b("unknown", 900, None);
        #[rustfmt::skip]
        let cases = vec![
            ("whole before part, though slower", vec![half.clone(), full.clone()], 5, with, vec!["full", "half"]),
            ("part before nothing", vec![empty.clone(), half.clone(), full.clone()], 5, with, vec!["full", "half"]),
            ("the origin alone: only the whole one", vec![empty.clone(), half.clone(), full.clone()], 1, with, vec!["full"]),
            ("the origin alone, `always`: the empty ones too", vec![empty.clone(), half.clone()], 1, EmptyHelpers::Always, vec!["empty", "half"]),
            ("not known: never kept out", vec![unknown.clone(), empty.clone()], 1, with, vec!["unknown"]),
            ("no seeder at all: only the whole one", vec![empty.clone(), full.clone()], 0, with, vec!["full"]),
        ];
        for (what, boards, seeders, rule, want) in cases {
            let demand = Demand { hash: h(1), leechers: 9, seeders, wanted: 2 };
            let p = allocate(&[demand], &supply(&boards, rule), &Plan::default());
            let mut got: Vec<String> = p.boards.iter().map(|(b, _)| b.clone()).collect();
            got.sort();
            let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{what}");
        }
        // Instances are taken as empty: none while the origin alone seeds, unless `always`.
        let s = Supply { boards: &[], max_instances: 3, placement: Placement::Fill, empty_helpers: with };
        let p = allocate(&[Demand { hash: h(1), leechers: 9, seeders: 1, wanted: 2 }], &s, &Plan::default());
        assert_eq!(p.instances.get(&h(1)), None);
        let p = allocate(&[Demand { hash: h(1), leechers: 9, seeders: 2, wanted: 2 }], &s, &Plan::default());
        assert_eq!(p.instances.get(&h(1)), Some(&2));
        // Engaged helpers stay, whatever they hold (the rule is for new engagements).
        let current = Plan { boards: vec![("empty".into(), h(1))], instances: BTreeMap::new() };
        let demand = Demand { hash: h(1), leechers: 9, seeders: 1, wanted: 1 };
        let p = allocate(&[demand], &supply(&[empty], with), &current);
        assert_eq!(pairs(&p), [("empty", 1)]);
    }
}
