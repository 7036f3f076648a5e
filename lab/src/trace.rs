//! What the lab saw of one torrent, second by second: each leecher's progress and pieces, the
//! servers' bytes (origin and helpers), the helpers engaged. From it come the report's account of
//! where the time went ([`Trace::figures`]) and the picture ([`crate::svg`]).

use crate::leecher::{Kind, Sample};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Serialized as the lab's `trace` event (`--json`), from which the benchmark draws its panels.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trace {
    /// Each leecher's name, client and address.
    pub leechers: Vec<(String, Kind, Ipv4Addr)>,
    /// The torrent's size and piece count.
    pub size: u64,
    pub pieces: usize,
    /// Seconds since the leechers started, one per sample.
    pub t: Vec<f64>,
    /// Each leecher's progress (0 to 1) at each sample: `done[leecher][sample]`.
    pub done: Vec<Vec<f64>>,
    /// Helpers engaged at each sample.
    pub helpers: Vec<usize>,
    /// Bytes the origin and the helpers had uploaded, at each sample.
    pub server_bytes: Vec<u64>,
    /// Pieces the leechers held between them, at each sample.
    pub union: Vec<usize>,
    /// When each leecher first had a byte.
    pub first_byte: Vec<Option<f64>>,
    /// When a leecher first received from another leecher.
    pub first_trade: Option<f64>,
    /// When the origin (the publisher's client) first saw a leecher, a helper was first engaged, a
    /// helper first uploaded: how fast odseed reacted.
    #[serde(default)]
    pub reaction: Reaction,
}

/// Seconds from the leechers' start (the crowd's burst, with `--crowd`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    pub crowd_visible: Option<f64>,
    pub first_engaged: Option<f64>,
    pub first_helper_byte: Option<f64>,
}

/// What the servers did by one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Servers {
    /// Bytes the origin and the helpers had uploaded.
    pub bytes: u64,
    /// Of which the helpers'.
    pub helper_bytes: u64,
    /// Helpers engaged.
    pub engaged: usize,
    /// Leechers the origin saw.
    pub origin_leechers: u64,
}

/// Where the time went, from a [`Trace`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Mean over the leechers of the time to their first byte.
    pub first_byte_mean: Option<f64>,
    /// When leechers first traded with each other.
    pub first_trade: Option<f64>,
    /// The servers' bytes until the leechers held every piece between them, in copies of the file.
    pub server_copies_to_cover: Option<f64>,
    /// The share of those bytes that added a piece the leechers lacked (1 = no duplicate).
    pub useful_fraction: Option<f64>,
    /// All the servers' bytes, in copies of the file.
    pub server_copies: f64,
    #[serde(flatten)]
    pub reaction: Reaction,
}

impl Trace {
    pub fn new(leechers: Vec<(String, Kind, Ipv4Addr)>, size: u64, pieces: usize) -> Trace {
        let n = leechers.len();
        Trace { leechers, size, pieces, done: vec![Vec::new(); n], first_byte: vec![None; n], ..Trace::default() }
    }

    /// One sample: `samples[i]` is leecher i's (None: it did not answer; its last progress stands).
    pub fn record(&mut self, t: f64, samples: &[Option<Sample>], servers: Servers) {
        let r = &mut self.reaction;
        if servers.origin_leechers > 0 {
            r.crowd_visible.get_or_insert(t);
        }
        if servers.engaged > 0 {
            r.first_engaged.get_or_insert(t);
        }
        if servers.helper_bytes > 0 {
            r.first_helper_byte.get_or_insert(t);
        }
        let mut union = vec![0u8; self.pieces.div_ceil(8)];
        for (i, s) in samples.iter().enumerate().take(self.leechers.len()) {
            let last = self.done[i].last().copied().unwrap_or(0.0);
            self.done[i].push(s.as_ref().map_or(last, |s| s.done.max(last)));
            let Some(s) = s else { continue };
            if s.downloaded > 0 || s.done > 0.0 {
                self.first_byte[i].get_or_insert(t);
            }
            let from_leecher = s.receiving_from.iter().any(|ip| self.leechers.iter().any(|l| l.2 == *ip));
            if from_leecher && self.first_trade.is_none() {
                self.first_trade = Some(t);
            }
            for (u, b) in union.iter_mut().zip(&s.pieces) {
                *u |= b;
            }
        }
        let have = union.iter().map(|b| b.count_ones() as usize).sum::<usize>().min(self.pieces);
        let have = have.max(self.union.last().copied().unwrap_or(0));
        self.t.push(t);
        self.union.push(have);
        self.server_bytes.push(servers.bytes.max(self.server_bytes.last().copied().unwrap_or(0)));
        self.helpers.push(servers.engaged);
    }

    /// The account of where the time went.
    pub fn figures(&self) -> Figures {
        let firsts: Vec<f64> = self.first_byte.iter().flatten().copied().collect();
        let first_byte_mean = (!firsts.is_empty()).then(|| firsts.iter().sum::<f64>() / firsts.len() as f64);
        let size = self.size.max(1) as f64;
        let covered = self.union.iter().position(|n| *n >= self.pieces && self.pieces > 0);
        let to_cover = covered.map(|i| self.server_bytes[i] as f64 / size);
        Figures {
            first_byte_mean,
            first_trade: self.first_trade,
            server_copies_to_cover: to_cover,
            useful_fraction: to_cover.filter(|c| *c > 0.0).map(|c| (1.0 / c).min(1.0)),
            server_copies: self.server_bytes.last().copied().unwrap_or(0) as f64 / size,
            reaction: self.reaction,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, i)
    }

    fn sample(done: f64, pieces: u8, from: &[Ipv4Addr]) -> Option<Sample> {
        Some(Sample {
            done,
            downloaded: (done * 1000.0) as u64,
            pieces: vec![pieces],
            receiving_from: from.to_vec(),
            ..Sample::default()
        })
    }

    #[test]
    fn the_trace_says_where_the_time_went() {
        let leechers = vec![("a".into(), Kind::Transmission, ip(1)), ("b".into(), Kind::Libtorrent, ip(2))];
        // 8 pieces of 100 bytes.
        let mut t = Trace::new(leechers, 800, 8);
        let servers =
            |bytes, helper_bytes, engaged, origin_leechers| Servers { bytes, helper_bytes, engaged, origin_leechers };
        t.record(0.5, &[None, None], servers(0, 0, 0, 0));
        t.record(1.0, &[sample(0.0, 0, &[]), sample(0.0, 0, &[])], servers(0, 0, 0, 2));
        // a gets two pieces from the origin (ip 9), b one of the same: 300 server bytes, 2 pieces.
        t.record(
            2.0,
            &[sample(0.25, 0b1100_0000, &[ip(9)]), sample(0.125, 0b1000_0000, &[ip(9)])],
            servers(300, 0, 1, 2),
        );
        // b does not answer; a trades with b.
        t.record(3.0, &[sample(0.5, 0b1111_0000, &[ip(2)]), None], servers(900, 100, 1, 2));
        t.record(4.0, &[sample(1.0, 0xff, &[]), sample(1.0, 0xff, &[])], servers(1600, 700, 0, 0));
        assert_eq!(t.first_byte, vec![Some(2.0), Some(2.0)]);
        assert_eq!(t.first_trade, Some(3.0));
        assert_eq!(t.union, vec![0, 0, 2, 4, 8]);
        assert_eq!(t.done[1], vec![0.0, 0.0, 0.125, 0.125, 1.0], "a silent leecher keeps its last progress");
        let reaction = Reaction { crowd_visible: Some(1.0), first_engaged: Some(2.0), first_helper_byte: Some(3.0) };
        assert_eq!(t.reaction, reaction);
        let f = t.figures();
        assert_eq!(f.first_byte_mean, Some(2.0));
        assert_eq!(f.server_copies_to_cover, Some(2.0));
        assert_eq!(f.useful_fraction, Some(0.5));
        assert_eq!(f.server_copies, 2.0);
    }

    #[test]
    fn a_swarm_that_never_held_every_piece_has_no_duplication_figure() {
        let mut t = Trace::new(vec![("a".into(), Kind::Transmission, ip(1))], 800, 8);
        t.record(1.0, &[sample(0.5, 0x0f, &[])], Servers { bytes: 500, ..Servers::default() });
        let f = t.figures();
        assert_eq!((f.server_copies_to_cover, f.useful_fraction, f.first_trade), (None, None, None));
    }
}
