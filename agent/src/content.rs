//! Where a torrent's files go: under `data_dir`, and nowhere else. The metainfo's paths are already
//! safe as text (`odseed_proto::metainfo`); here the disk is checked too, because a symbolic link
//! already in `data_dir` would take the daemon's writes out of it.

use odseed_proto::metainfo::Metainfo;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Checks that no file or directory on the way to `meta`'s files under `data_dir` is a symbolic
/// link (what does not exist yet is fine). The error names the link.
pub fn check_paths(data_dir: &Path, meta: &Metainfo) -> Result<(), String> {
    let mut checked: BTreeSet<PathBuf> = BTreeSet::new();
    for (file, _) in &meta.files {
        let mut at = PathBuf::new();
        for part in file.components() {
            at.push(part);
            if !checked.insert(at.clone()) {
                continue;
            }
            match std::fs::symlink_metadata(data_dir.join(&at)) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(format!("{} in data_dir is a symbolic link", at.display()));
                }
                Ok(_) => {}
                // Nothing there yet: nothing below it either.
                Err(_) => break,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_symlink_anywhere_on_the_way() {
        let dir = std::env::temp_dir().join(format!("odseed-content-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        std::fs::create_dir_all(dir.join("t/sub")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("t/link")).unwrap();
        let meta = |paths: &[&str]| Metainfo {
            info_hash: odseed_proto::InfoHash::from_bytes([0; 20]),
            name: "t".into(),
            total_size: 1,
            piece_length: 1,
            files: paths.iter().map(|p| (PathBuf::from(p), 1)).collect(),
            trackers: Vec::new(),
            hybrid: false,
        };
        assert_eq!(check_paths(&dir, &meta(&["t/sub/a", "t/new/b", "t/c"])), Ok(()));
        let e = check_paths(&dir, &meta(&["t/sub/a", "t/link/passwd"])).unwrap_err();
        assert!(e.contains("t/link"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
