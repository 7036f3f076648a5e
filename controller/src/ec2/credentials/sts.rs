//! STS over its Query API (version 2011-06-15): AssumeRole signed with the source credentials by
//! AWS's `aws-sigv4`, and AssumeRoleWithWebIdentity, which is not signed (the token is the proof).
//! Answers are bounded and read for their `<Credentials>`; an STS error comes back with its code
//! and message.

use super::Credentials;
use crate::ec2::client::{http_agent, read_answer};
use serde::Deserialize;
use std::time::Duration;

const VERSION: &str = "2011-06-15";
const MAX_ANSWER: u64 = 64 << 10;

/// An AssumeRole or AssumeRoleWithWebIdentity: what it asks for.
pub struct Role<'a> {
    pub arn: &'a str,
    pub session_name: &'a str,
    pub external_id: Option<&'a str>,
    pub duration_secs: Option<u64>,
}

/// AssumeRole at `endpoint` (in `region`), signed with `source`.
pub fn assume_role(
    endpoint: &str,
    region: &str,
    source: &Credentials,
    role: &Role,
    timeout: Duration,
) -> Result<Credentials, String> {
    let mut form = vec![("Action", "AssumeRole"), ("RoleArn", role.arn), ("RoleSessionName", role.session_name)];
    if let Some(id) = role.external_id {
        form.push(("ExternalId", id));
    }
    let duration = role.duration_secs.map(|d| d.to_string());
    if let Some(d) = &duration {
        form.push(("DurationSeconds", d));
    }
    call(endpoint, region, Some(source), &form, timeout)
}

/// AssumeRoleWithWebIdentity at `endpoint` with the token read from a file.
pub fn assume_role_with_web_identity(
    endpoint: &str,
    token: &str,
    role: &Role,
    timeout: Duration,
) -> Result<Credentials, String> {
    let mut form = vec![
        ("Action", "AssumeRoleWithWebIdentity"),
        ("RoleArn", role.arn),
        ("RoleSessionName", role.session_name),
        ("WebIdentityToken", token),
    ];
    let duration = role.duration_secs.map(|d| d.to_string());
    if let Some(d) = &duration {
        form.push(("DurationSeconds", d));
    }
    call(endpoint, "", None, &form, timeout)
}

fn call(
    endpoint: &str,
    region: &str,
    signer: Option<&Credentials>,
    params: &[(&str, &str)],
    timeout: Duration,
) -> Result<Credentials, String> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Version", VERSION);
    for (k, v) in params {
        form.append_pair(k, v);
    }
    let body = form.finish();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let mut req = http_agent(timeout).post(endpoint).header("content-type", content_type);
    if let Some(creds) = signer {
        let signed = crate::ec2::sign::sign_request(
            creds,
            region,
            crate::ec2::sign::Service::Sts,
            "POST",
            endpoint,
            &[("content-type", content_type)],
            Some(body.as_bytes()),
            None,
        )?;
        for (k, v) in &signed.headers {
            req = req.header(k, v);
        }
    }
    let (status, bytes) = read_answer(req.send(body.as_bytes()), MAX_ANSWER).map_err(|e| format!("STS: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "STS: an answer that is not UTF-8".to_string())?;
    if !(200..300).contains(&status) {
        return Err(match error(&text) {
            Some((code, message)) => {
                format!("STS said {code}: {}", odseed_proto::printable::printable_line(&message, 300))
            }
            None => format!("STS answered HTTP {status}"),
        });
    }
    credentials(&text).map_err(|e| format!("STS: {e}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(alias = "AssumeRoleWithWebIdentityResult")]
    assume_role_result: Result_,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Result_ {
    credentials: Raw,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expiration: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(rename = "Error")]
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

/// The `<Credentials>` of an AssumeRole(WithWebIdentity)Response.
fn credentials(xml: &str) -> Result<Credentials, String> {
    let a: Answer = quick_xml::de::from_str(xml).map_err(|_| "an answer without credentials in it".to_string())?;
    let raw = a.assume_role_result.credentials;
    Credentials::from_parts(
        raw.access_key_id,
        raw.secret_access_key,
        raw.session_token,
        raw.expiration.as_deref(),
        "its answer",
    )
}

/// An STS `<ErrorResponse>`'s code and message.
fn error(xml: &str) -> Option<(String, String)> {
    let e: ErrorAnswer = quick_xml::de::from_str(xml).ok()?;
    Some((e.error.code, e.error.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_errors() {
        let ok = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2030-01-02T03:04:05.123Z</Expiration></Credentials><AssumedRoleUser><Arn>a</Arn><AssumedRoleId>b</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>"#;
        let c = credentials(ok).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token.as_deref()), ("ASIAX", Some("t")));
        assert!(c.expires.is_some());
        let web = ok.replace("AssumeRoleResult", "AssumeRoleWithWebIdentityResult");
        assert_eq!(credentials(&web).unwrap().access_key_id, "ASIAX");
        assert!(credentials("<html>nope</html>").is_err());
        assert!(credentials(&ok.replace("ASIAX", "")).is_err());
        let e = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error><RequestId>x</RequestId></ErrorResponse>"#;
        assert_eq!(error(e), Some(("AccessDenied".into(), "not allowed".into())));
    }
}
