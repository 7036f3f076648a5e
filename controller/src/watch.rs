//! `odseed watch`: keeps a publisher's whole catalogue healthy with one helper budget: the loop of
//! [`crate::rounds`] over the catalogue `[watch]` describes, until a signal (or `--max-time`).

use crate::budget::Budget;
use crate::catalogue::Catalogue;
use crate::config::Config;
use crate::error::Error;
use crate::guard::End;
use crate::helpers::ec2::Fleet;
use crate::ledger::Ledger;
use crate::policy::Params;
use crate::rounds::{self, Options as Loop};
use std::sync::mpsc;
use std::time::Duration;

/// How a watch goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub interval: Duration,
    /// Release everything and end after this long (`None`: until a signal).
    pub max_time: Option<Duration>,
    pub once: bool,
    pub dry_run: bool,
    pub json: bool,
    /// A Prometheus textfile written each round.
    pub metrics_file: Option<std::path::PathBuf>,
}

pub fn watch(
    o: &Options,
    cfg: &Config,
    fleet: Fleet,
    ledger: &Ledger,
    budget: &Budget,
    stop: &mpsc::Receiver<()>,
) -> Result<End, Error> {
    let catalogue = Catalogue::from_config(cfg).map_err(Error::Config)?;
    let params = Params {
        ratio: cfg.watch.ratio,
        min_size: cfg.policy.min_size,
        max_time: o.max_time.unwrap_or(Duration::MAX),
        cooldown: Duration::from_secs(cfg.policy.cooldown),
    };
    let l = Loop {
        run: false,
        params,
        placement: cfg.policy.placement.into(),
        empty_helpers: cfg.policy.empty_helpers.into(),
        interval: o.interval,
        first_counts: None,
        once: o.once,
        dry_run: o.dry_run,
        json: o.json,
        metrics_file: o.metrics_file.clone(),
        stage: rounds::StageOptions { boards: cfg.watch.stage, down_kbps: cfg.watch.stage_down_kbps },
    };
    rounds::keep(&l, cfg, catalogue, fleet, ledger, Some(budget), stop)
}
