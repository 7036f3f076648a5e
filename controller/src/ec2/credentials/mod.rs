//! AWS credentials, found as AWS's own tools find them, in AWS's order: the environment
//! (`AWS_ACCESS_KEY_ID`, ...), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), a
//! profile of the shared config and credentials files (static keys, `credential_process`,
//! `role_arn` with `source_profile` or `credential_source` through STS AssumeRole, SSO), a
//! container's credentials, then the EC2 instance's role (IMDSv2). The profile is the config's
//! `profile`, else `AWS_PROFILE`, else "default". [`Provider`] keeps what it found and renews
//! temporary credentials before they expire. No secret is ever put in a message or a log line.

mod files;
mod metadata;
mod process;
mod provider;
mod sso;
mod sts;

pub use files::Files;
pub use provider::{Missing, Provider};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// When temporary credentials stop working.
    pub expires: Option<SystemTime>,
}

impl Credentials {
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Credentials {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            expires: None,
        }
    }
}

impl Credentials {
    /// Credentials as AWS's services and tools write them: neither key empty, an empty token as
    /// none, the expiry in RFC 3339. `what` names the answer in an error ("its output").
    pub fn from_parts(
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        expiration: Option<&str>,
        what: &str,
    ) -> Result<Credentials, String> {
        if access_key_id.is_empty() || secret_access_key.is_empty() {
            return Err(format!("{what} has empty credentials"));
        }
        let expires = match expiration {
            Some(t) => Some(parse_time(t).map_err(|e| format!("{what}'s Expiration: {e}"))?),
            None => None,
        };
        Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: session_token.filter(|t| !t.is_empty()),
            expires,
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Credentials and where they came from (never a secret: a profile, a file, a role).
#[derive(Debug, Clone)]
pub struct Found {
    pub credentials: Credentials,
    pub source: String,
}

/// The environment and home the chain reads (a seam for tests; [`Env::process`] in use).
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    pub home: PathBuf,
}

impl Env {
    /// This process's `AWS_*` variables and home.
    pub fn process() -> Env {
        let vars = std::env::vars().filter(|(k, v)| k.starts_with("AWS_") && !v.is_empty()).collect();
        Env { vars, home: crate::xdg::home() }
    }

    pub fn with(vars: &[(&str, &str)], home: &Path) -> Env {
        Env { vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), home: home.to_path_buf() }
    }

    pub fn var(&self, k: &str) -> Option<String> {
        self.vars.get(k).filter(|v| !v.is_empty()).cloned()
    }
}

/// An RFC 3339 time (`2026-12-07T10:00:00Z`), as AWS writes expiries.
pub fn parse_time(t: &str) -> Result<SystemTime, String> {
    use aws_smithy_types::date_time::{DateTime, Format};
    let bad = || format!("{:?} is not an RFC 3339 time", odseed_proto::printable::printable_line(t, 40));
    let dt = DateTime::from_str(t.trim(), Format::DateTime).map_err(|_| bad())?;
    SystemTime::try_from(dt).map_err(|_| bad())
}

/// `t` as RFC 3339 (UTC, seconds).
pub fn format_time(t: SystemTime) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DateTime::from_secs(secs as i64).fmt(Format::DateTime).unwrap_or_default()
}

/// ", expiring at T (in N min)" for temporary credentials, "" for lasting ones.
pub fn expiry_text(expires: Option<SystemTime>) -> String {
    match expires {
        None => String::new(),
        Some(t) => {
            let left = t.duration_since(SystemTime::now()).unwrap_or_default().as_secs();
            let left = if left < 120 { format!("{left} s") } else { format!("{} min", left / 60) };
            format!(", expiring at {} (in {left})", format_time(t))
        }
    }
}

/// Profiles that source one another are followed at most this deep.
const MAX_CHAIN: usize = 8;
/// How long an STS or SSO call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The chain, once: `profile` is the config's `[ec2] profile`, `configured` its `endpoint_url`
/// (STS is asked there too, as a stand-in such as moto serves every service on one endpoint).
pub fn load(env: &Env, profile: Option<&str>, configured: Option<&str>) -> Result<Found, String> {
    let chain = Chain { env, configured, files: Files::read(env)? };
    chain.load(profile)
}

struct Chain<'a> {
    env: &'a Env,
    configured: Option<&'a str>,
    files: Files,
}

impl Chain<'_> {
    fn load(&self, profile: Option<&str>) -> Result<Found, String> {
        let env = self.env;
        if let (Some(id), Some(secret)) = (env.var("AWS_ACCESS_KEY_ID"), env.var("AWS_SECRET_ACCESS_KEY")) {
            let mut c = Credentials::new(&id, &secret);
            c.session_token = env.var("AWS_SESSION_TOKEN");
            return Ok(Found { credentials: c, source: "the environment (AWS_ACCESS_KEY_ID)".into() });
        }
        if let (Some(token_file), Some(arn)) = (env.var("AWS_WEB_IDENTITY_TOKEN_FILE"), env.var("AWS_ROLE_ARN")) {
            let session = env.var("AWS_ROLE_SESSION_NAME");
            let c = self
                .web_identity(&token_file, &arn, session.as_deref(), None)
                .map_err(|e| format!("web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN): {e}"))?;
            return Ok(Found { credentials: c, source: format!("web identity, role {arn}") });
        }
        let explicit = profile.map(str::to_string).or_else(|| env.var("AWS_PROFILE"));
        let name = explicit.clone().unwrap_or_else(|| "default".into());
        // A profile with only settings (a `region`) gives no credentials: the chain goes on, as in
        // AWS's tools (the machine's role may be what it is for).
        let mut empty_profile = None;
        if let Some(p) = self.files.profile(&name) {
            if gives_credentials(p) {
                return self.profile(&name, &mut Vec::new());
            }
            empty_profile = Some(format!(
                "profile {name:?} in {} gives no credentials (no aws_access_key_id, credential_process, role_arn or sso_session)",
                p.file_of("region").map_or_else(|| self.files.where_(), |f| f.display().to_string())
            ));
        } else if explicit.is_some() {
            let known = self.files.names();
            return Err(format!(
                "no AWS profile {name:?} in {} (it has: {})",
                self.files.where_(),
                if known.is_empty() { "none".into() } else { known.join(", ") }
            ));
        }
        if let Some(c) = metadata::container(env) {
            let c = c?;
            return Ok(Found { credentials: c, source: "the container's credentials".into() });
        }
        if let Some(c) = metadata::instance(env) {
            let c = c?;
            return Ok(Found { credentials: c, source: "this EC2 instance's role (IMDSv2)".into() });
        }
        if let Some(why) = empty_profile {
            return Err(format!("no AWS credentials: {why}, and no container or instance role"));
        }
        Err(format!(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or write profile \"default\" in {}",
            self.files.where_()
        ))
    }

    /// Profile `name`'s credentials; `seen` are the profiles that led here (a cycle is an error).
    fn profile(&self, name: &str, seen: &mut Vec<String>) -> Result<Found, String> {
        let Some(p) = self.files.profile(name) else {
            return Err(format!("no AWS profile {name:?} in {}", self.files.where_()));
        };
        let file = |key: &str| p.file_of(key).map_or_else(|| self.files.where_(), |f| f.display().to_string());
        let at = |key: &str| format!("profile {name:?} in {}", file(key));
        if seen.iter().any(|s| s == name) || seen.len() >= MAX_CHAIN {
            seen.push(name.to_string());
            return Err(format!(
                "{}: AWS profiles source one another in a cycle: {}",
                at("source_profile"),
                seen.join(" -> ")
            ));
        }
        seen.push(name.to_string());
        let static_keys = || -> Option<Credentials> {
            let mut c = Credentials::new(p.get("aws_access_key_id")?, p.get("aws_secret_access_key")?);
            c.session_token = p.get("aws_session_token").map(str::to_string);
            Some(c)
        };
        // A profile another one sources from gives its own keys first, if it has them whole.
        if seen.len() > 1 {
            if let Some(c) = static_keys() {
                return Ok(Found {
                    credentials: c,
                    source: format!("profile {name:?} of {}", file("aws_access_key_id")),
                });
            }
        }
        if let Some(arn) = p.get("role_arn") {
            if p.get("mfa_serial").is_some() {
                return Err(format!("{}: mfa_serial asks for an MFA code, which odseed cannot type in (use a profile without it, or credential_process)", at("mfa_serial")));
            }
            let session = p.get("role_session_name");
            if let Some(token_file) = p.get("web_identity_token_file") {
                let c = self
                    .web_identity(token_file, arn, session, p.get("duration_seconds"))
                    .map_err(|e| format!("{}: {e}", at("role_arn")))?;
                return Ok(Found { credentials: c, source: format!("profile {name:?}: web identity, role {arn}") });
            }
            let source = match (p.get("source_profile"), p.get("credential_source")) {
                (Some(src), _) if src == name => match static_keys() {
                    Some(c) => Found { credentials: c, source: format!("profile {name:?}'s own keys") },
                    None => {
                        return Err(format!(
                            "{}: source_profile is itself, but it has no aws_access_key_id and aws_secret_access_key",
                            at("source_profile")
                        ))
                    }
                },
                (Some(src), _) => self.profile(src, seen).map_err(|e| {
                    if e.contains("source one another in a cycle") {
                        e
                    } else {
                        format!("{} (its source_profile): {e}", at("source_profile"))
                    }
                })?,
                (None, Some(cs)) => self
                    .credential_source(cs)
                    .map_err(|e| format!("{}: credential_source {cs}: {e}", at("credential_source")))?,
                (None, None) => {
                    return Err(format!("{}: role_arn needs a source_profile or a credential_source", at("role_arn")))
                }
            };
            let region = p
                .get("region")
                .map(str::to_string)
                .or_else(|| self.env.var("AWS_REGION"))
                .or_else(|| self.env.var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into());
            let endpoint = self.sts_endpoint(&region)?;
            let session_name = session.map(str::to_string).unwrap_or_else(default_session_name);
            let duration = match p.get("duration_seconds") {
                Some(d) => Some(d.parse::<u64>().ok().filter(|d| (900..=43200).contains(d)).ok_or_else(|| {
                    format!("{}: duration_seconds is not a number of seconds from 900 to 43200", at("duration_seconds"))
                })?),
                None => None,
            };
            let role = sts::Role {
                arn,
                session_name: &session_name,
                external_id: p.get("external_id"),
                duration_secs: duration,
            };
            let c = sts::assume_role(&endpoint, &region, &source.credentials, &role, CALL_TIMEOUT)
                .map_err(|e| format!("{}: assuming role {arn}: {e}", at("role_arn")))?;
            return Ok(Found {
                credentials: c,
                source: format!("profile {name:?}: role {arn}, assumed with {}", source.source),
            });
        }
        if p.get("sso_session").is_some() || p.get("sso_start_url").is_some() {
            return self.sso(name, p).map_err(|e| {
                format!("{}: {e}", at(if p.get("sso_session").is_some() { "sso_session" } else { "sso_start_url" }))
            });
        }
        if let Some(command) = p.get("credential_process") {
            let c = process::run(command, process::TIMEOUT)
                .map_err(|e| format!("{}: credential_process: {e}", at("credential_process")))?;
            return Ok(Found { credentials: c, source: format!("profile {name:?}: credential_process") });
        }
        match static_keys() {
            Some(c) => {
                Ok(Found { credentials: c, source: format!("profile {name:?} of {}", file("aws_access_key_id")) })
            }
            None if p.get("aws_access_key_id").is_some() => {
                Err(format!("{}: it has no aws_secret_access_key", at("aws_access_key_id")))
            }
            None => Err(format!(
                "{}: it gives no credentials (no aws_access_key_id, credential_process, role_arn or sso_session)",
                at("region")
            )),
        }
    }

    fn credential_source(&self, source: &str) -> Result<Found, String> {
        let (found, what) = match source.to_ascii_lowercase().as_str() {
            "environment" => {
                let (Some(id), Some(secret)) =
                    (self.env.var("AWS_ACCESS_KEY_ID"), self.env.var("AWS_SECRET_ACCESS_KEY"))
                else {
                    return Err("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set".into());
                };
                let mut c = Credentials::new(&id, &secret);
                c.session_token = self.env.var("AWS_SESSION_TOKEN");
                return Ok(Found { credentials: c, source: "the environment".into() });
            }
            "ec2instancemetadata" => (metadata::instance(self.env), "this EC2 instance's role"),
            "ecscontainer" => (metadata::container(self.env), "the container's credentials"),
            _ => return Err("not one of Environment, Ec2InstanceMetadata, EcsContainer".into()),
        };
        let c = found.ok_or_else(|| format!("{what}: nothing answers"))??;
        Ok(Found { credentials: c, source: what.into() })
    }

    fn web_identity(
        &self,
        token_file: &str,
        arn: &str,
        session: Option<&str>,
        duration: Option<&str>,
    ) -> Result<Credentials, String> {
        let token = odseed_proto::fsutil::read_text_bounded(Path::new(token_file), 64 << 10)
            .map_err(|e| format!("the token file {token_file}: {e}"))?;
        let region = self
            .env
            .var("AWS_REGION")
            .or_else(|| self.env.var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let session_name = session.map(str::to_string).unwrap_or_else(default_session_name);
        let role = sts::Role {
            arn,
            session_name: &session_name,
            external_id: None,
            duration_secs: duration
                .map(|d| d.parse::<u64>().ok().filter(|d| (900..=43200).contains(d)))
                .map(|d| d.ok_or("duration_seconds is not a number of seconds from 900 to 43200"))
                .transpose()?,
        };
        sts::assume_role_with_web_identity(&self.sts_endpoint(&region)?, token.trim(), &role, CALL_TIMEOUT)
    }

    fn sso(&self, name: &str, p: &files::Profile) -> Result<Found, String> {
        let session = p.get("sso_session");
        let s = match session {
            Some(s) => Some(
                self.files
                    .sso_session(s)
                    .ok_or_else(|| format!("no [sso-session {s}] in {}", self.files.config.display()))?,
            ),
            None => None,
        };
        let key = |k: &str| p.get(k).or_else(|| s.and_then(|s| s.get(k))).ok_or_else(|| format!("SSO needs {k}"));
        let sso = sso::Sso {
            session,
            start_url: key("sso_start_url")?,
            region: key("sso_region")?,
            account_id: key("sso_account_id")?,
            role_name: key("sso_role_name")?,
        };
        let c = sso::credentials(self.env, &sso, CALL_TIMEOUT)?;
        Ok(Found {
            credentials: c,
            source: format!("profile {name:?}: SSO, account {} role {}", sso.account_id, sso.role_name),
        })
    }

    fn sts_endpoint(&self, region: &str) -> Result<String, String> {
        if let Some(url) = endpoint_override(self.env, "STS")? {
            return Ok(url);
        }
        // `[ec2] endpoint_url` is EC2's; a stand-in that serves every service (moto, LocalStack) is
        // asked for STS too, never another AWS endpoint (a VPC or FIPS one of EC2's).
        match self.configured {
            Some(url) if !url.contains(".amazonaws.com") => normalized(url, "`ec2.endpoint_url`"),
            _ => Ok(format!("https://sts.{region}.amazonaws.com/")),
        }
    }
}

/// Whether a profile says where credentials come from (else it holds only settings).
fn gives_credentials(p: &files::Profile) -> bool {
    [
        "aws_access_key_id",
        "aws_secret_access_key",
        "credential_process",
        "role_arn",
        "sso_session",
        "sso_start_url",
        "web_identity_token_file",
    ]
    .iter()
    .any(|k| p.get(k).is_some())
}

fn default_session_name() -> String {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("odseed-{secs}")
}

/// The region of the profile the chain uses, for a command given none: `AWS_REGION`,
/// `AWS_DEFAULT_REGION`, then the profile's `region`.
pub fn region(env: &Env, profile: Option<&str>) -> Result<Option<String>, String> {
    if let Some(r) = env.var("AWS_REGION").or_else(|| env.var("AWS_DEFAULT_REGION")) {
        return Ok(Some(r));
    }
    let name = profile.map(str::to_string).or_else(|| env.var("AWS_PROFILE")).unwrap_or_else(|| "default".into());
    Ok(Files::read(env)?.profile(&name).and_then(|p| p.get("region")).map(str::to_string))
}

/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, if set.
pub fn endpoint_override(env: &Env, service: &str) -> Result<Option<String>, String> {
    let own = format!("AWS_ENDPOINT_URL_{service}");
    for var in [own.as_str(), "AWS_ENDPOINT_URL"] {
        if let Some(u) = env.var(var) {
            return normalized(&u, var).map(Some);
        }
    }
    Ok(None)
}

fn normalized(url: &str, from: &str) -> Result<String, String> {
    check_endpoint(url).map_err(|why| format!("{from} {:?} is not an endpoint URL: {why}", redacted(url)))?;
    Ok(if url.ends_with('/') { url.to_string() } else { format!("{url}/") })
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
    if let Some(url) = endpoint_override(env, service)? {
        return Ok(url);
    }
    match configured {
        Some(u) => normalized(u, "`ec2.endpoint_url`"),
        None => Ok(format!("https://{}.{region}.amazonaws.com/", service.to_ascii_lowercase())),
    }
}

/// `url` without what may be a user and password (`scheme://user:password@host`).
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        (None, Some(at)) => format!("…@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
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

    fn home_with(credentials: &str, config: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("odseed-aws-{}", odseed_proto::fsutil::random_hex(4).unwrap()));
        std::fs::create_dir_all(d.join(".aws")).unwrap();
        std::fs::write(d.join(".aws/credentials"), credentials).unwrap();
        std::fs::write(d.join(".aws/config"), config).unwrap();
        d
    }

    const OFF: (&str, &str) = ("AWS_EC2_METADATA_DISABLED", "true");
    const FILE: &str = "# mine\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = sEcReT1\n\n[work]\naws_access_key_id=AKWORK\naws_secret_access_key=sEcReT2\naws_session_token = tok\n[broken]\naws_access_key_id = AKB\n";

    fn key(env: &Env, profile: Option<&str>) -> Result<String, String> {
        load(env, profile, None).map(|f| f.credentials.access_key_id)
    }

    #[test]
    fn the_environment_then_the_profile_the_config_or_aws_profile_names() {
        let home = home_with(FILE, "[profile cfg]\naws_access_key_id = AKCFG\naws_secret_access_key = sEcReT4\n");
        assert_eq!(key(&Env::with(&[OFF], &home), None).unwrap(), "AKDEFAULT");
        let work = load(&Env::with(&[OFF, ("AWS_PROFILE", "work")], &home), None, None).unwrap();
        assert_eq!(
            (work.credentials.access_key_id.as_str(), work.credentials.session_token.as_deref()),
            ("AKWORK", Some("tok"))
        );
        assert!(work.source.contains("profile \"work\""), "{}", work.source);
        assert_eq!(
            key(&Env::with(&[OFF, ("AWS_PROFILE", "work")], &home), Some("default")).unwrap(),
            "AKDEFAULT",
            "config's profile"
        );
        assert_eq!(key(&Env::with(&[OFF], &home), Some("cfg")).unwrap(), "AKCFG", "`[profile cfg]` of ~/.aws/config");
        let env = Env::with(&[OFF, ("AWS_ACCESS_KEY_ID", "AKENV"), ("AWS_SECRET_ACCESS_KEY", "sEcReT3")], &home);
        assert_eq!(key(&env, None).unwrap(), "AKENV");
        assert_eq!(key(&env, Some("work")).unwrap(), "AKENV", "the environment first");
        assert!(!format!("{work:?}").contains("sEcReT"), "Debug shows no secret");
        std::fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn bad_files_and_profiles_say_what_is_wrong_without_the_secret() {
        let home = home_with(FILE, "[profile loop1]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = loop2\n[profile loop2]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = loop1\n[profile mfa]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = default\nmfa_serial = x\n[profile orphan]\nrole_arn = arn:aws:iam::1:role/a\n[profile empty]\nregion = eu-west-3\n");
        let env = Env::with(&[OFF], &home);
        let e = key(&env, Some("nope")).unwrap_err();
        assert!(
            e.contains("no AWS profile \"nope\"")
                && e.contains("(it has: broken, default, empty, loop1, loop2, mfa, orphan, work)"),
            "{e}"
        );
        let e = key(&env, Some("broken")).unwrap_err();
        assert!(e.contains("has no aws_secret_access_key") && e.contains(".aws/credentials"), "{e}");
        let e = key(&env, Some("loop1")).unwrap_err();
        assert!(e.contains("cycle: loop1 -> loop2 -> loop1"), "{e}");
        let e = key(&env, Some("mfa")).unwrap_err();
        assert!(e.contains("profile \"mfa\" in") && e.contains("MFA"), "{e}");
        let e = key(&env, Some("orphan")).unwrap_err();
        assert!(e.contains("needs a source_profile or a credential_source"), "{e}");
        let e = key(&env, Some("empty")).unwrap_err();
        assert!(e.contains("gives no credentials") && e.contains(".aws/config"), "{e}");
        assert!(e.contains("and no container or instance role"), "the chain went on: {e}");
        std::fs::write(home.join(".aws/credentials"), "[default]\naws_secret_access_key sEcReT9\n").unwrap();
        let e = key(&env, None).unwrap_err();
        assert!(e.contains("line 2") && !e.contains("sEcReT"), "{e}");
        std::fs::remove_dir_all(home.join(".aws")).unwrap();
        let e = key(&env, None).unwrap_err();
        assert!(e.starts_with("no AWS credentials"), "{e}");
        std::fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn a_credential_process_is_run_again_before_its_credentials_expire() {
        let home = home_with("", "");
        let count = home.join("count");
        // Credentials that expire 8 s after each run, with the run's number in the key.
        let script = format!(
            "n=$(( $(cat {c} 2>/dev/null || echo 0) + 1 )); echo $n > {c}; printf '{{\"Version\":1,\"AccessKeyId\":\"AK%s\",\"SecretAccessKey\":\"s\",\"SessionToken\":\"t\",\"Expiration\":\"%s\"}}' $n $(date -u -d @$(( $(date +%s) + 8 )) +%Y-%m-%dT%H:%M:%SZ)",
            c = count.display()
        );
        std::fs::write(
            home.join(".aws/config"),
            format!("[profile p]\nregion = eu-west-3\ncredential_process = {script}\n"),
        )
        .unwrap();
        let env = Env::with(&[OFF], &home);
        let p = Provider::load(env.clone(), Some("p"), None).unwrap();
        assert_eq!(p.get().unwrap().access_key_id, "AK1");
        assert_eq!(p.get().unwrap().access_key_id, "AK1", "kept while far from its expiry");
        let (source, expires) = p.source().unwrap();
        assert!(source.contains("credential_process") && expires.is_some(), "{source}");
        // Renewed a quarter of its life (2 s) before it expires.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while p.get().unwrap().access_key_id == "AK1" {
            assert!(std::time::Instant::now() < deadline, "never renewed");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(p.get().unwrap().access_key_id, "AK2");
        assert_eq!(region(&env, Some("p")).unwrap().as_deref(), Some("eu-west-3"));
        assert_eq!(
            region(&Env::with(&[("AWS_REGION", "ap-south-1")], &home), Some("p")).unwrap().as_deref(),
            Some("ap-south-1")
        );
        // A process that starts failing: the current credentials serve until they expire, then none.
        std::fs::write(home.join(".aws/config"), "[profile p]\ncredential_process = exit 1\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let missing = loop {
            match p.get() {
                Ok(c) => assert!(c.expires.unwrap() > SystemTime::now(), "an expired key was handed out"),
                Err(m) => break m,
            }
            assert!(std::time::Instant::now() < deadline, "expired credentials kept");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(missing.why.contains("credential_process: it failed"), "{missing:?}");
        assert!(missing.first(), "the first time none are handed out is said");
        assert!(!p.get().unwrap_err().first(), "and only the first");
        std::fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn endpoints_come_from_the_environment_then_the_config() {
        let home = std::env::temp_dir();
        assert_eq!(
            endpoint(&Env::with(&[], &home), None, "eu-west-3").unwrap(),
            "https://ec2.eu-west-3.amazonaws.com/"
        );
        assert_eq!(
            endpoint(&Env::with(&[], &home), Some("http://127.0.0.1:5000"), "x").unwrap(),
            "http://127.0.0.1:5000/"
        );
        let vars = [("AWS_ENDPOINT_URL", "http://127.0.0.1:1/")];
        assert_eq!(endpoint(&Env::with(&vars, &home), Some("http://x"), "x").unwrap(), "http://127.0.0.1:1/");
        let vars = [("AWS_ENDPOINT_URL", "http://127.0.0.1:1/"), ("AWS_ENDPOINT_URL_EC2", "https://[::1]:7")];
        assert_eq!(endpoint(&Env::with(&vars, &home), None, "x").unwrap(), "https://[::1]:7/");
        for bad in ["127.0.0.1:5000", "http://", "http://h:99999", "http://h:x", "http://a b", "http://u:p@h"] {
            let e = endpoint(&Env::with(&[], &home), Some(bad), "x").unwrap_err();
            assert!(e.contains("is not an endpoint URL"), "{bad}: {e}");
            assert!(!e.contains("u:p@"), "no user or password in the message: {e}");
        }
        assert!(check_region("eu-west-3").is_ok());
        for bad in ["", "EU", "eu west", "-x"] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
    }
}
