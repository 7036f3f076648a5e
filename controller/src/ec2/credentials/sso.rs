//! IAM Identity Center (SSO): the access token `aws sso login` leaves in `~/.aws/sso/cache/<sha1>.json`
//! (the SHA-1 of the `sso_session` name, or of `sso_start_url` for a profile without one), traded
//! at the SSO portal's GetRoleCredentials (`GET /federation/credentials?account_id=&role_name=`,
//! header `x-amz-sso_bearer_token`) for the role's credentials. odseed does not refresh the token
//! itself: an expired one is a line asking for `aws sso login`.

use super::{parse_time, Credentials, Env};
use crate::ec2::client::{http_agent, read_answer};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAX_ANSWER: u64 = 64 << 10;
const MAX_CACHE: u64 = 64 << 10;

/// What a profile says of its SSO role.
pub struct Sso<'a> {
    /// The `sso_session` name, if the profile uses one (else the legacy keys).
    pub session: Option<&'a str>,
    pub start_url: &'a str,
    pub region: &'a str,
    pub account_id: &'a str,
    pub role_name: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cached {
    access_token: String,
    expires_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    role_credentials: RoleCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    /// Milliseconds since the epoch.
    expiration: u64,
}

/// The cache file of `sso`'s token.
pub fn cache_file(env: &Env, sso: &Sso) -> PathBuf {
    let key = sso.session.unwrap_or(sso.start_url);
    env.home.join(".aws/sso/cache").join(format!("{}.json", sha1_smol::Sha1::from(key).digest()))
}

/// The role's credentials, from the cached token.
pub fn credentials(env: &Env, sso: &Sso, timeout: Duration) -> Result<Credentials, String> {
    let login = match sso.session {
        Some(s) => format!("run `aws sso login --sso-session {s}`"),
        None => "run `aws sso login`".to_string(),
    };
    let file = cache_file(env, sso);
    let text = odseed_proto::fsutil::read_text_bounded(&file, MAX_CACHE)
        .map_err(|e| format!("no SSO token in {} ({e}): {login}", file.display()))?;
    let cached: Cached = serde_json::from_str(&text)
        .map_err(|_| format!("the SSO token cache {} is not what `aws sso login` writes: {login}", file.display()))?;
    let expires =
        parse_time(&cached.expires_at).map_err(|e| format!("the SSO token cache {}: expiresAt {e}", file.display()))?;
    if expires <= SystemTime::now() {
        return Err(format!("the SSO token of {} expired at {}: {login}", file.display(), cached.expires_at));
    }
    let base = super::endpoint_override(env, "SSO")?
        .unwrap_or_else(|| format!("https://portal.sso.{}.amazonaws.com/", sso.region));
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("account_id", sso.account_id)
        .append_pair("role_name", sso.role_name)
        .finish();
    let url = format!("{base}federation/credentials?{query}");
    let sent = http_agent(timeout).get(&url).header("x-amz-sso_bearer_token", &cached.access_token).call();
    let (status, bytes) = read_answer(sent, MAX_ANSWER).map_err(|e| format!("the SSO portal: {e}"))?;
    match status {
        200..=299 => {}
        401 | 403 => return Err(format!("the SSO portal refused the token (HTTP {status}): {login}")),
        _ => return Err(format!("the SSO portal answered HTTP {status}")),
    }
    let a: Answer =
        serde_json::from_slice(&bytes).map_err(|_| "the SSO portal's answer has no roleCredentials".to_string())?;
    let r = a.role_credentials;
    if r.access_key_id.is_empty() || r.secret_access_key.is_empty() {
        return Err("the SSO portal's answer has empty credentials".into());
    }
    Ok(Credentials {
        access_key_id: r.access_key_id,
        secret_access_key: r.secret_access_key,
        session_token: r.session_token.filter(|t| !t.is_empty()),
        expires: Some(UNIX_EPOCH + Duration::from_millis(r.expiration)),
    })
}
