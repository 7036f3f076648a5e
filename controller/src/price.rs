//! What AWS bills for a helper, as data: the price of its instance's time, of its public IPv4
//! address's time and of the bytes it sends out, each overridable per pool (`[[ec2.pool]]`
//! `instance_per_hour`, `ipv4_per_hour`, `egress_per_gb`). A helper exists to upload, and on AWS the
//! upload is most of the bill: at 8 MB/s a helper sends 28.8 GB an hour, $2.59 at $0.09/GB, against
//! $0.02 for a small instance.
//!
//! The defaults are AWS's public on-demand prices in us-east-1 as published in 2025-2026
//! ([`DATED`]); other regions differ a little. A GB is 10^9 bytes.

use odseed_proto::wire::Usage;

/// When and where the default prices were read.
pub const DATED: &str = "AWS us-east-1 on-demand prices as published in 2025-2026, read 2026-12";

/// Data out to the internet, per GB, for the first 10 TB a month.
pub const EGRESS_PER_GB: f64 = 0.09;
/// A public IPv4 address, per hour, in use or not (since February 2024).
pub const IPV4_PER_HOUR: f64 = 0.005;

/// Instance types by their price per hour (Linux, on demand).
const INSTANCE_PER_HOUR: [(&str, f64); 12] = [
    ("t4g.nano", 0.0042),
    ("t4g.micro", 0.0084),
    ("t4g.small", 0.0168),
    ("t4g.medium", 0.0336),
    ("t4g.large", 0.0672),
    ("t3.nano", 0.0052),
    ("t3.micro", 0.0104),
    ("t3.small", 0.0208),
    ("t3.medium", 0.0416),
    ("t3.large", 0.0832),
    ("m7g.medium", 0.0408),
    ("c7g.medium", 0.0363),
];

/// A type not in the table, or not known, is counted at this (more than any type listed above,
/// so that an unknown one is never counted cheaper than it is; set `instance_per_hour`).
pub const UNKNOWN_PER_HOUR: f64 = 0.10;

/// A pool's prices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Its instances' price per hour (`None`: by their type, from the table above).
    pub instance_per_hour: Option<f64>,
    pub ipv4_per_hour: f64,
    pub egress_per_gb: f64,
}

impl Default for Prices {
    fn default() -> Prices {
        Prices { instance_per_hour: None, ipv4_per_hour: IPV4_PER_HOUR, egress_per_gb: EGRESS_PER_GB }
    }
}

impl Prices {
    /// The price per hour of an instance of `kind`, and whether it is known (configured or in the
    /// table) rather than [`UNKNOWN_PER_HOUR`].
    pub fn per_hour(&self, kind: Option<&str>) -> (f64, bool) {
        if let Some(p) = self.instance_per_hour {
            return (p, true);
        }
        let listed = kind.and_then(|k| INSTANCE_PER_HOUR.iter().find(|(t, _)| *t == k));
        listed.map_or((UNKNOWN_PER_HOUR, false), |(_, p)| (*p, true))
    }
}

/// What one instance used: its running time, its public address's time, the bytes it sent out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Use {
    pub seconds: f64,
    pub ipv4_seconds: f64,
    pub bytes_out: u64,
}

impl Use {
    /// In dollars, at `per_hour` for the instance and the pool's other prices.
    pub fn dollars(&self, p: &Prices, per_hour: f64) -> f64 {
        let hours = |s: f64| s / 3600.0;
        hours(self.seconds) * per_hour
            + hours(self.ipv4_seconds) * p.ipv4_per_hour
            + self.bytes_out as f64 / 1e9 * p.egress_per_gb
    }
}

/// What an instance is billed by: its price per hour, whether it has a public IPv4 address, and
/// its agent's counters over its engagement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meter {
    pub per_hour: f64,
    pub public_ip: bool,
    /// The agent's counters when it was engaged (`None`: not read), and as last read.
    pub base: Option<Usage>,
    pub last: Option<Usage>,
    /// The payload its session uploaded, as last seen: what counts where the agent has no usage.
    pub payload: u64,
}

impl Meter {
    /// The bytes it sent out while engaged: what its machine's interfaces sent, or the payload
    /// its daemon uploaded where that is more (an agent without `/v1/usage`, or one whose machine
    /// sends through loopback only, as in the lab). Counted as of its agent's last answer.
    pub fn bytes_out(&self) -> u64 {
        let counted = match (self.base, self.last) {
            (Some(b), Some(l)) => {
                l.sent_bytes.saturating_sub(b.sent_bytes).max(l.uploaded_bytes.saturating_sub(b.uploaded_bytes))
            }
            _ => 0,
        };
        counted.max(self.payload)
    }
}

/// What one instance this run stopped cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Bill {
    pub id: String,
    pub region: String,
    pub used: Use,
    /// In all, and of that its bytes out.
    pub dollars: f64,
    pub egress: f64,
}

/// A price from the config: a finite number, 0 or more.
pub fn check(value: Option<f64>, key: &str) -> Result<(), String> {
    match value {
        Some(v) if !(v.is_finite() && v >= 0.0) => {
            Err(format!("`{key}` must be a price in dollars, 0 or more, got {v}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_worked_example() {
        // A t4g.small sending 8 MB/s for an hour, with a public address.
        let p = Prices::default();
        let (per_hour, known) = p.per_hour(Some("t4g.small"));
        let hour = Use { seconds: 3600.0, ipv4_seconds: 3600.0, bytes_out: 8_000_000 * 3600 };
        let d = hour.dollars(&p, per_hour);
        assert!(known && (d - (2.592 + 0.0168 + 0.005)).abs() < 1e-9, "{d}");
        // $20 a month lasts about 7.6 such hours.
        assert!((20.0 / d - 7.65).abs() < 0.01, "{}", 20.0 / d);
    }

    #[test]
    fn types_overrides_and_unknowns() {
        let p = Prices::default();
        assert_eq!(p.per_hour(Some("t3.micro")), (0.0104, true));
        assert_eq!(p.per_hour(Some("x9.huge")), (UNKNOWN_PER_HOUR, false));
        assert_eq!(p.per_hour(None), (UNKNOWN_PER_HOUR, false));
        assert!(INSTANCE_PER_HOUR.iter().all(|(_, p)| *p < UNKNOWN_PER_HOUR));
        let mine = Prices { instance_per_hour: Some(0.5), ipv4_per_hour: 0.0, egress_per_gb: 1.0 };
        assert_eq!(mine.per_hour(Some("t3.micro")), (0.5, true));
        let u = Use { seconds: 7200.0, ipv4_seconds: 7200.0, bytes_out: 3_000_000_000 };
        assert!((u.dollars(&mine, 0.5) - 4.0).abs() < 1e-9);
        assert!(check(Some(-1.0), "x").unwrap_err().contains("`x`"));
        assert!(check(Some(f64::NAN), "x").is_err() && check(Some(0.0), "x").is_ok() && check(None, "x").is_ok());
    }
}
