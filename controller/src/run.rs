//! `odseed run`: one torrent helped until one of its exit conditions (`ratio_met`, `no_peers`,
//! `already_sufficient`, `too_small`, `max_time`, `once`): the loop of [`crate::rounds`] over a
//! catalogue of one, its torrent resolved first ([`crate::target`]).

use crate::budget::Budget;
use crate::catalogue::Catalogue;
use crate::config::Config;
use crate::error::Error;
use crate::guard::End;
use crate::helpers::ec2::Fleet;
use crate::ledger::Ledger;
use crate::rounds::{self, Options};
use crate::settings::Settings;
use std::sync::mpsc;

/// `fleet` is `[ec2]` with its credentials (main.rs builds it: a problem there is a config error).
/// `budget` is the month's EC2 budget (None: not counted, as in the lab).
pub fn run(
    s: &Settings,
    cfg: &Config,
    fleet: Fleet,
    ledger: &Ledger,
    budget: Option<&Budget>,
    stop: &mpsc::Receiver<()>,
) -> Result<End, Error> {
    let client = crate::publisher::from_config(cfg);
    let target = crate::target::resolve(&s.torrent, client.as_deref())?;
    let meta = &target.meta;
    log::info!(
        "helping {} ({}, {} bytes, {} tracker(s))",
        meta.name,
        meta.info_hash,
        meta.total_size,
        meta.trackers.len()
    );
    let o = Options {
        run: true,
        params: s.params.clone(),
        placement: s.placement,
        empty_helpers: s.empty_helpers,
        interval: s.interval,
        first_counts: s.first_counts,
        once: s.once,
        dry_run: s.dry_run,
        json: s.json,
        metrics_file: None,
        stage: Default::default(),
    };
    rounds::keep(&o, cfg, Catalogue::one(target, client), fleet, ledger, budget, stop)
}
