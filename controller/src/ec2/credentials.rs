//! AWS credentials and endpoints, from two of the sources AWS's own tools read (not yet the
//! others: ~/.aws/config, SSO, credential_process, web identity, container or instance roles):
//! AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN first, then a profile of the shared
//! credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials). The profile is the
//! config's `profile`, else AWS_PROFILE, else "default". No secret is ever put in a message or a
//! log line.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// Where the environment and files are read from (a seam for tests; `Env::process()` in use).
pub struct Env<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub home: PathBuf,
}

impl Env<'_> {
    pub fn process() -> Env<'static> {
        Env { var: &|k| std::env::var(k).ok().filter(|v| !v.is_empty()), home: crate::xdg::home() }
    }
}

/// The credentials to sign with; `profile` is the config's `[ec2] profile`.
pub fn load(env: &Env, profile: Option<&str>) -> Result<Credentials, String> {
    let var = env.var;
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: var("AWS_SESSION_TOKEN"),
        });
    }
    let name = profile.map(str::to_string).or_else(|| var("AWS_PROFILE")).unwrap_or_else(|| "default".into());
    // A relative path is relative to the working directory, as for AWS's tools; `~/` is home.
    let file = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(|p| match p.strip_prefix("~/") {
            Some(rest) => env.home.join(rest),
            None => PathBuf::from(p),
        })
        .unwrap_or_else(|| env.home.join(".aws/credentials"));
    let text = match odseed_proto::fsutil::read_text_bounded(&file, odseed_proto::fsutil::MAX_CONFIG_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write profile {name:?} in {}",
                file.display()
            ))
        }
        Err(e) => return Err(format!("AWS credentials file {}: {e}", file.display())),
    };
    from_file(&text, &name).map_err(|e| format!("AWS credentials file {}: {e}", file.display()))
}

/// Profile `name` of a credentials file's text.
fn from_file(text: &str, name: &str) -> Result<Credentials, String> {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            let section = section.strip_prefix("profile ").map(str::trim).unwrap_or(section);
            sections.push((section.to_string(), Vec::new()));
            continue;
        }
        // The line is never quoted back: it may hold a secret.
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("line {}: expected `[profile]` or `key = value`", i + 1));
        };
        let Some((_, keys)) = sections.last_mut() else {
            return Err(format!("line {}: a key before any `[profile]`", i + 1));
        };
        keys.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let Some((_, keys)) = sections.iter().rev().find(|(s, _)| s == name) else {
        let known: Vec<&str> = sections.iter().map(|(s, _)| s.as_str()).collect();
        return Err(format!(
            "no profile {name:?} (it has: {})",
            if known.is_empty() { "none".into() } else { known.join(", ") }
        ));
    };
    let get = |k: &str| keys.iter().rev().find(|(key, v)| key == k && !v.is_empty()).map(|(_, v)| v.clone());
    let need = |k: &str| get(k).ok_or_else(|| format!("profile {name:?} has no {k}"));
    Ok(Credentials {
        access_key_id: need("aws_access_key_id")?,
        secret_access_key: need("aws_secret_access_key")?,
        session_token: get("aws_session_token"),
    })
}

/// The EC2 endpoint for `region`: AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, the config's
/// `endpoint_url`, else AWS's own `https://ec2.REGION.amazonaws.com`.
pub fn endpoint(env: &Env, configured: Option<&str>, region: &str) -> Result<String, String> {
    service_endpoint(env, "EC2", configured, region)
}

/// S3's endpoint for `region`, found as EC2's is (`AWS_ENDPOINT_URL_S3` first): path-style requests.
pub fn s3_endpoint(env: &Env, configured: Option<&str>, region: &str) -> Result<String, String> {
    service_endpoint(env, "S3", configured, region)
}

fn service_endpoint(env: &Env, service: &str, configured: Option<&str>, region: &str) -> Result<String, String> {
    let own = format!("AWS_ENDPOINT_URL_{service}");
    let (url, from) = if let Some(u) = (env.var)(&own) {
        (u, own.as_str())
    } else if let Some(u) = (env.var)("AWS_ENDPOINT_URL") {
        (u, "AWS_ENDPOINT_URL")
    } else if let Some(u) = configured {
        (u.to_string(), "`ec2.endpoint_url`")
    } else {
        return Ok(format!("https://{}.{region}.amazonaws.com/", service.to_ascii_lowercase()));
    };
    check_endpoint(&url).map_err(|why| format!("{from} {url:?} is not an endpoint URL: {why}"))?;
    Ok(if url.ends_with('/') { url } else { format!("{url}/") })
}

/// `http(s)://host[:port][/path]`, nothing else.
pub fn check_endpoint(url: &str) -> Result<(), &'static str> {
    let rest =
        url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or("it needs http:// or https://")?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains(['?', '#', '@', ' ']) || rest.contains(['?', '#', ' ']) {
        return Err("it may hold only a host, a port and a path");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err("it has no host");
    }
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err("its port is not a number from 1 to 65535");
    }
    Ok(())
}

/// A region name: lowercase letters, digits and dashes (`eu-west-3`).
pub fn check_region(region: &str) -> Result<(), String> {
    let ok = !region.is_empty()
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("{region:?} is not an AWS region name (like \"eu-west-3\")"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    fn env<'a>(vars: &'a HashMap<&str, String>, home: &Path) -> Env<'a> {
        Env { var: Box::leak(Box::new(move |k: &str| vars.get(k).cloned())), home: home.to_path_buf() }
    }

    fn home_with(credentials: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("odseed-aws-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        std::fs::create_dir_all(d.join(".aws")).unwrap();
        std::fs::write(d.join(".aws/credentials"), credentials).unwrap();
        d
    }

    const FILE: &str = "# mine\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = sEcReT1\n\n[work]\naws_access_key_id=AKWORK\naws_secret_access_key=sEcReT2\naws_session_token = tok\n[broken]\naws_access_key_id = AKB\n";

    #[test]
    fn the_environment_then_the_profile_the_config_or_aws_profile_names() {
        let home = home_with(FILE);
        let mut vars = HashMap::new();
        assert_eq!(load(&env(&vars, &home), None).unwrap().access_key_id, "AKDEFAULT");
        vars.insert("AWS_PROFILE", "work".to_string());
        let work = load(&env(&vars, &home), None).unwrap();
        assert_eq!((work.access_key_id.as_str(), work.session_token.as_deref()), ("AKWORK", Some("tok")));
        assert_eq!(load(&env(&vars, &home), Some("default")).unwrap().access_key_id, "AKDEFAULT", "config's profile");
        vars.insert("AWS_ACCESS_KEY_ID", "AKENV".to_string());
        vars.insert("AWS_SECRET_ACCESS_KEY", "sEcReT3".to_string());
        assert_eq!(load(&env(&vars, &home), None).unwrap().access_key_id, "AKENV");
        assert_eq!(load(&env(&vars, &home), Some("work")).unwrap().access_key_id, "AKENV", "the environment first");
        assert!(!format!("{work:?}").contains("sEcReT"), "Debug shows no secret");
        std::fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn bad_files_and_profiles_say_what_is_wrong_without_the_secret() {
        let home = home_with(FILE);
        let vars = HashMap::new();
        let e = load(&env(&vars, &home), Some("nope")).unwrap_err();
        assert!(e.contains("no profile \"nope\" (it has: default, work, broken)"), "{e}");
        let e = load(&env(&vars, &home), Some("broken")).unwrap_err();
        assert!(e.contains("has no aws_secret_access_key"), "{e}");
        std::fs::write(home.join(".aws/credentials"), "[default]\naws_secret_access_key sEcReT9\n").unwrap();
        let e = load(&env(&vars, &home), None).unwrap_err();
        assert!(e.contains("line 2") && !e.contains("sEcReT"), "{e}");
        std::fs::remove_dir_all(home.join(".aws")).unwrap();
        let e = load(&env(&vars, &home), None).unwrap_err();
        assert!(e.starts_with("no AWS credentials"), "{e}");
        std::fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn endpoints_come_from_the_environment_then_the_config() {
        let home = std::env::temp_dir();
        let mut vars = HashMap::new();
        assert_eq!(endpoint(&env(&vars, &home), None, "eu-west-3").unwrap(), "https://ec2.eu-west-3.amazonaws.com/");
        assert_eq!(endpoint(&env(&vars, &home), Some("http://127.0.0.1:5000"), "x").unwrap(), "http://127.0.0.1:5000/");
        vars.insert("AWS_ENDPOINT_URL", "http://127.0.0.1:1/".to_string());
        assert_eq!(endpoint(&env(&vars, &home), Some("http://x"), "x").unwrap(), "http://127.0.0.1:1/");
        vars.insert("AWS_ENDPOINT_URL_EC2", "https://[::1]:7".to_string());
        assert_eq!(endpoint(&env(&vars, &home), None, "x").unwrap(), "https://[::1]:7/");
        for bad in ["127.0.0.1:5000", "http://", "http://h:99999", "http://h:x", "http://a b", "http://u:p@h"] {
            let e = endpoint(&env(&HashMap::new(), &home), Some(bad), "x").unwrap_err();
            assert!(e.contains("is not an endpoint URL"), "{bad}: {e}");
        }
        assert!(check_region("eu-west-3").is_ok());
        for bad in ["", "EU", "eu west", "-x"] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
    }
}
