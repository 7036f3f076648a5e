//! `odseed watch --metrics-file PATH`: each round's figures as a Prometheus textfile (format 0.0.4),
//! written atomically for node_exporter's textfile collector: the catalogue, the helpers, and what
//! EC2 cost this watch and this month.

use crate::output::RoundSummary;
use std::fmt::Write;
use std::path::Path;

/// The round's figures, as text.
pub fn render(r: &RoundSummary) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, labels: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {value}");
    };
    gauge("odseed_watch_torrents", "Torrents in the catalogue.", "", r.torrents as f64);
    gauge("odseed_watch_torrents_blind", "Torrents whose swarm could not be counted.", "", r.blind as f64);
    gauge("odseed_watch_torrents_needing_help", "Torrents that want helpers.", "", r.needing_help as f64);
    gauge("odseed_watch_boards_busy", "Boards given a torrent.", "", r.boards_busy as f64);
    gauge("odseed_watch_boards", "Boards configured.", "", r.boards as f64);
    gauge("odseed_watch_instances", "EC2 instances given a torrent.", "", f64::from(r.instances));
    gauge("odseed_watch_max_instances", "EC2 instances the budget allows now.", "", f64::from(r.max_instances));
    if let Some(m) = &r.money {
        gauge("odseed_ec2_dollars_watch", "Dollars EC2 cost this watch.", "", m.run);
    }
    if let Some(s) = &r.budget {
        // A month is "YYYY-MM": nothing in it needs escaping.
        let month = format!("{{month=\"{}\"}}", s.month);
        gauge("odseed_ec2_dollars_month", "Dollars EC2 cost this month (UTC), every run and watch.", &month, s.dollars);
        gauge("odseed_ec2_bytes_out_month", "Bytes EC2 helpers sent out this month.", &month, s.bytes_out as f64);
        let hours = s.used.as_secs_f64() / 3600.0;
        gauge("odseed_ec2_instance_hours_month", "EC2 instance-hours this month.", &month, hours);
        if let Some(l) = s.dollars_limit {
            gauge("odseed_ec2_dollars_limit", "[budget] dollars_per_month.", "", l);
        }
    }
    out
}

/// Writes the figures to `path`, atomically (a collector never reads half a file).
pub fn write(path: &Path, r: &RoundSummary) -> Result<(), String> {
    odseed_proto::fsutil::write_atomic(path, render(r).as_bytes(), 0o644)
        .map_err(|e| format!("--metrics-file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Standing;
    use crate::output::Money;
    use std::time::Duration;

    #[test]
    fn every_line_is_prometheus_text() {
        let r = RoundSummary {
            elapsed: Duration::from_secs(60),
            torrents: 3,
            blind: 1,
            needing_help: 2,
            boards_busy: 1,
            boards: 2,
            instances: 1,
            max_instances: 2,
            budget: Some(Standing {
                month: "2026-12".into(),
                used: Duration::from_secs(7200),
                left: None,
                dollars: 3.1,
                dollars_limit: Some(20.0),
                bytes_out: 34_000_000_000,
                rate: 0.0,
                instances: Default::default(),
            }),
            money: Some(Money { run: 0.42, month: Some(3.1), limit: Some(20.0) }),
            dry_run: false,
        };
        let text = render(&r);
        for line in [
            "odseed_watch_torrents 3",
            "odseed_ec2_dollars_month{month=\"2026-12\"} 3.1",
            "odseed_ec2_instance_hours_month{month=\"2026-12\"} 2",
            "odseed_ec2_dollars_limit 20",
            "odseed_ec2_dollars_watch 0.42",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = l.rsplit_once(' ').unwrap();
            assert!(name.starts_with("odseed_") && value.parse::<f64>().is_ok(), "{l}");
        }
        let dir =
            std::env::temp_dir().join(format!("odseed-textfile-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir.join("odseed.prom"), &r).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("odseed.prom")).unwrap(), text);
        assert!(write(&dir.join("missing/odseed.prom"), &r).unwrap_err().contains("--metrics-file"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
