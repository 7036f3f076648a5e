//! What a run prints: one human line per round on stdout, or with `--json` one JSON object per line
//! (`poll`, `engage`, `release`, `fault`, `exit`). Logs stay on stderr either way.

use crate::budget::Standing;
use crate::catalogue::Item;
use crate::helpers::Event;
use crate::policy::{Action, Counts, Decision};
use odseed_proto::printable::printable_line;
use odseed_proto::InfoHash;
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

/// A line printed for a person is cut here (an agent's error message could be megabytes).
pub const MAX_LINE_CHARS: usize = 2000;

/// A string field of machine output is cut after this many characters (an agent's error message
/// could be megabytes): by field, so that the line stays one JSON object.
pub const MAX_FIELD_CHARS: usize = 2000;

/// One line of valid JSON from `v`, whatever outside text it carries: each string cut at
/// [`MAX_FIELD_CHARS`], and besides serde_json's escapes (quotes, backslashes, C0 controls), C1
/// controls, bidirectional marks and overrides and line separators written as `\u` escapes, so
/// that no terminal or log acts on them and the line reads the same.
pub fn json_line(mut v: serde_json::Value) -> String {
    cut_strings(&mut v);
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // Outside a string serde_json writes none of these: each is inside one, where \u is valid.
        if matches!(c, '\u{80}'..='\u{9f}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn cut_strings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.chars().count() > MAX_FIELD_CHARS => {
            let cut: String = s.chars().take(MAX_FIELD_CHARS).collect();
            *s = cut + "...";
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(cut_strings),
        serde_json::Value::Object(o) => o.values_mut().for_each(cut_strings),
        _ => {}
    }
}

/// Prints one line for a person on stdout, with outside text escaped (see [`printable_line`]).
pub fn say(text: &str) {
    println!("{}", printable_line(text, MAX_LINE_CHARS));
}

pub struct Printer {
    pub json: bool,
}

/// EC2's dollars, for a round's line: this run's (or watch's) and the month's, with its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Money {
    pub run: f64,
    /// `None`: the budget file could not be read.
    pub month: Option<f64>,
    pub limit: Option<f64>,
}

impl Money {
    /// "  $0.42 this run, $3.10 of $20.00 this month".
    fn text(&self) -> String {
        let month = match (self.month, self.limit) {
            (Some(m), Some(l)) => format!(", ${m:.2} of ${l:.2} this month"),
            (Some(m), None) => format!(", ${m:.2} this month"),
            (None, _) => String::new(),
        };
        format!("  ${:.2} this run{month}", self.run)
    }

    fn fields(m: Option<&Money>) -> serde_json::Value {
        json!({"dollars_run": m.map(|m| m.run), "dollars_month": m.and_then(|m| m.month), "dollars_limit": m.and_then(|m| m.limit)})
    }
}

/// What a `watch` round saw, for its line.
pub struct RoundSummary {
    pub elapsed: Duration,
    pub torrents: usize,
    pub blind: usize,
    pub needing_help: usize,
    pub boards_busy: usize,
    pub boards: usize,
    pub instances: u32,
    pub max_instances: u32,
    pub budget: Option<Standing>,
    pub money: Option<Money>,
    pub dry_run: bool,
}

/// What a `watch` round decided for one torrent, for its line.
pub struct TorrentRound<'a> {
    pub item: &'a Item,
    pub counts: Counts,
    pub decision: Decision,
    pub wanted: u32,
    pub boards: Vec<String>,
    pub instances: u32,
    /// Boards that hold it whole.
    pub held: u32,
}

impl Printer {
    /// A line for a person: outside text in it escaped, cut at [`MAX_LINE_CHARS`].
    fn line(&self, text: String) {
        let mut out = std::io::stdout().lock();
        // Faults quote agents and trackers: nothing they send may act on the terminal.
        let _ = writeln!(out, "{}", printable_line(&text, MAX_LINE_CHARS));
        let _ = out.flush();
    }

    /// A line for a program: one JSON object, whatever outside text it carries ([`json_line`]).
    fn json(&self, v: serde_json::Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", json_line(v));
        let _ = out.flush();
    }

    /// One round: seeders seen (ours counted apart), leechers, ratio, target, what the policy
    /// wants, boards that hold the torrent whole, and with EC2 what it cost.
    pub fn poll(
        &self,
        elapsed: Duration,
        c: &Counts,
        (helpers, held): (u32, u32),
        d: &Decision,
        (target, dry_run): (f64, bool),
        money: Option<&Money>,
    ) {
        if self.json {
            let mut v = json!({
                "event": "poll", "elapsed": elapsed.as_secs(), "seeders": c.seeders, "helpers": helpers,
                "natural": d.natural, "leechers": c.leechers, "ratio": d.ratio, "target": target,
                "needed": d.needed, "action": action_text(d.action), "dry_run": dry_run, "held": held,
            });
            if money.is_some() {
                merge(&mut v, Money::fields(money));
            }
            return self.json(v);
        }
        let s = elapsed.as_secs();
        let ratio = d.ratio.map_or("-".to_string(), |r| format!("{r:.2}"));
        let would = if dry_run { "would " } else { "" };
        self.line(format!(
            "[{:>3}m{:02}s] seeders {} ({} ours)  leechers {}  ratio {ratio} / target {target:.2}  needed {}  held by {held}  -> {would}{}{}",
            s / 60,
            s % 60,
            c.seeders,
            helpers,
            c.leechers,
            d.needed,
            action_text(d.action),
            money.map(Money::text).unwrap_or_default(),
        ));
    }

    /// A round without counts (e.g. every tracker down): helpers are kept as they are.
    pub fn blind(&self, elapsed: Duration, why: &str) {
        if self.json {
            return self.json(json!({"event": "poll", "elapsed": elapsed.as_secs(), "error": why}));
        }
        let s = elapsed.as_secs();
        self.line(format!("[{:>3}m{:02}s] no counts: {why}; keeping helpers as they are", s / 60, s % 60));
    }

    /// A helper event about `item`: naming it when `per_torrent` (`watch`), plain for `run`.
    pub fn helper(&self, e: &Event, item: &Item, per_torrent: bool) {
        match per_torrent {
            true => self.event_on(e, &item.hash, &item.name),
            false => self.event(e),
        }
    }

    /// A helper event about one torrent of `odseed watch`.
    pub fn event_on(&self, e: &Event, hash: &InfoHash, name: &str) {
        match (e, self.json) {
            (Event::Engaged(h), true) => {
                self.json(json!({"event": "engage", "helper": h, "info_hash": hash, "torrent": name}))
            }
            (Event::Released(h), true) => {
                self.json(json!({"event": "release", "helper": h, "info_hash": hash, "torrent": name}))
            }
            (Event::Fault(m), true) => {
                log::warn!("{m}");
                self.json(json!({"event": "fault", "message": m, "info_hash": hash, "torrent": name}))
            }
            (Event::Engaged(h), false) => self.line(format!("           engaged {h} for {name} ({})", short(hash))),
            (Event::Released(h), false) => self.line(format!("           released {h} from {name} ({})", short(hash))),
            (Event::Fault(m), false) => log::warn!("{name}: {m}"),
        }
    }

    /// One round of `odseed watch`.
    pub fn round(&self, r: &RoundSummary) {
        let budget_hours = r.budget.as_ref().and_then(|b| b.left).map(|l| l.as_secs_f64() / 3600.0);
        if self.json {
            let v = json!({
                "event": "round", "elapsed": r.elapsed.as_secs(), "torrents": r.torrents, "blind": r.blind,
                "needing_help": r.needing_help, "boards_busy": r.boards_busy, "boards": r.boards,
                "instances": r.instances, "max_instances": r.max_instances,
                "budget_left_hours": budget_hours, "dry_run": r.dry_run,
            });
            let mut v = v;
            if r.money.is_some() {
                merge(&mut v, Money::fields(r.money.as_ref()));
            }
            return self.json(v);
        }
        let s = r.elapsed.as_secs();
        let blind = if r.blind > 0 { format!(" ({} not counted)", r.blind) } else { String::new() };
        let budget = match budget_hours {
            Some(h) => format!("  EC2 budget left {h:.1} h"),
            None => String::new(),
        };
        let would = if r.dry_run { " (dry run)" } else { "" };
        let money = r.money.as_ref().map(Money::text).unwrap_or_default();
        self.line(format!(
            "[{:>3}h{:02}m{:02}s] torrents {}{blind}  needing help {}  helpers busy: boards {}/{}, instances {}/{}{budget}{money}{would}",
            s / 3600,
            s / 60 % 60,
            s % 60,
            r.torrents,
            r.needing_help,
            r.boards_busy,
            r.boards,
            r.instances,
            r.max_instances,
        ));
    }

    /// One torrent of a `watch` round that wants help or has it.
    pub fn torrent(&self, t: &TorrentRound) {
        let (c, d) = (&t.counts, &t.decision);
        if self.json {
            let v = json!({
                "event": "torrent", "info_hash": t.item.hash, "torrent": t.item.name, "seeders": c.seeders,
                "leechers": c.leechers, "natural": d.natural, "ratio": d.ratio, "wanted": t.wanted,
                "boards": t.boards, "instances": t.instances, "held": t.held,
            });
            return self.json(v);
        }
        let ratio = d.ratio.map_or("-".to_string(), |r| format!("{r:.2}"));
        let mut given: Vec<String> = t.boards.clone();
        if t.instances > 0 {
            given.push(format!("{} instance(s)", t.instances));
        }
        let given = if given.is_empty() { "nothing".to_string() } else { given.join(", ") };
        self.line(format!(
            "           {} ({}): seeders {} ({} ours) leechers {} ratio {ratio} held by {} -> wants {}, gets {given}",
            t.item.name,
            short(&t.item.hash),
            c.seeders,
            c.seeders.saturating_sub(d.natural),
            c.leechers,
            t.held,
            t.wanted
        ));
    }

    pub fn event(&self, e: &Event) {
        match (e, self.json) {
            (Event::Engaged(h), true) => self.json(json!({"event": "engage", "helper": h})),
            (Event::Released(h), true) => self.json(json!({"event": "release", "helper": h})),
            (Event::Fault(m), true) => {
                log::warn!("{m}");
                self.json(json!({"event": "fault", "message": m}))
            }
            (Event::Engaged(h), false) => self.line(format!("           engaged {h}")),
            (Event::Released(h), false) => self.line(format!("           released {h}")),
            (Event::Fault(m), false) => log::warn!("{m}"),
        }
    }

    /// What each instance a run stopped cost.
    pub fn bills(&self, bills: &[crate::price::Bill]) {
        for b in bills {
            let (secs, gb) = (b.used.seconds.round(), b.used.bytes_out as f64 / 1e9);
            if self.json {
                let v = json!({"event": "ec2_cost", "instance": b.id, "region": b.region, "instance_seconds": secs,
                    "bytes_out": b.used.bytes_out, "dollars": b.dollars});
                self.json(v);
            } else {
                self.line(format!(
                    "           EC2 {} ({}): {secs} s, {gb:.3} GB out, ${:.4}",
                    b.id, b.region, b.dollars
                ));
            }
        }
    }

    /// The instance time a run used, per region.
    pub fn usage(&self, usage: &std::collections::BTreeMap<String, Duration>) {
        for (region, time) in usage {
            let secs = time.as_secs();
            if self.json {
                self.json(json!({"event": "ec2_usage", "region": region, "instance_seconds": secs}));
            } else {
                self.line(format!("           EC2 {region}: {secs} instance-seconds"));
            }
        }
    }

    /// A helper staging `name` holds it whole, `after` its start.
    pub fn staged(&self, helper: &str, (hash, name): (&InfoHash, &str), after: Duration) {
        if self.json {
            let v = json!({"event": "staged", "helper": helper, "info_hash": hash, "torrent": name, "seconds": after.as_secs()});
            return self.json(v);
        }
        self.line(format!("           {helper} holds {name} whole after {} s", after.as_secs()));
    }

    /// `watch` starts staging `name` on `helper` (it is engaged next), or stops before it is whole.
    pub fn staging(&self, helper: &str, (hash, name): (&InfoHash, &str), stopped: Option<&str>) {
        match (stopped, self.json) {
            (None, true) => self.json(json!({"event": "stage", "helper": helper, "info_hash": hash, "torrent": name})),
            (Some(why), true) => self.json(
                json!({"event": "stage_stopped", "helper": helper, "info_hash": hash, "torrent": name, "reason": why}),
            ),
            (None, false) => self.line(format!("           staging {name} on {helper}")),
            (Some(why), false) => self.line(format!("           {helper} stops staging {name}: {why}")),
        }
    }

    pub fn exit(&self, reason: &str) {
        if self.json {
            self.json(json!({"event": "exit", "reason": reason}));
        } else {
            self.line(format!("           exit: {reason}"));
        }
    }
}

/// The first 8 hex digits of a hash, for a person.
fn short(hash: &InfoHash) -> String {
    hash.to_string().chars().take(8).collect()
}

fn action_text(a: Action) -> String {
    match a {
        Action::Exit(r) => format!("exit {r}"),
        Action::Hold => "hold".into(),
        Action::Engage(n) => format!("engage {n}"),
        Action::Release(n) => format!("release {n}"),
    }
}

/// Adds `extra`'s fields to the object `v`.
fn merge(v: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_lines_are_json_whatever_they_carry() {
        let worst = format!("a\u{1b}]0;x\u{7}\n\u{9b}2J\u{202e}evil\u{2028}{}", "z".repeat(1 << 20));
        let line = json_line(json!({"event": "fault", "message": worst, "list": [worst.clone()]}));
        assert!(!line.contains('\n') && line.len() < 3 * MAX_FIELD_CHARS, "one short line");
        for c in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}', '\u{2028}'] {
            assert!(!line.contains(c), "{c:?} written raw");
        }
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        let message = back["message"].as_str().unwrap();
        assert!(message.starts_with("a\u{1b}]0;x\u{7}\n\u{9b}2J\u{202e}evil\u{2028}z") && message.ends_with("zzz..."));
        assert_eq!(message.chars().count(), MAX_FIELD_CHARS + 3);
        assert_eq!(back["list"][0], back["message"]);
    }
}
