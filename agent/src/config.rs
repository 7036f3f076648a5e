//! The agent's configuration: TOML at `/etc/odseed/agent.toml` (or `--config PATH`), a typed struct
//! with defaults, unknown keys refused, validated once at start. Errors are one line naming the file,
//! the line and the key.

use odseed_proto::toml_error::toml_error;
use odseed_proto::transmission::DaemonConfig;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/odseed/agent.toml";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// File holding the API's bearer token; created with a random token (mode 0600) if missing.
    pub token_file: PathBuf,
    /// Where torrent content lives (seeded from, downloaded to).
    pub data_dir: PathBuf,
    /// Where the agent keeps what it must seed and the daemon's own files.
    pub state_dir: PathBuf,
    /// Largest `.torrent` accepted by `PUT`, in bytes.
    pub max_torrent_bytes: u64,
    /// Torrents seeded at once.
    pub max_torrents: usize,
    /// The `.torrent` files seeded at once, in bytes together (the daemon keeps their piece hashes
    /// in memory).
    pub max_total_torrent_bytes: u64,
    /// Content the data dir may hold, in bytes: torrents seeded (counted whole) and released (kept
    /// until room is needed, least recently used evicted first).
    pub max_content_bytes: u64,
    /// Bytes left free on the data dir's file system, counting what seeded torrents have yet to
    /// download: a torrent that would take it below is refused (507 `no_space`).
    pub min_free_bytes: u64,
    /// API connections open at once (each has a thread); one more is closed at once.
    pub max_connections: usize,
    /// API connections open at once from one IP address.
    pub max_connections_per_address: usize,
    /// No longer used (one thread per connection, up to `max_connections`); accepted so that old
    /// configs still load, with a warning.
    pub workers: Option<usize>,
    pub daemon: DaemonConfig,
    pub tls: TlsConfig,
}

/// `[tls]`: the API over TLS (for agents reached over the internet, e.g. on EC2). The controller
/// trusts the certificate by its SHA-256 fingerprint, so a self-signed one is the usual choice.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub enabled: bool,
    /// PEM certificate (chain); made self-signed at first start, with `key_file`, if both are missing.
    pub cert_file: PathBuf,
    /// PEM private key (mode 0600).
    pub key_file: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            // Where the unit lets the agent write (its StateDirectory), so it can make them.
            cert_file: PathBuf::from("/var/lib/odseed/tls/cert.pem"),
            key_file: PathBuf::from("/var/lib/odseed/tls/key.pem"),
        }
    }
}

impl TlsConfig {
    /// Where the certificate's fingerprint is written: beside it, as `<name>.sha256`.
    pub fn fingerprint_file(&self) -> PathBuf {
        self.cert_file.with_extension("sha256")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 5050)),
            token_file: PathBuf::from("/etc/odseed/token"),
            data_dir: PathBuf::from("/var/lib/odseed/data"),
            state_dir: PathBuf::from("/var/lib/odseed/state"),
            max_torrent_bytes: 10 << 20,
            max_torrents: 100,
            max_total_torrent_bytes: 32 << 20,
            // A 16 GB SD card: about 3 GB for the system, and room left for logs and updates.
            max_content_bytes: 12_000_000_000,
            min_free_bytes: 500_000_000,
            max_connections: 64,
            max_connections_per_address: 8,
            workers: None,
            daemon: DaemonConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

/// A config file that cannot be used, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = odseed_proto::fsutil::read_text_bounded(path, odseed_proto::fsutil::MAX_CONFIG_BYTES)
            .map_err(|e| ConfigError(format!("config {}: cannot read: {e}", path.display())))?;
        Config::parse(&text).map_err(|m| ConfigError(format!("config {}: {m}", path.display())))
    }

    /// Parses and validates TOML text; the error names the line and key.
    pub fn parse(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        let empty = |p: &Path| p.as_os_str().is_empty();
        for (key, p) in [("token_file", &self.token_file), ("data_dir", &self.data_dir), ("state_dir", &self.state_dir)]
        {
            if empty(p) {
                return Err(format!("`{key}` is empty"));
            }
        }
        if self.data_dir == self.state_dir {
            return Err("`data_dir` and `state_dir` must differ".into());
        }
        if self.max_torrent_bytes < 1024 {
            return Err("`max_torrent_bytes` must be at least 1024".into());
        }
        if self.max_torrents == 0 {
            return Err("`max_torrents` must be at least 1".into());
        }
        if self.max_total_torrent_bytes < self.max_torrent_bytes {
            return Err("`max_total_torrent_bytes` must be at least `max_torrent_bytes`".into());
        }
        if !(1..=1024).contains(&self.max_connections) {
            return Err("`max_connections` must be between 1 and 1024".into());
        }
        if !(1..=self.max_connections).contains(&self.max_connections_per_address) {
            return Err("`max_connections_per_address` must be between 1 and `max_connections`".into());
        }
        if self.tls.enabled {
            if !cfg!(feature = "tls") {
                return Err("`tls.enabled`: this odseed-agent was built without TLS (cargo feature `tls`)".into());
            }
            if empty(&self.tls.cert_file) || empty(&self.tls.key_file) {
                return Err("`tls.cert_file` and `tls.key_file` must not be empty".into());
            }
            if self.tls.cert_file == self.tls.key_file {
                return Err("`tls.cert_file` and `tls.key_file` must differ".into());
            }
        }
        let d = &self.daemon;
        if empty(&d.program) {
            return Err("`daemon.program` is empty".into());
        }
        if d.peer_port == 0 {
            return Err("`daemon.peer_port` must be a port number (1-65535)".into());
        }
        if d.peer_limit == 0 {
            return Err("`daemon.peer_limit` must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn reads_every_key() {
        let c = Config::parse(
            r#"
            listen = "127.0.0.1:6000"
            token_file = "/t"
            data_dir = "/d"
            state_dir = "/s"
            [daemon]
            program = "/usr/bin/transmission-daemon"
            peer_port = 6881
            bind_address = "10.0.0.2"
            cache_mb = 2
            peer_limit = 20
            upload_kbps = 100
            idle_stop_secs = 5
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 6000);
        assert_eq!(c.daemon.peer_port, 6881);
        assert_eq!(c.daemon.upload_kbps, 100);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = Config::parse("listen = \"x:1\"\n").unwrap_err();
        assert!(e.starts_with("line 1, key `listen`:"), "{e}");
        let e = Config::parse("\n[daemon]\npeer_prot = 1\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("peer_prot"), "{e}");
        assert!(!e.contains('\n'));
        let e = Config::parse("[daemon]\npeer_port = 0\n").unwrap_err();
        assert!(e.contains("daemon.peer_port"), "{e}");
        let e = Config::parse("[daemon]\npeer_port = 70000\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(Config::parse("data_dir = \"/x\"\nstate_dir = \"/x\"\n").is_err());
    }
}
