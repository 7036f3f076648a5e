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

use crate::trace::{Figures, Trace};
use serde::Serialize;

/// Rates in bytes per second; `None` = no cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setup {
    pub size: u64,
    pub leechers: usize,
    pub helpers: usize,
    /// Of the helpers, how many started empty: they add no server capacity (every piece they
    /// pass on left the origin first), only upload the swarm can trade with.
    pub helpers_empty: usize,
    pub origin_up: Option<f64>,
    pub helper_up: Option<f64>,
    pub leecher_down: Option<f64>,
    pub leecher_up: Option<f64>,
    /// A web seed's capacity in bytes/s (0: none): a server that holds the file.
    pub webseed_up: f64,
}

/// The fluid-model lower bound on the time for every leecher to finish, in seconds.
pub fn fluid_bound(s: &Setup) -> Option<f64> {
    let f = s.size as f64;
    let n = s.leechers as f64;
    let u_s = s.origin_up?;
    let upload = |k: usize| if k == 0 { Some(0.0) } else { s.helper_up.map(|u| u * k as f64) };
    let empty = s.helpers_empty.min(s.helpers);
    // Servers: the origin and the helpers that hold the file; every piece leaves one of them.
    let servers = upload(s.helpers - empty).map(|h| u_s + h + s.webseed_up);
    let t_download = s.leecher_down.map_or(0.0, |d| f / d);
    let t_servers = servers.map_or(0.0, |c| f / c);
    let t_swarm = match (servers, s.leecher_up, upload(empty)) {
        (Some(c), Some(u_l), Some(e)) => n * f / (c + n * u_l + e),
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
    /// The origin's client and its version ("qBittorrent v4.5.2").
    #[serde(skip_serializing_if = "String::is_empty")]
    pub origin: String,
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
    /// Each leecher's client, when the lab traced them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<&'static str>,
    /// Seconds from the leechers' start to each one's first byte.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_byte: Vec<Option<f64>>,
    /// Where the time went.
    #[serde(flatten)]
    pub figures: Figures,
    /// The bound counted from the leechers' mean first byte: what the swarm could do once the
    /// clients start trading, the time before that being the protocol's (announce, handshake, the
    /// clients' first unchoke).
    pub floor: Option<f64>,
    pub mean_over_floor: Option<f64>,
    /// Per leecher client: how many, their mean completion and mean first byte.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_client: Vec<ByClient>,
    /// `--stage`: how the helpers got the content before the leechers came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging: Option<Staging>,
    /// `--webseed`: what the web seed sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webseed_uploaded: Option<u64>,
}

/// Staging before the leechers came (`odseed lab --stage`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Staging {
    /// Seconds until every helper held the file whole.
    pub seconds: f64,
    /// How many helpers staged.
    pub helpers: usize,
    /// What the helpers got from the origin meanwhile, in copies of the file.
    pub origin_copies: f64,
    /// What they got from one another (what they uploaded meanwhile), in copies of the file.
    pub from_helpers_copies: f64,
    /// Per helper, what share of the file it got from the origin (the rest came from the other
    /// helpers: no leecher is there while they stage). The origin's rate to each, sampled and
    /// summed, then scaled to what the origin sent in all.
    pub from_origin: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ByClient {
    pub client: &'static str,
    pub leechers: usize,
    pub mean: f64,
    pub first_byte_mean: Option<f64>,
}

fn mean(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (n, sum) = v.into_iter().fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| sum / n as f64)
}

impl Report {
    pub fn new(
        completion: Vec<f64>,
        origin_uploaded: u64,
        helpers_uploaded: u64,
        helpers_engaged: usize,
        setup: &Setup,
    ) -> Report {
        let mean = mean(completion.iter().copied()).unwrap_or(0.0);
        let max = completion.iter().copied().fold(0.0, f64::max);
        let bound = fluid_bound(&Setup { helpers: helpers_engaged, ..*setup });
        let over = |t: f64| bound.filter(|b| *b > 0.0).map(|b| t / b);
        Report {
            event: "report",
            torrent: None,
            origin: String::new(),
            mean,
            max,
            mean_over_bound: over(mean),
            max_over_bound: over(max),
            completion,
            origin_uploaded,
            helpers_uploaded,
            helpers_engaged,
            bound,
            clients: Vec::new(),
            first_byte: Vec::new(),
            figures: Figures::default(),
            floor: None,
            mean_over_floor: None,
            by_client: Vec::new(),
            staging: None,
            webseed_uploaded: None,
        }
    }

    /// Adds what the trace of the run says: each leecher's client and first byte, where the time
    /// went, the floor, and the figures per client.
    pub fn with_trace(mut self, trace: &Trace) -> Report {
        self.clients = trace.leechers.iter().map(|l| l.1.as_str()).collect();
        self.first_byte = trace.first_byte.clone();
        self.figures = trace.figures();
        self.floor = self.bound.zip(self.figures.first_byte_mean).map(|(b, f)| b + f);
        self.mean_over_floor = self.floor.filter(|f| *f > 0.0).map(|f| self.mean / f);
        let mut kinds: Vec<_> = trace.leechers.iter().map(|l| l.1).collect();
        kinds.sort();
        kinds.dedup();
        self.by_client = kinds
            .into_iter()
            .map(|k| {
                let of = || trace.leechers.iter().enumerate().filter(move |(_, l)| l.1 == k).map(|(i, _)| i);
                ByClient {
                    client: k.as_str(),
                    leechers: of().count(),
                    mean: mean(of().filter_map(|i| self.completion.get(i).copied())).unwrap_or(0.0),
                    first_byte_mean: mean(of().filter_map(|i| trace.first_byte.get(i).copied().flatten())),
                }
            })
            .collect();
        self
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
        if !self.origin.is_empty() {
            println!("  origin: {}", self.origin);
        }
        for (i, t) in self.completion.iter().enumerate() {
            let client = self.clients.get(i).map(|c| format!(" {c:<12}")).unwrap_or_default();
            let first = match self.first_byte.get(i) {
                Some(Some(f)) => format!("  first byte {f:5.1} s"),
                Some(None) => "  first byte unseen ".into(),
                None => String::new(),
            };
            println!("  leecher{i:<3}{client}{first}  done after {t:7.1} s");
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
        if let Some(w) = self.webseed_uploaded {
            println!("  the web seed sent {}", mib(w));
        }
        if let Some(st) = &self.staging {
            println!(
                "  staged on {} helper(s) before the leechers came, in {:.1} s: {:.2} copies from the origin, {:.2} from one another",
                st.helpers, st.seconds, st.origin_copies, st.from_helpers_copies
            );
            for (helper, share) in &st.from_origin {
                println!(
                    "    {helper}: {:.0}% of the file from the origin, {:.0}% from the other helpers",
                    share * 100.0,
                    (1.0 - share) * 100.0
                );
            }
        }
        match (self.bound, self.mean_over_bound, self.max_over_bound) {
            (Some(b), Some(m), Some(x)) => println!("  fluid bound {b:.1} s; mean / bound {m:.2}, max / bound {x:.2}"),
            _ => println!("  fluid bound: none (the origin's upload is not capped)"),
        }
        self.print_where_the_time_went();
    }

    fn print_where_the_time_went(&self) {
        let f = &self.figures;
        if self.clients.is_empty() {
            return;
        }
        println!("  where the time went:");
        match f.first_byte_mean {
            Some(t) => println!("    first byte after {t:.1} s on average (announce, handshakes, the first unchoke)"),
            None => println!("    no leecher's first byte was seen"),
        }
        if let (Some(floor), Some(m)) = (self.floor, self.mean_over_floor) {
            println!("    the bound counted from that first byte: {floor:.1} s; mean / that {m:.2}");
        }
        match f.first_trade {
            Some(t) => println!("    leechers first traded with each other at {t:.1} s"),
            None => println!("    leechers were never seen trading with each other"),
        }
        match (f.server_copies_to_cover, f.useful_fraction) {
            (Some(c), Some(u)) => println!(
                "    servers sent {c:.2} copies of the file before the leechers held every piece between them: {:.0}% of those bytes were new to the swarm",
                u * 100.0
            ),
            _ => println!("    the leechers never held every piece between them"),
        }
        println!("    servers (origin and helpers) sent {:.2} copies of the file in all", f.server_copies);
        let r = &f.reaction;
        let at = |t: Option<f64>| t.map_or("never".to_string(), |t| format!("at {t:.1} s"));
        println!(
            "    the origin saw a first leecher {}; a helper was engaged {}, uploaded its first byte {}",
            at(r.crowd_visible),
            at(r.first_engaged),
            at(r.first_helper_byte)
        );
        if let (Some(v), Some(e), Some(b)) = (r.crowd_visible, r.first_engaged, r.first_helper_byte) {
            println!(
                "    reaction, from the crowd visible to the publisher: engaged after {:.1} s, first helper byte after {:.1} s",
                e - v,
                b - v
            );
        }
        for c in &self.by_client {
            let first = c.first_byte_mean.map_or("unseen".into(), |t| format!("{t:.1} s"));
            println!("    {} ({} leechers): mean {:.1} s, first byte {first}", c.client, c.leechers, c.mean);
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
            helpers_empty: 0,
            webseed_up: 0.0,
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
        // Two helpers that start empty add no server: the origin's 40 s binds, as with none.
        assert_eq!(fluid_bound(&Setup { helpers_empty: 2, ..setup(2) }), Some(40.0));
        // ... but their upload counts for the swarm: 32 MB / (200 + 200 + 2 x 200 kB/s) = 40 s.
        let capped = Setup { leecher_up: Some(50_000.0), helpers_empty: 2, ..setup(2) };
        assert_eq!(fluid_bound(&capped), Some(40.0));
        // A web seed of 600 kB/s is a server: 8 MB / 800 kB/s.
        assert_eq!(fluid_bound(&Setup { webseed_up: 600_000.0, ..setup(0) }), Some(10.0));
    }

    #[test]
    fn the_report_compares_with_the_bound() {
        let r = Report::new(vec![40.0, 60.0], 1, 2, 0, &setup(0));
        assert_eq!((r.mean, r.max, r.bound), (50.0, 60.0, Some(40.0)));
        assert_eq!((r.mean_over_bound, r.max_over_bound), (Some(1.25), Some(1.5)));
    }

    #[test]
    fn the_trace_adds_the_floor_and_the_figures_per_client() {
        use crate::leecher::{Kind, Sample};
        let ip = |i| std::net::Ipv4Addr::new(10, 0, 0, i);
        let leechers = vec![("a".into(), Kind::Transmission, ip(1)), ("b".into(), Kind::Libtorrent, ip(2))];
        let mut t = Trace::new(leechers, 8_000_000, 8);
        let s = |done: f64| Some(Sample { done, downloaded: 1, ..Sample::default() });
        t.record(10.0, &[s(0.1), None], Default::default());
        t.record(20.0, &[s(0.5), s(0.2)], Default::default());
        let r = Report::new(vec![40.0, 60.0], 1, 2, 0, &setup(0)).with_trace(&t);
        assert_eq!(r.clients, vec!["transmission", "libtorrent"]);
        assert_eq!(r.first_byte, vec![Some(10.0), Some(20.0)]);
        assert_eq!(r.figures.first_byte_mean, Some(15.0));
        // The bound, 40 s, counted from the mean first byte.
        assert_eq!((r.floor, r.mean_over_floor), (Some(55.0), Some(50.0 / 55.0)));
        let by: Vec<_> = r.by_client.iter().map(|c| (c.client, c.leechers, c.mean, c.first_byte_mean)).collect();
        assert_eq!(by, vec![("transmission", 1, 40.0, Some(10.0)), ("libtorrent", 1, 60.0, Some(20.0))]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (v["first_byte_mean"].as_f64(), v["by_client"][1]["client"].as_str()),
            (Some(15.0), Some("libtorrent"))
        );
    }
}
