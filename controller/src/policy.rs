//! The decision, pure: from an observation of the swarm and the state of our helpers, how many helpers
//! the swarm needs now, and whether the run is over. No I/O; tested by tables.
//!
//! The original's semantics, fixed: natural seeders are the seen seeders minus our helpers that seed
//! (a helper still downloading is taken off the leechers); leechers > 0 and natural/leechers < ratio
//! means helpers are needed: ceil(leechers * ratio) - natural, capped by capacity. Scale up at once,
//! down only after `cooldown`.

use std::fmt;
use std::time::Duration;

/// Where new helpers come from ([`crate::allocate`] applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// Healthy boards first (they are free), EC2 for the rest.
    #[default]
    Fill,
    /// The original rule: fewer than 3 needed -> boards, else EC2; never both.
    Seed,
}

/// When a helper that does not hold a torrent whole is engaged for it (`[policy] empty_helpers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyHelpers {
    /// Only while the swarm has a seeder besides the origin (see [`worth_engaging`]).
    #[default]
    WithOtherSeeders,
    /// Whenever one is wanted (the behaviour before helpers knew what they hold).
    Always,
}

/// Whether a helper holding `held` of a torrent (0.0 to 1.0; `None`: not known) is worth engaging
/// for it while its swarm has `seeders` seeders (the origin among them). A helper that holds it
/// whole always is. One that must first download it is not while the origin is the only seeder:
/// every piece it gets then is origin upload taken from the leechers, so it cannot make the swarm
/// finish sooner than the origin alone lets it (F / u_origin; measured in the lab: 4 empty helpers
/// engaged for a whole run, 87.6 MB uploaded, mean completion 396 s against 383 s without them).
/// With another seeder (a helper that holds it, a natural seeder) it can download from that one.
/// Not known (an agent older than `GET /v1/content`): engaged as before.
pub fn worth_engaging(held: Option<f64>, seeders: u32, rule: EmptyHelpers) -> bool {
    match held {
        None => true,
        Some(h) if h >= 1.0 => true,
        Some(_) => rule == EmptyHelpers::Always || seeders >= 2,
    }
}

/// Why a run ends normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// The publisher's own client has no connected peer.
    NoPeers,
    /// Natural seeders alone meet the ratio (helpers are no longer needed).
    RatioMet,
    /// The ratio was met at the start: nothing to do.
    AlreadySufficient,
    /// The torrent is smaller than `min_size`: not worth helping.
    TooSmall,
    /// `max_time` has passed.
    MaxTime,
    /// `--once`: one round done.
    Once,
    /// `odseed stage`: every helper staged holds the torrent whole.
    Staged,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::NoPeers => "no_peers",
            ExitReason::RatioMet => "ratio_met",
            ExitReason::AlreadySufficient => "already_sufficient",
            ExitReason::TooSmall => "too_small",
            ExitReason::MaxTime => "max_time",
            ExitReason::Once => "once",
            ExitReason::Staged => "staged",
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The run's fixed settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Target seeders per leecher, in [0, 1].
    pub ratio: f64,
    pub min_size: u64,
    pub max_time: Duration,
    pub cooldown: Duration,
}

/// What the swarm looks like this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Seeders seen (our helpers included, if the tracker counts them).
    pub seeders: u32,
    /// Leechers seen (our downloading helpers included).
    pub leechers: u32,
    /// Peers connected to the publisher's own client, when it is observed.
    pub peers_connected: Option<u32>,
    /// The torrent's size, when known.
    pub size: Option<u64>,
}

/// Our helpers, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Helpers {
    /// Engaged helpers that seed (counted by the tracker as seeders).
    pub seeding: u32,
    /// Engaged helpers still downloading (counted as leechers).
    pub downloading: u32,
    /// All engaged helpers.
    pub engaged: u32,
    /// How many helpers there could be in all (engaged + healthy idle ones).
    pub capacity: u32,
}

/// Where in the run we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    pub first_round: bool,
    pub elapsed: Duration,
    /// Since helpers were last engaged or released.
    pub since_change: Duration,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Exit(ExitReason),
    Hold,
    Engage(u32),
    Release(u32),
}

/// The policy's view of a round: the numbers it used and its decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub natural: u32,
    pub leechers: u32,
    /// natural / leechers (None when there are no leechers).
    pub ratio: Option<f64>,
    /// Helpers wanted now (after the cap).
    pub needed: u32,
    pub action: Action,
}

/// Decides one round.
pub fn decide(p: &Params, c: &Counts, h: &Helpers, clock: &Clock) -> Decision {
    let natural = c.seeders.saturating_sub(h.seeding);
    let leechers = c.leechers.saturating_sub(h.downloading);
    let ratio = (leechers > 0).then(|| f64::from(natural) / f64::from(leechers));
    let met = ratio.is_none_or(|r| r >= p.ratio);
    let want = (f64::from(leechers) * p.ratio).ceil() as u32;
    let needed = if met { 0 } else { want.saturating_sub(natural).min(h.capacity) };
    let decision = |action| Decision { natural, leechers, ratio, needed, action };

    // The size never changes: a torrent too small is so from the first round on.
    if c.size.is_some_and(|s| s < p.min_size) {
        return decision(Action::Exit(ExitReason::TooSmall));
    }
    if c.peers_connected == Some(0) {
        return decision(Action::Exit(ExitReason::NoPeers));
    }
    if met {
        let reason = if clock.first_round { ExitReason::AlreadySufficient } else { ExitReason::RatioMet };
        return decision(Action::Exit(reason));
    }
    if clock.elapsed >= p.max_time {
        return decision(Action::Exit(ExitReason::MaxTime));
    }
    let action = if needed > h.engaged {
        Action::Engage(needed - h.engaged)
    } else if needed < h.engaged && clock.since_change >= p.cooldown {
        Action::Release(h.engaged - needed)
    } else {
        Action::Hold
    };
    decision(action)
}

/// For `odseed watch`, where a torrent never ends: how many helpers the torrent wants engaged,
/// from its decision (made with a capacity that does not cap it, and no `max_time`). A torrent that
/// no longer needs help (an `Exit`) keeps its helpers until the cooldown since its last change has
/// passed, like one that needs fewer.
pub fn wanted(d: &Decision, engaged: u32, since_change: Duration, cooldown: Duration) -> u32 {
    match d.action {
        Action::Engage(n) => engaged + n,
        Action::Hold => engaged,
        Action::Release(n) => engaged.saturating_sub(n),
        Action::Exit(_) if since_change >= cooldown => 0,
        Action::Exit(_) => engaged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn params(ratio: f64) -> Params {
        Params { ratio, min_size: 50 << 20, max_time: 10 * MIN, cooldown: 2 * MIN }
    }

    fn counts(seeders: u32, leechers: u32) -> Counts {
        Counts { seeders, leechers, peers_connected: None, size: Some(100 << 20) }
    }

    fn helpers(seeding: u32, engaged: u32, capacity: u32) -> Helpers {
        Helpers { seeding, downloading: 0, engaged, capacity }
    }

    fn first() -> Clock {
        Clock { first_round: true, elapsed: Duration::ZERO, since_change: Duration::ZERO }
    }

    fn later(elapsed_min: u32, since_change_min: u32) -> Clock {
        Clock { first_round: false, elapsed: elapsed_min * MIN, since_change: since_change_min * MIN }
    }

    #[test]
    fn the_table() {
        use Action::*;
        use ExitReason::*;
        #[rustfmt::skip]
        let cases: &[(&str, f64, Counts, Helpers, Clock, u32, Action)] = &[
            // README: `filename.txt 1` — one seeder per leecher.
            ("ratio 1, 1 seeder, 4 leechers", 1.0, counts(1, 4), helpers(0, 0, 10), first(), 3, Engage(3)),
            // README: `.5 3 8` — 3 seeders, 8 leechers, 1 per 2: ceil(4) - 3 = 1.
            ("ratio .5, 3 seeders, 8 leechers", 0.5, counts(3, 8), helpers(0, 0, 10), first(), 1, Engage(1)),
            ("already sufficient", 0.5, counts(4, 8), helpers(0, 0, 10), first(), 0, Exit(AlreadySufficient)),
            ("zero leechers at start", 0.5, counts(1, 0), helpers(0, 0, 10), first(), 0, Exit(AlreadySufficient)),
            ("zero leechers later", 0.5, counts(3, 0), helpers(2, 2, 10), later(3, 3), 0, Exit(RatioMet)),
            ("ratio 0 never needs help", 0.0, counts(0, 9), helpers(0, 0, 10), first(), 0, Exit(AlreadySufficient)),
            ("too small", 0.5, Counts { size: Some(1 << 20), ..counts(0, 8) }, helpers(0, 0, 10), first(), 4, Exit(TooSmall)),
            ("too small in any round", 0.5, Counts { size: Some(1 << 20), ..counts(0, 8) }, helpers(0, 0, 10), later(3, 3), 4, Exit(TooSmall)),
            ("size unknown is not too small", 0.5, Counts { size: None, ..counts(0, 8) }, helpers(0, 0, 10), first(), 4, Engage(4)),
            ("no peers on the publisher", 0.5, Counts { peers_connected: Some(0), ..counts(0, 8) }, helpers(0, 0, 10), first(), 4, Exit(NoPeers)),
            // The tracker counts our 3 seeding helpers: natural = 5 - 3 = 2 < 4 -> still need 2 (have 3).
            ("helpers counted by the tracker", 0.5, counts(5, 8), helpers(3, 3, 10), later(2, 1), 2, Hold),
            ("release after cooldown", 0.5, counts(5, 8), helpers(3, 3, 10), later(4, 3), 2, Release(1)),
            ("natural seeders alone meet it", 0.5, counts(7, 8), helpers(3, 3, 10), later(4, 1), 0, Exit(RatioMet)),
            ("a downloading helper is not a leecher", 0.5, Counts { leechers: 9, ..counts(2, 9) }, Helpers { seeding: 0, downloading: 1, engaged: 1, capacity: 10 }, later(1, 1), 2, Engage(1)),
            ("capped by capacity", 1.0, counts(0, 20), helpers(0, 0, 3), first(), 3, Engage(3)),
            ("no capacity", 1.0, counts(0, 20), helpers(0, 0, 0), first(), 0, Hold),
            ("max time", 0.5, counts(0, 8), helpers(2, 2, 10), later(10, 1), 4, Exit(MaxTime)),
            ("scale up at once", 0.5, counts(4, 12), helpers(2, 2, 10), later(1, 0), 4, Engage(2)),
            ("more helpers seen than seeders", 0.5, counts(1, 8), helpers(3, 3, 10), later(1, 0), 4, Engage(1)),
        ];
        for (name, ratio, c, h, clock, needed, action) in cases {
            let d = decide(&params(*ratio), c, h, clock);
            assert_eq!((d.needed, d.action), (*needed, *action), "{name}: {d:?}");
        }
    }

    #[test]
    fn ratio_is_natural_over_leechers() {
        let d = decide(&params(0.5), &counts(5, 8), &helpers(3, 3, 10), &later(1, 1));
        assert_eq!((d.natural, d.leechers, d.ratio), (2, 8, Some(0.25)));
    }

    #[test]
    fn what_a_watched_torrent_wants() {
        let p = Params { max_time: Duration::MAX, ..params(0.5) };
        let want = |c: Counts, engaged: u32, since_min: u32| {
            let h = Helpers { seeding: engaged, downloading: 0, engaged, capacity: u32::MAX };
            let clock = Clock { first_round: false, elapsed: Duration::ZERO, since_change: since_min * MIN };
            wanted(&decide(&p, &c, &h, &clock), engaged, since_min * MIN, p.cooldown)
        };
        assert_eq!(want(counts(0, 40), 0, 0), 20, "not capped by capacity");
        assert_eq!(want(counts(3, 8), 1, 0), 2, "one more, at once");
        assert_eq!(want(counts(5, 4), 2, 1), 2, "ratio met: kept through the cooldown");
        assert_eq!(want(counts(5, 4), 2, 3), 0, "ratio met: released after it");
        assert_eq!(want(counts(3, 4), 2, 1), 2, "fewer needed: kept through the cooldown");
        assert_eq!(want(counts(3, 4), 2, 3), 1, "fewer needed: one released after it");
        assert_eq!(want(Counts { size: Some(1), ..counts(0, 9) }, 0, 9), 0, "too small, never helped");
        assert_eq!(want(counts(0, 8), 0, u32::MAX / 60), 4, "first help for a torrent");
    }

    #[test]
    fn when_a_helper_is_worth_engaging() {
        use EmptyHelpers::{Always, WithOtherSeeders as With};
        // (held, seeders, rule) -> worth it
        #[rustfmt::skip]
        let cases = [
            (Some(1.0), 0, With, true),
            (Some(1.0), 1, With, true),
            (Some(0.99), 1, With, false),
            (Some(0.0), 1, With, false),
            (Some(0.0), 0, With, false),
            (Some(0.0), 2, With, true),
            (Some(0.5), 3, With, true),
            (Some(0.0), 1, Always, true),
            (None, 1, With, true),
        ];
        for (held, seeders, rule, want) in cases {
            assert_eq!(worth_engaging(held, seeders, rule), want, "{held:?} {seeders} {rule:?}");
        }
    }
}
