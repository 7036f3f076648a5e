//! What `odseed run` acts on, resolved once before the loop starts: the command line over the
//! config's `[policy]`, over the defaults. `main` builds it from [`RunArgs`]; the lab builds one
//! directly. Nothing here does I/O.

use crate::cli::RunArgs;
use crate::config::PolicyConfig;
use crate::policy::{EmptyHelpers, Params, Placement};
use std::time::Duration;

/// A run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The torrent to help: a name in the publisher's client, a .torrent file or an info hash.
    pub torrent: String,
    /// The policy's fixed parameters (ratio, min size, max time, cooldown).
    pub params: Params,
    /// Time between rounds.
    pub interval: Duration,
    /// Where new helpers come from.
    pub placement: Placement,
    /// When helpers that do not hold the torrent whole are engaged.
    pub empty_helpers: EmptyHelpers,
    /// SEEDERS LEECHERS to use instead of the first round's observation.
    pub first_counts: Option<(u32, u32)>,
    /// One round, then release and exit.
    pub once: bool,
    /// Observe and decide, engage nothing.
    pub dry_run: bool,
    /// One JSON object per line on stdout instead of human lines.
    pub json: bool,
}

impl Settings {
    /// The command line's values where given, else the config's.
    pub fn resolve(args: &RunArgs, policy: &PolicyConfig) -> Settings {
        Settings {
            torrent: args.torrent.clone(),
            params: Params {
                ratio: args.ratio,
                min_size: args.min_size.unwrap_or(policy.min_size),
                max_time: Duration::from_secs(args.max_time.unwrap_or(policy.max_time)),
                cooldown: Duration::from_secs(policy.cooldown),
            },
            interval: Duration::from_secs(args.interval.unwrap_or(policy.interval)),
            placement: policy.placement.into(),
            empty_helpers: policy.empty_helpers.into(),
            first_counts: args.counts,
            once: args.once,
            dry_run: args.dry_run,
            json: args.json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PlacementName;

    #[test]
    fn flags_win_over_the_config() {
        let policy = PolicyConfig {
            interval: 30,
            max_time: 900,
            min_size: 7,
            cooldown: 45,
            placement: PlacementName::Seed,
            ..PolicyConfig::default()
        };
        let args = RunArgs { torrent: "t".into(), ratio: 0.5, ..RunArgs::default() };
        let s = Settings::resolve(&args, &policy);
        assert_eq!(
            (s.interval, s.params.max_time, s.params.min_size, s.params.cooldown, s.placement),
            (Duration::from_secs(30), Duration::from_secs(900), 7, Duration::from_secs(45), Placement::Seed)
        );
        let args = RunArgs { interval: Some(5), max_time: Some(60), min_size: Some(0), counts: Some((1, 4)), ..args };
        let s = Settings::resolve(&args, &policy);
        assert_eq!(
            (s.interval, s.params.max_time, s.params.min_size, s.first_counts, s.params.ratio),
            (Duration::from_secs(5), Duration::from_secs(60), 0, Some((1, 4)), 0.5)
        );
    }
}
