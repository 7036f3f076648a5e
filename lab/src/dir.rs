//! A directory under the system temp dir, removed on drop (kept if ODSEED_KEEP_TEMP is set).

use std::path::{Path, PathBuf};

pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// A new empty directory named `odseed-<prefix>-<random>`.
    pub fn new(prefix: &str) -> std::io::Result<TempDir> {
        let suffix = odseed_proto::fsutil::random_hex(6)?;
        let path = std::env::temp_dir().join(format!("odseed-{prefix}-{suffix}"));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path, keep: std::env::var_os("ODSEED_KEEP_TEMP").is_some() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory after drop (the lab's `--keep`).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
