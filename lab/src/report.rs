//! The lab's report: completion times, bytes uploaded, and the fluid-model lower bound.
//!
//! The bound (Kumar and Ross, "Peer-assisted file distribution: the minimum distribution time"),
//! with the helpers as extra servers since each holds the whole file:
//!
//!   T >= max( F / d_min,  N F / (u_s + sum u_h + sum u_l),  F / (u_s + sum u_h) )
//!
//! F the file size, N leechers, u_s the origin's upload, u_h each engaged helper's upload, u_l each
//! leecher's upload, d_min the slowest leecher's download. An uncapped rate is infinite: its term is
//! 0 (an uncapped origin makes the bound meaningless, so there is none).

use serde::Serialize;

/// Rates in bytes per second; `None` = no cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setup {
    pub size: u64,
    pub leechers: usize,
    pub helpers: usize,
    pub origin_up: Option<f64>,
    pub helper_up: Option<f64>,
    pub leecher_down: Option<f64>,
    pub leecher_up: Option<f64>,
}

/// The fluid-model lower bound on the time for every leecher to finish, in seconds.
pub fn fluid_bound(s: &Setup) -> Option<f64> {
    let f = s.size as f64;
    let n = s.leechers as f64;
    let u_s = s.origin_up?;
    let helpers = if s.helpers == 0 { Some(0.0) } else { s.helper_up.map(|u| u * s.helpers as f64) };
    let servers = helpers.map(|h| u_s + h);
    let t_download = s.leecher_down.map_or(0.0, |d| f / d);
    let t_servers = servers.map_or(0.0, |c| f / c);
    let t_swarm = match (servers, s.leecher_up) {
        (Some(c), Some(u_l)) => n * f / (c + n * u_l),
        _ => 0.0,
    };
    Some(t_download.max(t_servers).max(t_swarm))
}

/// What a lab run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub event: &'static str,
    /// The torrent's name, when the lab had several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torrent: Option<String>,
    /// Seconds from the leechers' start to each one's completion.
    pub completion: Vec<f64>,
    pub mean: f64,
    pub max: f64,
    pub origin_uploaded: u64,
    pub helpers_uploaded: u64,
    /// Helpers engaged at the most at one time.
    pub helpers_engaged: usize,
    pub bound: Option<f64>,
    pub mean_over_bound: Option<f64>,
    pub max_over_bound: Option<f64>,
}

impl Report {
    pub fn new(
        completion: Vec<f64>,
        origin_uploaded: u64,
        helpers_uploaded: u64,
        helpers_engaged: usize,
        setup: &Setup,
    ) -> Report {
        let n = completion.len().max(1) as f64;
        let mean = completion.iter().sum::<f64>() / n;
        let max = completion.iter().copied().fold(0.0, f64::max);
        let bound = fluid_bound(&Setup { helpers: helpers_engaged, ..*setup });
        let over = |t: f64| bound.filter(|b| *b > 0.0).map(|b| t / b);
        Report {
            event: "report",
            torrent: None,
            mean,
            max,
            mean_over_bound: over(mean),
            max_over_bound: over(max),
            completion,
            origin_uploaded,
            helpers_uploaded,
            helpers_engaged,
            bound,
        }
    }

    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string(self).unwrap_or_default());
            return;
        }
        match &self.torrent {
            Some(name) => println!("\nlab report: {name}"),
            None => println!("\nlab report"),
        }
        for (i, t) in self.completion.iter().enumerate() {
            println!("  leecher{i:<3} done after {t:7.1} s");
        }
        println!("  every leecher's file matches the origin's, byte for byte");
        if self.torrent.is_some() {
            println!("  (the origin's upload is shared by every torrent: the bound below is this one's alone)");
        }
        println!("  mean {:.1} s, max {:.1} s", self.mean, self.max);
        println!(
            "  uploaded: origin {}, helpers {} ({} engaged at most)",
            mib(self.origin_uploaded),
            mib(self.helpers_uploaded),
            self.helpers_engaged
        );
        match (self.bound, self.mean_over_bound, self.max_over_bound) {
            (Some(b), Some(m), Some(x)) => println!("  fluid bound {b:.1} s; mean / bound {m:.2}, max / bound {x:.2}"),
            _ => println!("  fluid bound: none (the origin's upload is not capped)"),
        }
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(helpers: usize) -> Setup {
        Setup {
            size: 8_000_000,
            leechers: 4,
            helpers,
            origin_up: Some(200_000.0),
            helper_up: Some(200_000.0),
            leecher_down: Some(1_000_000.0),
            leecher_up: None,
        }
    }

    #[test]
    fn the_bound_takes_the_slowest_term() {
        // Origin alone: 8 MB at 200 kB/s = 40 s; downloads take 8 s; leechers' upload uncapped.
        assert_eq!(fluid_bound(&setup(0)), Some(40.0));
        // Two helpers triple the servers: 8 MB / 600 kB/s.
        assert!((fluid_bound(&setup(2)).unwrap() - 13.333).abs() < 0.01);
        // Many helpers: the download cap binds.
        assert_eq!(fluid_bound(&setup(100)), Some(8.0));
        // Capped leecher uploads: N F / (servers + N u_l) = 32 MB / (200 kB/s + 4 x 50 kB/s) = 80 s.
        assert_eq!(fluid_bound(&Setup { leecher_up: Some(50_000.0), ..setup(0) }), Some(80.0));
        assert_eq!(fluid_bound(&Setup { origin_up: None, ..setup(0) }), None);
    }

    #[test]
    fn the_report_compares_with_the_bound() {
        let r = Report::new(vec![40.0, 60.0], 1, 2, 0, &setup(0));
        assert_eq!((r.mean, r.max, r.bound), (50.0, 60.0, Some(40.0)));
        assert_eq!((r.mean_over_bound, r.max_over_bound), (Some(1.25), Some(1.5)));
    }
}
