//! The EC2 budget: `[budget] instance_hours_per_month` and `dollars_per_month`, counted per calendar
//! month (UTC) by every `run` and `watch` together in `$XDG_STATE_HOME/odseed/budget.json`, so that
//! it holds across restarts. Each adds what its instances used since it last counted ([`Meter`]):
//! their time, and their dollars (time, public addresses, bytes out at [`crate::price`]), every
//! round, so a kill -9 loses at most one round of it. The first `free_gb_per_month` of the month's
//! bytes out are not billed. A damaged file is never overwritten: EC2 is then not used until
//! someone looks.

use crate::error::Error;
use odseed_proto::fsutil::{read_bounded, write_atomic};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the file holds: the month it counts and what was used in it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Used {
    month: String,
    instance_seconds: u64,
    #[serde(default)]
    dollars: f64,
    #[serde(default)]
    bytes_out: u64,
    /// Dollars a second, as last measured while something was spent: what the next round will
    /// cost, for every process of the month.
    #[serde(default)]
    rate: f64,
    /// Each instance's share, by id.
    #[serde(default)]
    instances: BTreeMap<String, InstanceUse>,
}

/// What one instance used in a month (every process that ran it, together).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceUse {
    pub region: String,
    pub seconds: f64,
    pub bytes_out: u64,
    /// Before the month's free GB (which are the account's, not an instance's).
    pub dollars: f64,
}

/// Instances kept in the file, at most (a month never has this many; the totals count them all).
const MAX_INSTANCES: usize = 10_000;

/// The month's limits and where its use is kept.
#[derive(Debug, Clone)]
pub struct Budget {
    path: PathBuf,
    /// Instance-seconds per month; `None`: no limit (the use is counted all the same).
    limit: Option<u64>,
    /// Dollars per month; `None`: no limit.
    dollars: Option<f64>,
    /// Bytes out a month AWS does not bill.
    free_bytes: u64,
}

/// What was used since the last count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spent {
    pub seconds: u64,
    /// Instance time and addresses.
    pub dollars: f64,
    pub bytes_out: u64,
    /// What those bytes cost, before the month's free ones.
    pub egress_dollars: f64,
    /// Dollars a second while that was spent, if something was.
    pub rate: Option<f64>,
    /// Each instance's share of it.
    pub instances: BTreeMap<String, InstanceUse>,
}

/// Where a month stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// "2026-12".
    pub month: String,
    pub used: Duration,
    /// What is left of the limit (`None`: no limit).
    pub left: Option<Duration>,
    pub dollars: f64,
    /// The month's dollars (`None`: no limit).
    pub dollars_limit: Option<f64>,
    pub bytes_out: u64,
    /// Dollars a second, as last measured this month.
    pub rate: f64,
    pub instances: BTreeMap<String, InstanceUse>,
}

impl Standing {
    /// Either limit reached.
    pub fn spent(&self) -> bool {
        self.left == Some(Duration::ZERO) || self.dollars_limit.is_some_and(|l| self.dollars >= l)
    }
}

impl Budget {
    pub fn default_path() -> PathBuf {
        crate::xdg::state_dir().join("budget.json")
    }

    /// `[budget]`'s limits, kept at `path`.
    pub fn at(path: &Path, c: &crate::config::BudgetConfig) -> Budget {
        let limit = c.instance_hours_per_month.map(|h| (h * 3600.0).clamp(0.0, u64::MAX as f64) as u64);
        let free_bytes = (c.free_gb_per_month * 1e9).clamp(0.0, u64::MAX as f64) as u64;
        Budget { path: path.to_path_buf(), limit, dollars: c.dollars_per_month, free_bytes }
    }

    /// Whether a limit is set (without a readable file, no instance may then be started).
    pub fn limited(&self) -> bool {
        self.limit.is_some() || self.dollars.is_some()
    }

    /// Adds what was used to the current month (a new month starts from zero), and says where it
    /// stands.
    pub fn add(&self, spent: Spent) -> Result<Standing, Error> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.error(format!("{}: {e}", dir.display())))?;
        let _lock = crate::ledger::lock(&self.path.with_extension("lock"))?;
        let mut used = self.read()?;
        let month = month_of(crate::ledger::now_secs());
        if used.month != month {
            used = Used { month, ..Used::default() };
        }
        if spent.seconds > 0 || spent.bytes_out > 0 || spent.dollars > 0.0 || !spent.instances.is_empty() {
            // Only the bytes past the month's free ones are billed.
            let billable = |b: u64| b.saturating_sub(self.free_bytes);
            let new_billable = billable(used.bytes_out.saturating_add(spent.bytes_out)) - billable(used.bytes_out);
            let share = if spent.bytes_out == 0 { 0.0 } else { new_billable as f64 / spent.bytes_out as f64 };
            used.instance_seconds = used.instance_seconds.saturating_add(spent.seconds);
            used.dollars += spent.dollars + spent.egress_dollars * share;
            used.bytes_out = used.bytes_out.saturating_add(spent.bytes_out);
            if let Some(r) = spent.rate {
                used.rate = r;
            }
            for (id, u) in &spent.instances {
                if used.instances.len() >= MAX_INSTANCES && !used.instances.contains_key(id) {
                    continue;
                }
                let mine = used.instances.entry(id.clone()).or_default();
                mine.region.clone_from(&u.region);
                mine.seconds += u.seconds;
                mine.bytes_out = mine.bytes_out.saturating_add(u.bytes_out);
                mine.dollars += u.dollars;
            }
            let json = serde_json::to_vec_pretty(&used).map_err(|e| self.error(e.to_string()))?;
            write_atomic(&self.path, &json, 0o600).map_err(|e| self.error(format!("cannot write it: {e}")))?;
        }
        Ok(self.standing(used))
    }

    /// Where the current month stands.
    pub fn standing_now(&self) -> Result<Standing, Error> {
        self.add(Spent::default())
    }

    fn standing(&self, used: Used) -> Standing {
        Standing {
            month: used.month,
            used: Duration::from_secs(used.instance_seconds),
            left: self.limit.map(|l| Duration::from_secs(l.saturating_sub(used.instance_seconds))),
            dollars: used.dollars,
            dollars_limit: self.dollars,
            bytes_out: used.bytes_out,
            rate: used.rate,
            instances: used.instances,
        }
    }

    fn read(&self) -> Result<Used, Error> {
        let bytes = match read_bounded(&self.path, 64 << 10) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Used::default()),
            Err(e) => return Err(self.error(format!("cannot read it: {e}"))),
        };
        serde_json::from_slice(&bytes).map_err(|e| self.error(format!("damaged ({e}); move it aside to count afresh")))
    }

    fn error(&self, why: String) -> Error {
        Error::Ledger(format!("the EC2 budget file {}: {why}", self.path.display()))
    }
}

/// What one process has used in all, stopped instances and running ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub time: Duration,
    /// Instance time and addresses.
    pub dollars: f64,
    pub bytes_out: u64,
    pub egress_dollars: f64,
    pub instances: BTreeMap<String, InstanceUse>,
}

/// What one process has added to the budget so far: each round it adds the difference between
/// what it has used in all and that.
#[derive(Debug, Default)]
pub struct Meter {
    counted: Totals,
    /// When it last counted.
    at: Option<std::time::Instant>,
}

impl Meter {
    /// Adds what was used since the last call; where the month stands.
    pub fn tick(&mut self, budget: &Budget, all: Totals) -> Result<Standing, Error> {
        let c = &self.counted;
        // Whole seconds only: the fraction is counted next time.
        let secs = all.time.saturating_sub(c.time).as_secs();
        let now = std::time::Instant::now();
        let (dollars, egress_dollars) =
            ((all.dollars - c.dollars).max(0.0), (all.egress_dollars - c.egress_dollars).max(0.0));
        let since = self.at.replace(now).map(|at| now.duration_since(at).as_secs_f64());
        let rate = since.filter(|s| *s > 0.0 && dollars + egress_dollars > 0.0).map(|s| (dollars + egress_dollars) / s);
        let instances = (all.instances.iter())
            .filter_map(|(id, u)| {
                let before = c.instances.get(id).cloned().unwrap_or_default();
                let d = InstanceUse {
                    region: u.region.clone(),
                    seconds: (u.seconds - before.seconds).max(0.0),
                    bytes_out: u.bytes_out.saturating_sub(before.bytes_out),
                    dollars: (u.dollars - before.dollars).max(0.0),
                };
                (d.seconds > 0.0 || d.bytes_out > 0 || d.dollars > 0.0).then(|| (id.clone(), d))
            })
            .collect();
        let spent = Spent {
            seconds: secs,
            dollars,
            bytes_out: all.bytes_out.saturating_sub(c.bytes_out),
            egress_dollars,
            rate,
            instances,
        };
        let standing = budget.add(spent)?;
        let c = &self.counted;
        self.counted = Totals {
            time: c.time + Duration::from_secs(secs),
            dollars: c.dollars.max(all.dollars),
            bytes_out: c.bytes_out.max(all.bytes_out),
            egress_dollars: c.egress_dollars.max(all.egress_dollars),
            instances: all.instances,
        };
        Ok(standing)
    }
}

/// "YYYY-MM" (UTC) of a Unix time, by the civil-from-days algorithm (Howard Hinnant's).
pub fn month_of(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BudgetConfig;

    #[test]
    fn months() {
        for (secs, month) in [
            (0, "1970-01"),
            (951_782_400, "2000-02"),   // 2000-02-29 00:00
            (951_868_799, "2000-02"),   // 2000-02-29 23:59:59
            (951_868_800, "2000-03"),   // 2000-03-01
            (1_798_761_599, "2026-12"), // 2026-12-31 23:59:59
            (1_798_761_600, "2027-01"),
        ] {
            assert_eq!(month_of(secs), month, "{secs}");
        }
    }

    #[test]
    fn counted_across_processes_and_never_overwritten_when_damaged() {
        let dir = std::env::temp_dir().join(format!("odseed-budget-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        let path = dir.join("budget.json");
        let hours = |h| BudgetConfig { instance_hours_per_month: h, ..BudgetConfig::default() };
        let b = Budget::at(&path, &hours(Some(1.0)));
        let time = |ms| Totals { time: Duration::from_millis(ms), ..Totals::default() };
        let mut first = Meter::default();
        assert_eq!(first.tick(&b, time(1500)).unwrap().used, Duration::from_secs(1));
        assert_eq!(first.tick(&b, time(2100)).unwrap().used, Duration::from_secs(2));
        // A second process (a restarted watch) goes on from what the file says.
        let mut second = Meter::default();
        let s = second.tick(&b, time(3_600_000)).unwrap();
        assert_eq!((s.used, s.left, s.spent()), (Duration::from_secs(3602), Some(Duration::ZERO), true));
        assert_eq!(Budget::at(&path, &hours(None)).standing_now().unwrap().left, None);
        // Last month's use does not count.
        std::fs::write(&path, r#"{"month":"1999-01","instance_seconds":99999}"#).unwrap();
        assert_eq!(b.standing_now().unwrap().left, Some(Duration::from_secs(3600)));
        std::fs::write(&path, b"{oops").unwrap();
        assert!(b.add(Spent { seconds: 5, ..Spent::default() }).unwrap_err().to_string().contains("damaged"));
        assert_eq!(std::fs::read(&path).unwrap(), b"{oops");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dollars_count_with_the_free_bytes_and_stop_at_the_limit() {
        let dir = std::env::temp_dir().join(format!("odseed-budget-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        let path = dir.join("budget.json");
        let c = BudgetConfig { dollars_per_month: Some(10.0), free_gb_per_month: 1.0, ..BudgetConfig::default() };
        let b = Budget::at(&path, &c);
        let mut m = Meter::default();
        // 0.5 GB out ($0.45 before the free GB), $0.10 of time: the bytes are free.
        let t = |d: f64, bytes: u64| Totals {
            instances: BTreeMap::new(),
            time: Duration::ZERO,
            dollars: d,
            bytes_out: bytes,
            egress_dollars: bytes as f64 / 1e9 * 0.9,
        };
        let s = m.tick(&b, t(0.1, 500_000_000)).unwrap();
        assert!((s.dollars - 0.1).abs() < 1e-9 && s.bytes_out == 500_000_000 && !s.spent(), "{s:?}");
        // 1.5 GB in all: half of the new GB is free, half is billed ($0.45).
        let s = m.tick(&b, t(0.1, 1_500_000_000)).unwrap();
        assert!((s.dollars - 0.55).abs() < 1e-9, "{s:?}");
        // Counted once: the same totals again add nothing.
        assert!((m.tick(&b, t(0.1, 1_500_000_000)).unwrap().dollars - 0.55).abs() < 1e-9);
        // 12.5 GB in all: $9.45 more, $10.00 in all: spent.
        let s = m.tick(&b, t(0.1, 12_000_000_000)).unwrap();
        assert!((s.dollars - 10.0).abs() < 1e-9 && s.spent(), "{s:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
