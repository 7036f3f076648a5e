//! The API's bearer token: read from `token_file`, or created there (random, mode 0600) if missing.

use odseed_proto::fsutil::{random_hex, read_text_bounded, MAX_SECRET_BYTES};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The shortest token accepted.
pub const MIN_LEN: usize = 16;

/// Checks a token file that exists (a config error, exit 2, if its token is too short or it cannot
/// be read); a missing one is fine: the agent creates it.
pub fn check(path: &Path) -> Result<(), String> {
    match read_text_bounded(path, MAX_SECRET_BYTES) {
        Ok(text) if text.trim().chars().count() < MIN_LEN => Err(too_short(path)),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("token file {}: cannot read: {e}", path.display())),
    }
}

fn too_short(path: &Path) -> String {
    format!("token file {}: the token must be at least {MIN_LEN} characters", path.display())
}

/// Reads the token, creating the file with a fresh random token if it does not exist.
pub fn load_or_create(path: &Path) -> Result<String, String> {
    match read_text_bounded(path, MAX_SECRET_BYTES) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.chars().count() < MIN_LEN {
                return Err(too_short(path));
            }
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    log::warn!("token file {} is readable by others; chmod 600 it", path.display());
                }
            }
            Ok(token)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create(path).map_err(|e| format!("token file {}: cannot create: {e}", path.display()))
        }
        Err(e) => Err(format!("token file {}: cannot read: {e}", path.display())),
    }
}

fn create(path: &Path) -> io::Result<String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let token = random_hex(32)?;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    log::info!("created a new API token in {}", path.display());
    Ok(token)
}
