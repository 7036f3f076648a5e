//! AWS's shared config and credentials files, as AWS's tools read them: `AWS_CONFIG_FILE` (else
//! `~/.aws/config`: `[default]`, `[profile NAME]`, `[sso-session NAME]`) and
//! `AWS_SHARED_CREDENTIALS_FILE` (else `~/.aws/credentials`: `[NAME]`). A profile is the union of
//! its sections in both files; for a key in both, the credentials file wins. Indented lines under
//! a key with no value (`s3 =` and its sub-keys) are sub-settings odseed has no use for. No line is
//! ever quoted back in an error: it may hold a secret.

use super::Env;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One profile's keys (lowercase), with the file each came from.
#[derive(Debug, Default, Clone)]
pub struct Profile {
    keys: BTreeMap<String, (String, PathBuf)>,
}

impl Profile {
    /// A key's value, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(|(v, _)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// The file `key` was read from.
    pub fn file_of(&self, key: &str) -> Option<&Path> {
        self.keys.get(key).map(|(_, f)| f.as_path())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Both files, read once.
#[derive(Debug, Default)]
pub struct Files {
    pub config: PathBuf,
    pub credentials: PathBuf,
    profiles: BTreeMap<String, Profile>,
    sso_sessions: BTreeMap<String, Profile>,
}

impl Files {
    /// Reads both files; a file that does not exist is empty, one that cannot be read or parsed is
    /// an error naming it.
    pub fn read(env: &Env) -> Result<Files, String> {
        let path = |var: &str, default: &str| match env.var(var) {
            Some(p) => match p.strip_prefix("~/") {
                Some(rest) => env.home.join(rest),
                None => PathBuf::from(p),
            },
            None => env.home.join(default),
        };
        let mut files = Files {
            config: path("AWS_CONFIG_FILE", ".aws/config"),
            credentials: path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            ..Files::default()
        };
        let config = files.config.clone();
        for (section, keys) in sections(&config)? {
            let (kind, name) = match section.split_once(char::is_whitespace) {
                Some(("profile", name)) => ("profile", name.trim()),
                Some(("sso-session", name)) => ("sso-session", name.trim()),
                _ if section == "default" => ("profile", "default"),
                // Other sections (`[services x]`, a bare `[name]`) are not profiles in this file.
                _ => continue,
            };
            let into = if kind == "profile" { &mut files.profiles } else { &mut files.sso_sessions };
            let p = into.entry(name.to_string()).or_default();
            for (k, v) in keys {
                p.keys.entry(k).or_insert((v, config.clone()));
            }
        }
        let credentials = files.credentials.clone();
        for (section, keys) in sections(&credentials)? {
            let p = files.profiles.entry(section).or_default();
            for (k, v) in keys {
                p.keys.insert(k, (v, credentials.clone()));
            }
        }
        Ok(files)
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    pub fn sso_session(&self, name: &str) -> Option<&Profile> {
        self.sso_sessions.get(name)
    }

    /// The profiles' names, for an error that says which there are.
    pub fn names(&self) -> Vec<&str> {
        self.profiles.keys().map(String::as_str).collect()
    }

    /// Where profiles are looked for, for an error.
    pub fn where_(&self) -> String {
        format!("{} or {}", self.credentials.display(), self.config.display())
    }
}

type Sections = Vec<(String, Vec<(String, String)>)>;

/// A file's sections in order (the last of two sections of one name adds to and overrides the
/// first, as in AWS's tools); no file is no sections.
fn sections(file: &Path) -> Result<Sections, String> {
    let text = match odseed_proto::fsutil::read_text_bounded(file, odseed_proto::fsutil::MAX_CONFIG_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("AWS file {}: {e}", file.display())),
    };
    parse(&text).map_err(|e| format!("AWS file {}: {e}", file.display()))
}

fn parse(text: &str) -> Result<Sections, String> {
    let mut out: Sections = Vec::new();
    // Whether the last key had no value: indented lines after it are its sub-settings.
    let mut in_sub = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if in_sub && raw.starts_with([' ', '\t']) {
            continue;
        }
        in_sub = false;
        if let Some(section) = line.strip_prefix('[') {
            let Some(section) = section.split_once(']').map(|(s, _)| s.trim()) else {
                return Err(format!("line {}: a `[` section name without its `]`", i + 1));
            };
            out.push((section.split_whitespace().collect::<Vec<_>>().join(" "), Vec::new()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("line {}: expected `[section]` or `key = value`", i + 1));
        };
        let Some((_, keys)) = out.last_mut() else {
            return Err(format!("line {}: a key before any `[section]`", i + 1));
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        in_sub = v.is_empty();
        // An inline comment needs a space before it (AWS's tools: `key = value # comment`).
        let v = v.split(" #").next().unwrap_or(v).split(" ;").next().unwrap_or(v).trim();
        keys.retain(|(key, _)| *key != k);
        keys.push((k, v.to_string()));
    }
    // Sections of one name: merged, the later one's keys winning.
    let mut merged: Sections = Vec::new();
    for (name, keys) in out {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => {
                for (k, v) in keys {
                    old.retain(|(key, _)| *key != k);
                    old.push((k, v));
                }
            }
            None => merged.push((name, keys)),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_sub_settings_and_comments() {
        let s = parse("# top\n[profile a]\nregion = eu-west-3 # here\ns3 =\n  max_concurrent_requests = 20\n  x = y\nrole_arn=arn:aws:iam::1:role/r\n[profile   a]\nregion = us-east-1\n[default]\nk=v;x\n").unwrap();
        assert_eq!(s.len(), 2);
        let a = &s[0].1;
        assert_eq!(s[0].0, "profile a");
        assert!(a.contains(&("region".into(), "us-east-1".into())), "{a:?}");
        assert!(a.contains(&("s3".into(), "".into())));
        assert!(!a.iter().any(|(k, _)| k == "max_concurrent_requests" || k == "x"), "{a:?}");
        assert!(a.contains(&("role_arn".into(), "arn:aws:iam::1:role/r".into())));
        assert_eq!(s[1].1, vec![("k".to_string(), "v;x".to_string())], "a `;` without a space is the value's");
        for (bad, why) in
            [("k = v\n", "line 1: a key before"), ("[a\n", "line 1: a `[`"), ("[a]\nsecret\n", "line 2: expected")]
        {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with(why), "{bad:?}: {e}");
            assert!(!e.contains("secret"));
        }
    }

    #[test]
    fn a_profile_is_both_files_together_the_credentials_file_winning() {
        let d = std::env::temp_dir().join(format!("odseed-aws-files-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        std::fs::create_dir_all(d.join(".aws")).unwrap();
        std::fs::write(
            d.join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile w]\nregion = eu-west-3\naws_access_key_id = FROMCONFIG\n[w]\nregion = nope\n[sso-session corp]\nsso_region = eu-central-1\n",
        )
        .unwrap();
        std::fs::write(d.join(".aws/credentials"), "[w]\naws_access_key_id = FROMCREDS\n[profile x]\nk = v\n").unwrap();
        let env = Env::with(&[], &d);
        let f = Files::read(&env).unwrap();
        let w = f.profile("w").unwrap();
        assert_eq!(w.get("region"), Some("eu-west-3"), "`[w]` in the config file is not profile w");
        assert_eq!(w.get("aws_access_key_id"), Some("FROMCREDS"));
        assert_eq!(w.file_of("aws_access_key_id"), Some(d.join(".aws/credentials").as_path()));
        assert_eq!(f.profile("default").unwrap().get("region"), Some("eu-west-1"));
        assert!(f.profile("profile x").is_some(), "the credentials file takes its names as they are");
        assert_eq!(f.sso_session("corp").unwrap().get("sso_region"), Some("eu-central-1"));
        let env =
            Env::with(&[("AWS_CONFIG_FILE", "/nonexistent/c"), ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/k")], &d);
        assert!(Files::read(&env).unwrap().names().is_empty(), "no files: no profiles");
        std::fs::remove_dir_all(d).unwrap();
    }
}
