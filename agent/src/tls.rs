//! The API's certificate: read from `cert_file` and `key_file`, or made self-signed there at first
//! start (as the token is), with its SHA-256 fingerprint logged and written beside it for the
//! controller's `cert_sha256`.

use crate::config::TlsConfig;
use crate::http::Acceptor;
use odseed_proto::fsutil::write_atomic;
use odseed_proto::tls::{self, Fingerprint};
use std::path::Path;
use std::sync::Arc;

/// The listener's TLS settings (TLS 1.3, the certificate from the config) and its fingerprint.
pub fn acceptor(cfg: &TlsConfig) -> Result<(Acceptor, Fingerprint), String> {
    let fingerprint = load_or_create(cfg)?;
    let certs =
        tls::read_certs(&cfg.cert_file).map_err(|e| format!("tls.cert_file {}: {e}", cfg.cert_file.display()))?;
    let key = tls::read_key(&cfg.key_file).map_err(|e| format!("tls.key_file {}: {e}", cfg.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.cert_file and tls.key_file do not make a usable pair: {e}"))?;
    Ok((Arc::new(config), fingerprint))
}

/// The certificate's fingerprint; the certificate and key are made first if both are missing.
pub fn load_or_create(cfg: &TlsConfig) -> Result<Fingerprint, String> {
    let (cert, key) = (&cfg.cert_file, &cfg.key_file);
    match (cert.exists(), key.exists()) {
        (false, false) => create(cfg)?,
        (true, true) => {}
        (true, false) => return Err(format!("tls.key_file {} is missing (tls.cert_file exists)", key.display())),
        (false, true) => return Err(format!("tls.cert_file {} is missing (tls.key_file exists)", cert.display())),
    }
    let certs = tls::read_certs(cert).map_err(|e| format!("tls.cert_file {}: {e}", cert.display()))?;
    let fingerprint = Fingerprint::of(&certs[0]);
    let file = cfg.fingerprint_file();
    let line = format!("{fingerprint}\n");
    if std::fs::read_to_string(&file).ok().as_deref() != Some(line.as_str()) {
        if let Err(e) = write_atomic(&file, line.as_bytes(), 0o644) {
            log::warn!("tls: cannot write the fingerprint to {}: {e}", file.display());
        }
    }
    Ok(fingerprint)
}

fn create(cfg: &TlsConfig) -> Result<(), String> {
    let (cert, key) = tls::self_signed("odseed-agent")?;
    let write = |path: &Path, text: String, mode: u32| {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        }
        write_atomic(path, text.as_bytes(), mode).map_err(|e| format!("{}: cannot write: {e}", path.display()))
    };
    write(&cfg.key_file, tls::pem("PRIVATE KEY", &key), 0o600)?;
    write(&cfg.cert_file, tls::pem("CERTIFICATE", &cert), 0o644)?;
    log::info!(
        "created a self-signed certificate in {} (SHA-256 {}); give the controller that as cert_sha256",
        cfg.cert_file.display(),
        Fingerprint::of(&cert)
    );
    Ok(())
}
