//! What a run prints: one human line per round on stdout, or with `--json` one JSON object per line
//! (`poll`, `engage`, `release`, `fault`, `exit`). Logs stay on stderr either way.

use crate::helpers::Event;
use crate::policy::{Action, Counts, Decision};
use odseed_proto::printable::printable_line;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

/// A line printed for a person is cut here (an agent's error message could be megabytes).
pub const MAX_LINE_CHARS: usize = 2000;

/// Prints one line for a person on stdout, with outside text escaped (see [`printable_line`]).
pub fn say(text: &str) {
    println!("{}", printable_line(text, MAX_LINE_CHARS));
}

pub struct Printer {
    pub json: bool,
}

impl Printer {
    fn line(&self, text: String) {
        let mut out = std::io::stdout().lock();
        // Faults quote agents and trackers: nothing they send may act on the terminal.
        let _ = writeln!(out, "{}", printable_line(&text, MAX_LINE_CHARS));
        let _ = out.flush();
    }

    /// One round: seeders seen (ours counted apart), leechers, ratio, target, what the policy wants.
    pub fn poll(&self, elapsed: Duration, c: &Counts, helpers: u32, d: &Decision, target: f64, dry_run: bool) {
        if self.json {
            let v = json!({
                "event": "poll", "elapsed": elapsed.as_secs(), "seeders": c.seeders, "helpers": helpers,
                "natural": d.natural, "leechers": c.leechers, "ratio": d.ratio, "target": target,
                "needed": d.needed, "action": action_text(d.action), "dry_run": dry_run,
            });
            return self.line(v.to_string());
        }
        let s = elapsed.as_secs();
        let ratio = d.ratio.map_or("-".to_string(), |r| format!("{r:.2}"));
        let would = if dry_run { "would " } else { "" };
        self.line(format!(
            "[{:>3}m{:02}s] seeders {} ({} ours)  leechers {}  ratio {ratio} / target {target:.2}  needed {}  -> {would}{}",
            s / 60,
            s % 60,
            c.seeders,
            helpers,
            c.leechers,
            d.needed,
            action_text(d.action)
        ));
    }

    /// A round without counts (e.g. every tracker down): helpers are kept as they are.
    pub fn blind(&self, elapsed: Duration, why: &str) {
        if self.json {
            return self.line(json!({"event": "poll", "elapsed": elapsed.as_secs(), "error": why}).to_string());
        }
        let s = elapsed.as_secs();
        self.line(format!("[{:>3}m{:02}s] no counts: {why}; keeping helpers as they are", s / 60, s % 60));
    }

    pub fn event(&self, e: &Event) {
        match (e, self.json) {
            (Event::Engaged(h), true) => self.line(json!({"event": "engage", "helper": h}).to_string()),
            (Event::Released(h), true) => self.line(json!({"event": "release", "helper": h}).to_string()),
            (Event::Fault(m), true) => {
                log::warn!("{m}");
                self.line(json!({"event": "fault", "message": m}).to_string())
            }
            (Event::Engaged(h), false) => self.line(format!("           engaged {h}")),
            (Event::Released(h), false) => self.line(format!("           released {h}")),
            (Event::Fault(m), false) => log::warn!("{m}"),
        }
    }

    /// The instance time a run used, per region.
    pub fn usage(&self, usage: &std::collections::BTreeMap<String, Duration>) {
        for (region, time) in usage {
            let secs = time.as_secs();
            if self.json {
                self.line(json!({"event": "ec2_usage", "region": region, "instance_seconds": secs}).to_string());
            } else {
                self.line(format!("           EC2 {region}: {secs} instance-seconds"));
            }
        }
    }

    pub fn exit(&self, reason: &str) {
        if self.json {
            self.line(json!({"event": "exit", "reason": reason}).to_string());
        } else {
            self.line(format!("           exit: {reason}"));
        }
    }
}

fn action_text(a: Action) -> String {
    match a {
        Action::Exit(r) => format!("exit {r}"),
        Action::Hold => "hold".into(),
        Action::Engage(n) => format!("engage {n}"),
        Action::Release(n) => format!("release {n}"),
    }
}
