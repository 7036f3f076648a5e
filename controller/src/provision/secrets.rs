//! A provisioned region's secrets and what provision left in S3, kept beside the config in
//! `ec2-<region>/`: the agents' token, their certificate and key (mode 0600, the directory 0700),
//! the bucket provision made, and the objects it put there (for deprovision).

use crate::error::Error;
use odseed_proto::fsutil::{random_hex, read_text_bounded, write_atomic, MAX_SECRET_BYTES};
use odseed_proto::tls::{self, Fingerprint};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub struct Secrets {
    pub dir: PathBuf,
    pub token: String,
    pub token_file: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
    pub pin: Fingerprint,
}

/// `ec2-<region>/` beside the config file.
pub fn dir(config: &Path, region: &str) -> PathBuf {
    config.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).join(format!("ec2-{region}"))
}

fn fail(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::System(format!("{}: cannot {what}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Option<String>, Error> {
    match read_text_bounded(path, tls::MAX_PEM_BYTES) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(path, "read", e)),
    }
}

impl Secrets {
    /// The region's secrets, made the first time.
    pub fn load_or_make(dir: &Path) -> Result<Secrets, Error> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| fail(dir, "create", e))?;
        let token_file = dir.join("token");
        let token = match read_text_bounded(&token_file, MAX_SECRET_BYTES) {
            Ok(t) => t.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let t = random_hex(32).map_err(|e| fail(&token_file, "make a token", e))?;
                write_atomic(&token_file, format!("{t}\n").as_bytes(), 0o600)
                    .map_err(|e| fail(&token_file, "write", e))?;
                t
            }
            Err(e) => return Err(fail(&token_file, "read", e)),
        };
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        let (cert_pem, key_pem) = match (read(&cert_file)?, read(&key_file)?) {
            (Some(c), Some(k)) => (c, k),
            (None, None) => {
                let (cert, key) = tls::self_signed("odseed-helper").map_err(Error::System)?;
                let (c, k) = (tls::pem("CERTIFICATE", &cert), tls::pem("PRIVATE KEY", &key));
                write_atomic(&key_file, k.as_bytes(), 0o600).map_err(|e| fail(&key_file, "write", e))?;
                write_atomic(&cert_file, c.as_bytes(), 0o600).map_err(|e| fail(&cert_file, "write", e))?;
                (c, k)
            }
            _ => {
                return Err(Error::System(format!(
                    "{}: cert.pem and key.pem must both be there, or neither",
                    dir.display()
                )))
            }
        };
        let certs = tls::read_certs(&cert_file).map_err(|e| fail(&cert_file, "use it", e))?;
        Ok(Secrets { dir: dir.to_path_buf(), token, token_file, cert_pem, key_pem, pin: Fingerprint::of(&certs[0]) })
    }

    /// The bucket provision made for this region, made up (and remembered) the first time.
    pub fn bucket(&self) -> Result<String, Error> {
        if let Some(b) = made_bucket(&self.dir) {
            return Ok(b);
        }
        let b = format!("odseed-{}", random_hex(12).map_err(|e| Error::System(format!("no randomness: {e}")))?);
        let file = self.dir.join("bucket");
        write_atomic(&file, format!("{b}\n").as_bytes(), 0o600).map_err(|e| fail(&file, "write", e))?;
        Ok(b)
    }

    /// Notes an object put in S3, for deprovision.
    pub fn remember_object(&self, bucket: &str, key: &str) -> Result<(), Error> {
        let mut all = objects(&self.dir);
        if !all.iter().any(|(b, k)| b == bucket && k == key) {
            all.push((bucket.into(), key.into()));
        }
        let text: String = all.iter().map(|(b, k)| format!("{b} {k}\n")).collect();
        let file = self.dir.join("objects");
        write_atomic(&file, text.as_bytes(), 0o600).map_err(|e| fail(&file, "write", e))
    }
}

pub fn made_bucket(dir: &Path) -> Option<String> {
    let b = read_text_bounded(&dir.join("bucket"), MAX_SECRET_BYTES).ok()?;
    Some(b.trim().to_string()).filter(|b| !b.is_empty())
}

pub fn objects(dir: &Path) -> Vec<(String, String)> {
    let text = read_text_bounded(&dir.join("objects"), tls::MAX_PEM_BYTES).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once(' ')).map(|(b, k)| (b.to_string(), k.to_string())).collect()
}

/// After deprovision: what was in S3 is gone.
pub fn forget_objects(dir: &Path) -> Result<(), Error> {
    for name in ["objects", "bucket"] {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(&dir.join(name), "remove", e)),
            _ => {}
        }
    }
    Ok(())
}
