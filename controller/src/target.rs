//! The torrent a run helps: TORRENT resolved as a `.torrent` file, a 40-hex info hash, or a name in
//! the publisher's client (its copy of the torrent: the file it keeps, or one it exports).

use crate::error::Error;
use crate::publisher::{Entry, Publisher};
use odseed_proto::metainfo::{self, Metainfo};
use odseed_proto::InfoHash;
use std::path::Path;

/// What a run needs of its torrent: its metainfo (to give helpers) and what it says.
#[derive(Debug, Clone)]
pub struct Target {
    pub meta: Metainfo,
    pub bytes: Vec<u8>,
}

/// Resolves TORRENT. `rpc` is the publisher's client, if configured.
pub fn resolve(arg: &str, rpc: Option<&dyn Publisher>) -> Result<Target, Error> {
    find(arg, rpc).map_err(Error::Torrent)
}

fn find(arg: &str, rpc: Option<&dyn Publisher>) -> Result<Target, String> {
    let path = Path::new(arg);
    if path.is_file() {
        return from_file(path);
    }
    let lookup = |what: &str| -> Result<&dyn Publisher, String> {
        rpc.ok_or_else(|| format!("{arg:?} is not a .torrent file; finding {what} needs [client] in the config"))
    };
    let (c, entries): (&dyn Publisher, Vec<Entry>) = if let Ok(hash) = InfoHash::from_hex_any_case(arg) {
        let c = lookup("a torrent by info hash")?;
        let found = c.entries(Some(&[hash]))?;
        if found.is_empty() {
            return Err(format!("no torrent with info hash {hash} in {}", c.name()));
        }
        (c, found)
    } else {
        let c = lookup("a torrent by name")?;
        let named: Vec<Entry> = c.entries(None)?.into_iter().filter(|t| t.name == arg).collect();
        match named.len() {
            0 => return Err(format!("no torrent named {arg:?} in {} (and no such file)", c.name())),
            1 => (c, named),
            n => return Err(format!("{n} torrents are named {arg:?}; pass the info hash or the .torrent file")),
        }
    };
    let entry = &entries[0];
    let t = from_client(c, &entry.hash, entry.file.as_deref())
        .map_err(|e| format!("{e} (the client's copy of the torrent; pass the .torrent file instead)"))?;
    if t.meta.info_hash != entry.hash {
        return Err(format!("the client's copy of {arg:?} is not the torrent it reports ({})", entry.hash));
    }
    Ok(t)
}

/// The client's copy of torrent `hash` (at `file`, if it said where).
pub(crate) fn from_client(c: &dyn Publisher, hash: &InfoHash, file: Option<&Path>) -> Result<Target, String> {
    let bytes = c.torrent(hash, file)?;
    let what = file.map(|f| f.display().to_string()).unwrap_or_else(|| format!("{}'s copy of {hash}", c.name()));
    let meta = metainfo::parse(&bytes).map_err(|e| format!("{what}: {e}"))?;
    Ok(Target { meta, bytes })
}

pub(crate) fn from_file(path: &Path) -> Result<Target, String> {
    // The agents take at most 10 MiB by default; a torrent of 64 MiB is none odseed could place.
    let bytes = odseed_proto::fsutil::read_bounded(path, 64 << 20)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let meta = metainfo::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Target { meta, bytes })
}
