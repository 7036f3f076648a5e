//! The torrents a loop keeps healthy: for `odseed watch` (`[watch]`), every torrent the
//! publisher's client seeds, or those with `label`, or the `.torrent` files of `dir`; for
//! `odseed run`, its one torrent. Listed every round; only what a round needs is kept (hash, name,
//! size, trackers, where the .torrent is). A torrent's metainfo is read when it is to be helped
//! ([`Catalogue::target`]). The publisher's client is asked here only: its entries (peers,
//! leechers getting from it) come with each listing, and between rounds for a crowd.

use crate::config::Config;
use crate::publisher::{Entry, Publisher};
use crate::target::{self, Target};
use odseed_proto::metainfo;
use odseed_proto::InfoHash;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Entries of `dir` looked at, at most (the rest are left out, with a warning).
const MAX_DIR_ENTRIES: usize = 200_000;
/// A `.torrent` in `dir` larger than this is not read (the agents take 10 MiB by default).
const MAX_TORRENT_BYTES: u64 = 16 << 20;

/// One watched torrent.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub hash: InfoHash,
    pub name: String,
    pub size: u64,
    pub trackers: Vec<String>,
    /// Its .torrent file: the one in `dir`, or the client's copy if it says where (None: the
    /// client gives it, [`Publisher::torrent`]).
    pub file: Option<PathBuf>,
}

/// A round's listing: the torrents, and the publisher's client's entries by hash (for its
/// peers), when it is configured and answered.
pub struct Listing {
    pub items: Vec<Item>,
    pub local: HashMap<InfoHash, Entry>,
}

enum Source {
    /// What the publisher's client seeds, with `label` (its label, category or tag) if given.
    Client {
        label: Option<String>,
    },
    Dir(PathBuf),
    /// `odseed run`'s torrent.
    One(Box<Target>),
}

pub struct Catalogue {
    source: Source,
    client: Option<Arc<dyn Publisher>>,
    max: usize,
    /// `dir`'s files as last parsed, by path: (modified, length, what it gave).
    parsed: HashMap<PathBuf, (SystemTime, u64, Result<Item, String>)>,
    /// Whether "more than max" was said already.
    warned_max: bool,
    /// The client did not answer last round (with `dir`).
    local_failing: bool,
}

impl Catalogue {
    /// The catalogue `cfg` describes; an error (for the user) if it describes none.
    pub fn from_config(cfg: &Config) -> Result<Catalogue, String> {
        let client = crate::publisher::from_config(cfg);
        let source = match (&cfg.watch.dir, &client) {
            (Some(dir), _) => Source::Dir(dir.clone()),
            (None, Some(_)) => Source::Client { label: cfg.watch.label.clone() },
            (None, None) => {
                return Err("`odseed watch` needs a catalogue: [client] (the torrents it seeds), or \
                            [watch] dir = \"a directory of .torrent files\""
                    .into())
            }
        };
        Ok(Catalogue::of(source, client, cfg.watch.max_torrents))
    }

    /// `odseed run`'s catalogue: its one torrent, with the publisher's client if there is one.
    pub fn one(target: Target, client: Option<Arc<dyn Publisher>>) -> Catalogue {
        Catalogue::of(Source::One(Box::new(target)), client, 1)
    }

    fn of(source: Source, client: Option<Arc<dyn Publisher>>, max: usize) -> Catalogue {
        Catalogue { source, client, max, parsed: HashMap::new(), warned_max: false, local_failing: false }
    }

    /// "the torrents qBittorrent at URL seeds (with label x)", "the .torrent files of DIR".
    pub fn describe(&self) -> String {
        let client = || self.client.as_ref().map(|c| c.name()).unwrap_or_default();
        match &self.source {
            Source::Client { label: None } => format!("the torrents {} seeds", client()),
            Source::Client { label: Some(l) } => format!("the torrents {} seeds with label {l:?}", client()),
            Source::Dir(d) => format!("the .torrent files of {}", d.display()),
            Source::One(t) => format!("{} ({})", t.meta.name, t.meta.info_hash),
        }
    }

    /// This round's torrents (at most `max_torrents`, the lowest info hashes first).
    pub fn list(&mut self) -> Result<Listing, String> {
        let entries = match (&self.client, &self.source) {
            (Some(c), Source::Client { .. }) => {
                Some(c.entries(None).map_err(|e| format!("cannot list the torrents: {e}"))?)
            }
            // Otherwise, the client only adds its peers: without it the trackers count.
            (Some(c), _) => match c.entries(self.hashes().as_deref()) {
                Ok(list) => {
                    if std::mem::replace(&mut self.local_failing, false) {
                        log::info!("{} answers again", c.name());
                    }
                    Some(list)
                }
                Err(e) => {
                    if !std::mem::replace(&mut self.local_failing, true) {
                        log::warn!("{e}; counting from the trackers alone until it answers");
                    }
                    None
                }
            },
            (None, _) => None,
        };
        let mut items = match &self.source {
            Source::Client { label } => seeding(entries.as_deref().unwrap_or_default(), label.as_deref()),
            Source::Dir(dir) => {
                let dir = dir.clone();
                self.read_dir(&dir)?
            }
            Source::One(t) => vec![Item {
                hash: t.meta.info_hash,
                name: t.meta.name.clone(),
                size: t.meta.total_size,
                trackers: t.meta.trackers.clone(),
                file: None,
            }],
        };
        items.sort_by_key(|i| i.hash);
        items.dedup_by(|a, b| a.hash == b.hash);
        if items.len() > self.max {
            if !std::mem::replace(&mut self.warned_max, true) {
                log::warn!("{} torrents in the catalogue; watching {} ([watch] max_torrents)", items.len(), self.max);
            }
            items.truncate(self.max);
        }
        let local = entries.unwrap_or_default().into_iter().map(|e| (e.hash, e)).collect();
        Ok(Listing { items, local })
    }

    /// Whether the publisher's client is asked.
    pub fn observes_local(&self) -> bool {
        self.client.is_some()
    }

    /// The leechers the publisher's client sees now, per torrent (empty: none configured, or
    /// no answer): cheap, asked between rounds for a crowd.
    pub fn local_leechers(&self) -> HashMap<InfoHash, u32> {
        let Some(c) = &self.client else { return HashMap::new() };
        c.leechers(self.hashes().as_deref()).unwrap_or_default()
    }

    /// The hashes to ask the client about (`None`: all).
    fn hashes(&self) -> Option<Vec<InfoHash>> {
        match &self.source {
            Source::One(t) => Some(vec![t.meta.info_hash]),
            _ => None,
        }
    }

    /// A torrent's metainfo, read from its file (or asked of the client) and checked against the
    /// listing's hash.
    pub fn target(&self, item: &Item) -> Result<Target, String> {
        let t = match (&self.source, &self.client) {
            (Source::One(t), _) => return Ok(t.as_ref().clone()),
            (Source::Client { .. }, Some(c)) => target::from_client(c.as_ref(), &item.hash, item.file.as_deref())?,
            _ => target::from_file(item.file.as_deref().unwrap_or(Path::new("")))?,
        };
        if t.meta.info_hash != item.hash {
            let file =
                item.file.as_ref().map(|f| f.display().to_string()).unwrap_or_else(|| "the client's copy".into());
            return Err(format!("{file} is not the torrent listed as {}", item.hash));
        }
        Ok(t)
    }

    /// The `.torrent` files of `dir`, each parsed once while it does not change; a bad one is
    /// said once and left out.
    fn read_dir(&mut self, dir: &Path) -> Result<Vec<Item>, String> {
        let read = std::fs::read_dir(dir).map_err(|e| format!("[watch] dir {}: {e}", dir.display()))?;
        let mut seen = HashSet::new();
        for entry in read.take(MAX_DIR_ENTRIES).flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("torrent") {
                continue;
            }
            let Ok(m) = std::fs::metadata(&path) else { continue };
            if !m.is_file() {
                continue;
            }
            let stamp = (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len());
            seen.insert(path.clone());
            if self.parsed.get(&path).is_some_and(|(t, l, _)| (*t, *l) == stamp) {
                continue;
            }
            let item = parse_file(&path, m.len());
            if let Err(why) = &item {
                log::warn!("{why}; not watched");
            }
            self.parsed.insert(path, (stamp.0, stamp.1, item));
        }
        self.parsed.retain(|p, _| seen.contains(p));
        Ok(self.parsed.values().filter_map(|(_, _, i)| i.as_ref().ok().cloned()).collect())
    }
}

fn parse_file(path: &Path, len: u64) -> Result<Item, String> {
    if len > MAX_TORRENT_BYTES {
        return Err(format!("{}: {len} bytes is too large for a .torrent", path.display()));
    }
    let bytes = odseed_proto::fsutil::read_bounded(path, MAX_TORRENT_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let meta = metainfo::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Item {
        hash: meta.info_hash,
        name: meta.name,
        size: meta.total_size,
        trackers: meta.trackers,
        file: Some(path.into()),
    })
}

/// The torrents the publisher's client seeds (complete, seeding or queued to), with `label` (among
/// its groups: label, category or tag) if given.
fn seeding(entries: &[Entry], label: Option<&str>) -> Vec<Item> {
    entries
        .iter()
        .filter(|e| e.seeding)
        .filter(|e| label.is_none_or(|l| e.groups.iter().any(|g| g == l)))
        .map(|e| Item {
            hash: e.hash,
            name: e.name.clone(),
            size: e.size,
            trackers: e.trackers.clone(),
            file: e.file.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_torrents_the_client_seeds_with_the_label() {
        let e = |hash: u8, seeding: bool, labels: &[&str], file: bool| Entry {
            hash: InfoHash::from_bytes([hash; 20]),
            name: format!("t{hash}"),
            size: 7,
            seeding,
            groups: labels.iter().map(|l| l.to_string()).collect(),
            trackers: vec!["http://t/announce".into()],
            file: file.then(|| PathBuf::from(format!("/x/{hash}.torrent"))),
            peers_connected: None,
            leechers: None,
            tracker_counts: None,
        };
        let entries = [
            e(1, true, &["odseed"], true),
            e(2, true, &[], true),
            e(3, false, &["odseed"], true),
            e(4, true, &[], false),
        ];
        let names = |items: Vec<Item>| items.into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(names(seeding(&entries, None)), ["t1", "t2", "t4"], "seeding");
        assert_eq!(names(seeding(&entries, Some("odseed"))), ["t1"]);
        let a = &seeding(&entries, None)[0];
        assert_eq!(
            (a.size, a.trackers.as_slice(), a.file.as_deref()),
            (7, &["http://t/announce".to_string()][..], Some(Path::new("/x/1.torrent")))
        );
    }
}
