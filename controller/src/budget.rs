//! The EC2 budget: `[budget] instance_hours_per_month`, counted per calendar month (UTC) by every
//! `run` and `watch` together in `$XDG_STATE_HOME/odseed/budget.json`, so that it holds across
//! restarts. Each adds what its instances used since it last counted ([`Meter`]), every round, so a
//! kill -9 loses at most one round of it. A damaged file is never overwritten: EC2 is then not used
//! until someone looks.

use crate::error::Error;
use odseed_proto::fsutil::{read_bounded, write_atomic};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the file holds: the month it counts and the instance-seconds used in it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Used {
    month: String,
    instance_seconds: u64,
}

/// The month's limit and where its use is kept.
#[derive(Debug, Clone)]
pub struct Budget {
    path: PathBuf,
    /// Instance-seconds per month; `None`: no limit (the use is counted all the same).
    limit: Option<u64>,
}

/// Where a month stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// "2026-12".
    pub month: String,
    pub used: Duration,
    /// What is left of the limit (`None`: no limit).
    pub left: Option<Duration>,
}

impl Standing {
    pub fn spent(&self) -> bool {
        self.left == Some(Duration::ZERO)
    }
}

impl Budget {
    pub fn default_path() -> PathBuf {
        crate::xdg::state_dir().join("budget.json")
    }

    /// `hours` per month kept at `path`.
    pub fn at(path: &Path, hours: Option<f64>) -> Budget {
        let limit = hours.map(|h| (h * 3600.0).clamp(0.0, u64::MAX as f64) as u64);
        Budget { path: path.to_path_buf(), limit }
    }

    /// Adds `seconds` of instance time to the current month (a new month starts from zero), and
    /// says where it stands.
    pub fn add(&self, seconds: u64) -> Result<Standing, Error> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.error(format!("{}: {e}", dir.display())))?;
        let _lock = crate::ledger::lock(&self.path.with_extension("lock"))?;
        let mut used = self.read()?;
        let month = month_of(crate::ledger::now_secs());
        if used.month != month {
            used = Used { month, instance_seconds: 0 };
        }
        if seconds > 0 {
            used.instance_seconds = used.instance_seconds.saturating_add(seconds);
            let json = serde_json::to_vec_pretty(&used).map_err(|e| self.error(e.to_string()))?;
            write_atomic(&self.path, &json, 0o600).map_err(|e| self.error(format!("cannot write it: {e}")))?;
        }
        Ok(self.standing(used))
    }

    /// Where the current month stands.
    pub fn standing_now(&self) -> Result<Standing, Error> {
        self.add(0)
    }

    fn standing(&self, used: Used) -> Standing {
        Standing {
            month: used.month,
            used: Duration::from_secs(used.instance_seconds),
            left: self.limit.map(|l| Duration::from_secs(l.saturating_sub(used.instance_seconds))),
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

/// What one process has added to the budget so far: each round it adds the difference between
/// the instance time it has used in all (stopped instances and running ones) and that.
#[derive(Debug, Default)]
pub struct Meter {
    counted: Duration,
}

impl Meter {
    /// Adds what was used since the last call; where the month stands.
    pub fn tick(&mut self, budget: &Budget, used_in_all: Duration) -> Result<Standing, Error> {
        let new = used_in_all.saturating_sub(self.counted);
        // Whole seconds only: the fraction is counted next time.
        let secs = new.as_secs();
        let standing = budget.add(secs)?;
        self.counted += Duration::from_secs(secs);
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
        let b = Budget::at(&path, Some(1.0));
        let mut first = Meter::default();
        assert_eq!(first.tick(&b, Duration::from_millis(1500)).unwrap().used, Duration::from_secs(1));
        assert_eq!(first.tick(&b, Duration::from_millis(2100)).unwrap().used, Duration::from_secs(2));
        // A second process (a restarted watch) goes on from what the file says.
        let mut second = Meter::default();
        let s = second.tick(&b, Duration::from_secs(3600)).unwrap();
        assert_eq!((s.used, s.left, s.spent()), (Duration::from_secs(3602), Some(Duration::ZERO), true));
        assert_eq!(Budget::at(&path, None).standing_now().unwrap().left, None);
        // Last month's use does not count.
        std::fs::write(&path, r#"{"month":"1999-01","instance_seconds":99999}"#).unwrap();
        assert_eq!(b.standing_now().unwrap().left, Some(Duration::from_secs(3600)));
        std::fs::write(&path, b"{oops").unwrap();
        assert!(b.add(5).unwrap_err().to_string().contains("damaged"));
        assert_eq!(std::fs::read(&path).unwrap(), b"{oops");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
