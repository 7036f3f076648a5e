//! The API's bearer token: read from `token_file`, or created there (random, mode 0600) if missing.

use odseed_proto::fsutil::{random_hex, read_text_bounded, MAX_SECRET_BYTES};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Reads the token, creating the file with a fresh random token if it does not exist.
pub fn load_or_create(path: &Path) -> Result<String, String> {
    match read_text_bounded(path, MAX_SECRET_BYTES) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < 16 {
                return Err(format!("token file {}: the token must be at least 16 characters", path.display()));
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
