//! Credentials of the machine odseed runs on: a container's (ECS, EKS Pod Identity:
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on 169.254.170.2, or `AWS_CONTAINER_CREDENTIALS_FULL_URI`
//! with `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`), and an EC2 instance's role through IMDSv2 (a
//! session token first, then `iam/security-credentials/<role>`; `AWS_EC2_METADATA_DISABLED=true`
//! skips it, `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it). Short timeouts: on a laptop nothing
//! answers there, and the chain goes on.

use super::{Credentials, Env};
use crate::ec2::client::{http_agent, read_answer};
use serde::Deserialize;
use std::time::Duration;

const MAX_ANSWER: u64 = 64 << 10;
/// How long the instance metadata service may take to answer (AWS's tools: 1 s).
pub const IMDS_TIMEOUT: Duration = Duration::from_secs(1);
const CONTAINER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    access_key_id: String,
    secret_access_key: String,
    #[serde(alias = "Token")]
    session_token: Option<String>,
    expiration: Option<String>,
}

fn read(bytes: &[u8], what: &str) -> Result<Credentials, String> {
    let a: Answer = serde_json::from_slice(bytes).map_err(|_| format!("{what}'s answer has no credentials in it"))?;
    let what = format!("{what}'s answer");
    Credentials::from_parts(a.access_key_id, a.secret_access_key, a.session_token, a.expiration.as_deref(), &what)
}

/// A container's credentials, if the environment says where they are.
pub fn container(env: &Env) -> Option<Result<Credentials, String>> {
    let url = match (env.var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), env.var("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
        (Some(rel), _) => format!("http://169.254.170.2{rel}"),
        (None, Some(full)) => full,
        (None, None) => return None,
    };
    Some(container_at(env, &url))
}

fn container_at(env: &Env, url: &str) -> Result<Credentials, String> {
    super::check_endpoint(url).map_err(|why| format!("the container credentials URL is not a URL: {why}"))?;
    // As AWS's tools: plain HTTP (the token in clear) only to this machine or the container agents.
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host =
            host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let allowed = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                ip.is_loopback()
                    || ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"].contains(&ip.to_string().as_str())
            }
            Err(_) => host == "localhost",
        };
        if !allowed {
            return Err(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI over http:// must be this machine or 169.254.170.2/23".into()
            );
        }
    }
    let token = match (env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
    {
        (Some(file), _) => Some(
            odseed_proto::fsutil::read_text_bounded(std::path::Path::new(&file), MAX_ANSWER)
                .map_err(|e| format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {file}: {e}"))?
                .trim()
                .to_string(),
        ),
        (None, t) => t,
    };
    let mut req = http_agent(CONTAINER_TIMEOUT).get(url);
    if let Some(t) = &token {
        req = req.header("authorization", t);
    }
    let (status, bytes) = read_answer(req.call(), MAX_ANSWER).map_err(|e| format!("container credentials: {e}"))?;
    if !(200..300).contains(&status) {
        return Err(format!("container credentials: HTTP {status}"));
    }
    read(&bytes, "the container credentials endpoint")
}

/// The instance role's credentials through IMDSv2, or `None` if it is disabled or nothing answers.
pub fn instance(env: &Env) -> Option<Result<Credentials, String>> {
    if env.var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    let base = env.var("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| "http://169.254.169.254".into());
    let base = base.trim_end_matches('/');
    let agent = http_agent(IMDS_TIMEOUT);
    let sent = agent
        .put(format!("{base}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send(&[][..]);
    // No answer at all: not on EC2 (or no IMDS); the chain ends without it.
    let (status, token) = read_answer(sent, MAX_ANSWER).ok()?;
    Some(instance_with(&agent, base, status, token))
}

fn instance_with(agent: &ureq::Agent, base: &str, status: u16, token: Vec<u8>) -> Result<Credentials, String> {
    if !(200..300).contains(&status) {
        return Err(format!("the instance metadata service refused a session token (HTTP {status})"));
    }
    let token = String::from_utf8(token).map_err(|_| "the instance metadata token is not text".to_string())?;
    let get = |path: &str| -> Result<Vec<u8>, String> {
        let sent = agent
            .get(format!("{base}/latest/meta-data/iam/security-credentials/{path}"))
            .header("x-aws-ec2-metadata-token", token.trim())
            .call();
        let (status, bytes) =
            read_answer(sent, MAX_ANSWER).map_err(|e| format!("the instance metadata service: {e}"))?;
        match status {
            200..=299 => Ok(bytes),
            404 => Err("this instance has no IAM role".into()),
            s => Err(format!("the instance metadata service answered HTTP {s}")),
        }
    };
    let roles = String::from_utf8(get("")?).map_err(|_| "the instance's role name is not text".to_string())?;
    let role = roles.lines().map(str::trim).find(|l| !l.is_empty()).ok_or("this instance has no IAM role")?;
    if !role.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)) {
        return Err("the instance's role name is not an IAM role name".into());
    }
    read(&get(role)?, "the instance metadata service")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_both_services() {
        let c = read(br#"{"Code":"Success","AccessKeyId":"ASIAI","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-02T03:04:05Z"}"#, "x").unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token.as_deref()), ("ASIAI", Some("t")));
        let c = read(br#"{"AccessKeyId":"ASIAC","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-02T03:04:05Z","RoleArn":"r"}"#, "x").unwrap();
        assert_eq!(c.access_key_id, "ASIAC");
        assert!(read(b"<html/>", "x").is_err());
        assert!(read(br#"{"AccessKeyId":"","SecretAccessKey":"s"}"#, "x").is_err());
        let off = Env::with(&[("AWS_EC2_METADATA_DISABLED", "true")], std::path::Path::new("/nonexistent"));
        assert!(instance(&off).is_none());
        assert!(container(&off).is_none());
    }
}
