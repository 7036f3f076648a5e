//! Limits the controller sets at run time (`PUT /v1/limits`): the daemon's upload cap, over the
//! config's `[daemon] upload_kbps`, and its download cap (staging). Kept as `<state_dir>/limits.json`, so a daemon or agent restart
//! keeps what was asked; a file that cannot be read is set aside and the config's cap holds.

use odseed_proto::fsutil::{read_bounded, write_atomic};
use odseed_proto::wire::Limits;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The largest cap taken, in kB/s (10 GB/s: more is no cap at all).
pub const MAX_KBPS: u32 = 10_000_000;

#[derive(Debug)]
pub struct Overrides {
    path: PathBuf,
    set: Mutex<Option<Limits>>,
}

impl Overrides {
    pub fn open(state_dir: &Path) -> Overrides {
        let path = state_dir.join("limits.json");
        let set = match read_bounded(&path, 64 << 10) {
            Ok(bytes) => match serde_json::from_slice::<Limits>(&bytes) {
                Ok(l) if l.upload_kbps <= MAX_KBPS && l.download_kbps <= MAX_KBPS => Some(l),
                _ => {
                    let aside = path.with_extension("json.bad");
                    let moved = std::fs::rename(&path, &aside).map_err(|e| e.to_string());
                    log::warn!(
                        "limits: {} is unreadable; set aside ({moved:?}); the config's cap holds",
                        path.display()
                    );
                    None
                }
            },
            Err(_) => None,
        };
        Overrides { path, set: Mutex::new(set) }
    }

    /// What the controller set, if it did.
    pub fn get(&self) -> Option<Limits> {
        *self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `l` (written before it is taken, so a crash loses nothing asked).
    pub fn set(&self, l: Limits) -> std::io::Result<()> {
        write_atomic(&self.path, &serde_json::to_vec(&l).unwrap_or_default(), 0o644)?;
        *self.set.lock().unwrap_or_else(|e| e.into_inner()) = Some(l);
        Ok(())
    }
}
