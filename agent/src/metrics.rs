//! Counters the API keeps, and the Prometheus text format of `GET /metrics`.

use odseed_proto::wire::{DaemonState, Torrent, TorrentState};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Requests answered, by HTTP status.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<u16, u64>>,
}

/// What the agent knows at the moment of a scrape.
pub struct Snapshot<'a> {
    pub torrents: &'a [Torrent],
    pub daemon: DaemonState,
    pub restarts: u64,
    /// Bytes uploaded ever, across releases and restarts.
    pub uploaded_total: u64,
    /// Bytes the machine sent through its interfaces other than loopback, ever.
    pub sent_total: u64,
}

impl Metrics {
    pub fn count(&self, status: u16) {
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()).entry(status).or_default() += 1;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, s: &Snapshot<'_>) -> String {
        let mut out = String::new();
        header(&mut out, "odseed_agent_torrents", "gauge", "Torrents the agent seeds, by state.");
        for state in TorrentState::ALL {
            let n = s.torrents.iter().filter(|t| t.state == state).count();
            let _ = writeln!(out, "odseed_agent_torrents{{state=\"{}\"}} {n}", state.as_str());
        }
        header(
            &mut out,
            "odseed_agent_uploaded_bytes_total",
            "counter",
            "Bytes uploaded, ever (kept across restarts).",
        );
        let _ = writeln!(out, "odseed_agent_uploaded_bytes_total {}", s.uploaded_total);
        header(
            &mut out,
            "odseed_agent_sent_bytes_total",
            "counter",
            "Bytes sent by the machine's interfaces other than loopback, ever (kept across restarts and reboots).",
        );
        let _ = writeln!(out, "odseed_agent_sent_bytes_total {}", s.sent_total);
        header(&mut out, "odseed_agent_uploaded_bytes", "gauge", "Bytes uploaded by the torrents now seeded.");
        let _ =
            writeln!(out, "odseed_agent_uploaded_bytes {}", s.torrents.iter().map(|t| t.uploaded_bytes).sum::<u64>());
        header(&mut out, "odseed_agent_daemon_up", "gauge", "1 while transmission-daemon runs.");
        let _ = writeln!(out, "odseed_agent_daemon_up {}", u8::from(s.daemon == DaemonState::Running));
        header(
            &mut out,
            "odseed_agent_daemon_restarts_total",
            "counter",
            "Times transmission-daemon died and was restarted.",
        );
        let _ = writeln!(out, "odseed_agent_daemon_restarts_total {}", s.restarts);
        header(&mut out, "odseed_agent_requests_total", "counter", "API requests answered, by status.");
        for (status, n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "odseed_agent_requests_total{{status=\"{status}\"}} {n}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use odseed_proto::infohash::InfoHash;

    #[test]
    fn renders_every_family() {
        let m = Metrics::default();
        m.count(200);
        m.count(200);
        m.count(401);
        let t = Torrent {
            info_hash: InfoHash::from_bytes([1; 20]),
            name: "x".into(),
            state: TorrentState::Seeding,
            percent_done: 1.0,
            peers: 0,
            upload_bps: 0,
            uploaded_bytes: 42,
            error: None,
        };
        let text = m.render(&Snapshot {
            torrents: &[t],
            daemon: DaemonState::Running,
            restarts: 3,
            uploaded_total: 99,
            sent_total: 7,
        });
        for line in [
            "odseed_agent_torrents{state=\"seeding\"} 1",
            "odseed_agent_torrents{state=\"queued\"} 0",
            "odseed_agent_uploaded_bytes 42",
            "odseed_agent_uploaded_bytes_total 99",
            "odseed_agent_daemon_up 1",
            "odseed_agent_daemon_restarts_total 3",
            "odseed_agent_requests_total{status=\"200\"} 2",
            "odseed_agent_requests_total{status=\"401\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
