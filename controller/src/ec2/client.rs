//! EC2's Query API (version 2016-11-15) over ureq: form-encoded POSTs signed with SigV4 by AWS's
//! `aws-sigv4` crate. Throttling, 5xx answers and transport failures are retried with backoff; every
//! other AWS error comes back typed, with AWS's code and message.

use super::credentials::{Missing, Provider};
use super::xml::{self, Instance};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

const VERSION: &str = "2016-11-15";
const ATTEMPTS: u32 = 4;
/// Answers that no retry changes (some come with a 5xx status), and that hold for a whole region.
pub const REFUSALS: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "UnauthorizedOperation",
    "AuthFailure",
    "Blocked",
    "OptInRequired",
    "PendingVerification",
];
/// DescribeInstances pages followed at most.
const MAX_PAGES: usize = 1000;
/// At most this much of an answer is read.
const MAX_ANSWER: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// AWS said no: its code and message.
    Aws { status: u16, code: String, message: String },
    /// No answer: connection refused, reset or timed out.
    Transport(String),
    /// An answer that is not what EC2 sends.
    BadAnswer(String),
    /// The request could not be made (signing failed).
    Request(String),
    /// No valid credentials to sign with (a renewal failed).
    Credentials(Missing),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Aws { code, message, .. } if message.is_empty() => write!(f, "{code}"),
            Error::Aws { code, message, .. } => write!(f, "{code}: {message}"),
            Error::Transport(m) => write!(f, "no answer ({m})"),
            Error::BadAnswer(m) => write!(f, "bad answer: {m}"),
            Error::Request(m) => write!(f, "{m}"),
            Error::Credentials(m) => write!(f, "{}", m.why),
        }
    }
}

impl Error {
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth sending again: throttling, AWS's own failures, no answer. Not a lack of capacity or
    /// rights: the same request would meet the same answer; another region may not.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Aws { code, .. } if REFUSALS.contains(&code.as_str()) => false,
            Error::Aws { status, code, .. } => {
                *status >= 500
                    || matches!(
                        code.as_str(),
                        "Throttling"
                            | "ThrottlingException"
                            | "RequestLimitExceeded"
                            | "RequestThrottled"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "Unavailable"
                    )
            }
            Error::Transport(_) | Error::BadAnswer(_) => true,
            Error::Request(_) | Error::Credentials(_) => false,
        }
    }
}

/// A StartInstances that failed, and whether the instances may have started all the same (so they
/// must be stopped, or kept in the ledger until they are).
#[derive(Debug)]
pub struct StartFailure {
    pub error: Error,
    pub maybe_started: bool,
}

/// One region's EC2 endpoint.
pub struct Ec2 {
    pub region: String,
    pub endpoint: String,
    credentials: Arc<Provider>,
    agent: ureq::Agent,
    /// DescribeInstances page size (5..=1000).
    pub page_size: u32,
    /// The first pause between attempts; it doubles.
    pub backoff: Duration,
}

impl Ec2 {
    pub fn new(region: &str, endpoint: &str, credentials: Arc<Provider>, timeout: Duration) -> Ec2 {
        let agent = http_agent(timeout);
        Ec2 {
            region: region.into(),
            endpoint: endpoint.into(),
            credentials,
            agent,
            page_size: 100,
            backoff: Duration::from_millis(500),
        }
    }

    /// Every instance matching `filters` (name, values), across all pages.
    pub fn describe(&self, filters: &[(&str, &[&str])]) -> Result<Vec<Instance>, Error> {
        let mut params: Vec<(String, String)> = vec![("MaxResults".into(), self.page_size.to_string())];
        for (i, (name, values)) in filters.iter().enumerate() {
            params.push((format!("Filter.{}.Name", i + 1), name.to_string()));
            for (j, v) in values.iter().enumerate() {
                params.push((format!("Filter.{}.Value.{}", i + 1, j + 1), v.to_string()));
            }
        }
        let mut all = Vec::new();
        let mut tokens: Vec<String> = Vec::new();
        loop {
            let mut p = params.clone();
            if let Some(t) = tokens.last() {
                p.push(("NextToken".into(), t.clone()));
            }
            let (page, _) = self.request("DescribeInstances", &p, xml::describe).map_err(|(e, _)| e)?;
            all.extend(page.instances);
            match page.next_token {
                None => return Ok(all),
                Some(t) if tokens.contains(&t) || tokens.len() >= MAX_PAGES => {
                    return Err(Error::BadAnswer(format!(
                        "DescribeInstances pages do not end ({} so far)",
                        tokens.len() + 1
                    )))
                }
                Some(t) => tokens.push(t),
            }
        }
    }

    /// StartInstances: the instances' new states.
    pub fn start(&self, ids: &[String]) -> Result<Vec<Instance>, Error> {
        self.change("StartInstances", ids).map_err(|(e, _)| e)
    }

    /// StartInstances, and on an error whether the instances may have started all the same: an
    /// attempt got no answer, a 5xx or an unreadable one, or the last error is not a plain refusal.
    pub fn start_checked(&self, ids: &[String]) -> Result<Vec<Instance>, StartFailure> {
        self.change("StartInstances", ids).map_err(|(error, unsure)| {
            let refused = matches!(&error, Error::Aws { status, .. } if *status < 500)
                || REFUSALS.contains(&error.code().unwrap_or(""));
            // Nothing was sent for a request that could not be signed.
            let unsent = matches!(error, Error::Request(_) | Error::Credentials(_));
            StartFailure { error, maybe_started: unsure || (!refused && !unsent) }
        })
    }

    /// StopInstances (never terminate): the instances' new states.
    pub fn stop(&self, ids: &[String]) -> Result<Vec<Instance>, Error> {
        self.change("StopInstances", ids).map_err(|(e, _)| e)
    }

    fn change(&self, action: &str, ids: &[String]) -> Result<Vec<Instance>, (Error, bool)> {
        let params: Vec<(String, String)> =
            ids.iter().enumerate().map(|(i, id)| (format!("InstanceId.{}", i + 1), id.clone())).collect();
        self.request(action, &params, xml::changes).map(|(list, _)| list)
    }

    /// One action, retried while it fails in a retryable way; the answer's XML.
    pub fn call(&self, action: &str, params: &[(String, String)]) -> Result<String, Error> {
        self.request(action, params, |xml| Ok(xml.to_string())).map(|(xml, _)| xml).map_err(|(e, _)| e)
    }

    /// One action whose answer is read by `read`; an answer it cannot read is retried too. With
    /// the result, whether an attempt ended without a clear answer (none, a 5xx, unreadable): AWS
    /// may have done it.
    fn request<T>(
        &self,
        action: &str,
        params: &[(String, String)],
        read: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(T, bool), (Error, bool)> {
        let mut pause = self.backoff;
        let mut attempt = 1;
        let mut unsure = false;
        loop {
            match self.call_once(action, params).and_then(|xml| read(&xml).map_err(Error::BadAnswer)) {
                Err(e) if e.retryable() && attempt < ATTEMPTS => {
                    log::warn!("EC2 {} {action}: {e}; trying again in {:.1}s", self.region, pause.as_secs_f32());
                    unsure |= !matches!(&e, Error::Aws { status, .. } if *status < 500);
                    std::thread::sleep(pause);
                    pause *= 2;
                    attempt += 1;
                }
                Ok(v) => return Ok((v, unsure)),
                Err(e) => return Err((e, unsure)),
            }
        }
    }

    fn call_once(&self, action: &str, params: &[(String, String)]) -> Result<String, Error> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action).append_pair("Version", VERSION);
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let headers = self.sign(&body, content_type)?;
        let mut req = self.agent.post(&self.endpoint).header("content-type", content_type);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let (status, bytes) = read_answer(req.send(body.as_bytes()), MAX_ANSWER)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::BadAnswer("an answer that is not UTF-8".into()))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        match xml::error(&text) {
            Some((code, message)) => Err(Error::Aws { status, code, message }),
            None if status >= 500 => Err(Error::Aws { status, code: format!("HTTP {status}"), message: String::new() }),
            None => Err(Error::BadAnswer(format!("HTTP {status} without an EC2 error in it"))),
        }
    }

    /// The SigV4 headers (authorization, x-amz-date, x-amz-security-token) for a POST of `body`.
    fn sign(&self, body: &str, content_type: &str) -> Result<Vec<(String, String)>, Error> {
        let headers = [("content-type", content_type)];
        let creds = self.credentials.get().map_err(Error::Credentials)?;
        super::sign::sign_request(
            &creds,
            &self.region,
            super::sign::Service::Ec2,
            "POST",
            &self.endpoint,
            &headers,
            Some(body.as_bytes()),
            None,
        )
        .map(|s| s.headers)
        .map_err(Error::Request)
    }
}

/// An AWS answer's status and body (at most `limit` bytes), or why there is none.
pub(super) fn read_answer(
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    limit: u64,
) -> Result<(u16, Vec<u8>), Error> {
    let mut answer = sent.map_err(|e| Error::Transport(e.to_string()))?;
    let status = answer.status().as_u16();
    let bytes = answer
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| Error::Transport(format!("reading the answer: {e}")))?;
    Ok((status, bytes))
}

/// The HTTP client of AWS's endpoints: every status read as an answer, no redirect, one deadline.
pub(super) fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .build()
        .into()
}
