//! Which transmission-daemon this is: from `transmission-daemon --version` before it runs, then from
//! `session-get` (`version`, `rpc-version`) once it answers. What differs between the versions
//! odseed drives is decided here, in one place.

use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// As the daemon says it, e.g. "3.00 (bb6b5a062e)" or "4.1.0-beta.2 (ac5c9e082d)".
    pub text: String,
    pub major: u32,
    /// The RPC version (`rpc-version`: 15 for 3.00, 17 for 4.0, 18 for 4.1), once known.
    pub rpc: Option<u64>,
}

impl Version {
    /// From "transmission-daemon 3.00 (bb6b5a062e)" or "4.1.0-beta.2 (ac5c9e082d)".
    pub fn parse(text: &str) -> Option<Version> {
        let line = text.lines().find(|l| !l.trim().is_empty())?.trim();
        let line = line.strip_prefix("transmission-daemon").unwrap_or(line).trim();
        let major = line.split('.').next()?.parse().ok()?;
        let text: String = line.chars().filter(|c| !c.is_control()).take(64).collect();
        Some(Version { text, major, rpc: None })
    }

    /// From a `session-get` answer's arguments.
    pub fn from_session(session: &Value) -> Option<Version> {
        let mut v = Version::parse(session.get("version")?.as_str()?)?;
        v.rpc = session.get("rpc-version").and_then(Value::as_u64);
        Some(v)
    }

    /// Whether it opens hybrid v1+v2 torrents (BEP 52): 4.0 and later; 3.00 calls them corrupt.
    pub fn opens_hybrid(&self) -> bool {
        self.major >= 4
    }
}

/// Runs `program --version` (both versions print it on stderr) for at most `timeout`.
pub fn probe(program: &Path, timeout: Duration) -> Result<Version, String> {
    let mut child = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} --version: {e}", program.display()))?;
    let deadline = Instant::now() + timeout;
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} --version did not answer within {}s", program.display(), timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Vec::new();
    for pipe in
        [child.stderr.take().map(|p| Box::new(p) as Box<dyn Read>), child.stdout.take().map(|p| Box::new(p) as _)]
            .into_iter()
            .flatten()
    {
        let _ = pipe.take(4096).read_to_end(&mut out);
    }
    let text = String::from_utf8_lossy(&out);
    Version::parse(&text).ok_or_else(|| format!("{} --version said {:?}", program.display(), text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms() {
        let v = Version::parse("transmission-daemon 3.00 (bb6b5a062e)\n").unwrap();
        assert_eq!((v.text.as_str(), v.major, v.opens_hybrid()), ("3.00 (bb6b5a062e)", 3, false));
        let s = serde_json::json!({"version": "4.1.0-beta.2 (ac5c9e082d)", "rpc-version": 18});
        let v = Version::from_session(&s).unwrap();
        assert_eq!((v.major, v.rpc, v.opens_hybrid()), (4, Some(18), true));
        assert_eq!(Version::parse("Usage: x"), None);
        assert_eq!(Version::parse(""), None);
    }
}
