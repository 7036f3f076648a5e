//! S3, as `odseed ec2 provision` needs it: a bucket, an object put and deleted, and a presigned URL
//! an instance reads it through (no credentials on the instance). Path-style URLs
//! (`<endpoint>/<bucket>/<key>`), signed with SigV4 as EC2's requests are.

use super::client::Error;
use super::credentials::Provider;
use super::sign::{sign_request, Service};
use std::sync::Arc;
use std::time::Duration;

const MAX_ANSWER: u64 = 1 << 20;

pub struct S3 {
    pub region: String,
    /// `https://s3.<region>.amazonaws.com/` or a stand-in's, ending in `/`.
    pub endpoint: String,
    credentials: Arc<Provider>,
    agent: ureq::Agent,
}

impl S3 {
    pub fn new(region: &str, endpoint: &str, credentials: Arc<Provider>, timeout: Duration) -> S3 {
        let agent = super::client::http_agent(timeout);
        let endpoint = if endpoint.ends_with('/') { endpoint.to_string() } else { format!("{endpoint}/") };
        S3 { region: region.into(), endpoint, credentials, agent }
    }

    fn creds(&self) -> Result<super::credentials::Credentials, Error> {
        self.credentials.get().map_err(Error::Credentials)
    }

    fn url(&self, bucket: &str, key: &str) -> String {
        match key {
            "" => format!("{}{bucket}", self.endpoint),
            _ => format!("{}{bucket}/{}", self.endpoint, encode_key(key)),
        }
    }

    /// Creates `bucket` in this region; one that this account already owns is fine.
    pub fn create_bucket(&self, bucket: &str) -> Result<(), Error> {
        let body = if self.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            )
        };
        match self.send("PUT", &self.url(bucket, ""), body.as_bytes()) {
            Err(Error::Aws { code, .. }) if code == "BucketAlreadyOwnedByYou" => Ok(()),
            other => other.map(drop),
        }
    }

    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), Error> {
        self.send("PUT", &self.url(bucket, key), bytes).map(drop)
    }

    /// Deletes an object (one already gone is fine).
    pub fn delete(&self, bucket: &str, key: &str) -> Result<(), Error> {
        match self.send("DELETE", &self.url(bucket, key), &[]) {
            Err(Error::Aws { code, .. }) if code == "NoSuchKey" || code == "NoSuchBucket" => Ok(()),
            other => other.map(drop),
        }
    }

    /// Deletes an empty bucket (one already gone is fine).
    pub fn delete_bucket(&self, bucket: &str) -> Result<(), Error> {
        match self.send("DELETE", &self.url(bucket, ""), &[]) {
            Err(Error::Aws { code, .. }) if code == "NoSuchBucket" => Ok(()),
            other => other.map(drop),
        }
    }

    /// Whether the object exists.
    pub fn exists(&self, bucket: &str, key: &str) -> Result<bool, Error> {
        match self.send("HEAD", &self.url(bucket, key), &[]) {
            Ok(_) => Ok(true),
            Err(Error::Aws { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A URL that lets anyone GET the object for `valid_for` (SigV4 query signing).
    pub fn presigned_get(&self, bucket: &str, key: &str, valid_for: Duration) -> Result<String, Error> {
        let url = self.url(bucket, key);
        let signed = sign_request(&self.creds()?, &self.region, Service::S3, "GET", &url, &[], None, Some(valid_for))
            .map_err(Error::Request)?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &signed.params {
            query.append_pair(k, v);
        }
        Ok(format!("{url}?{}", query.finish()))
    }

    fn send(&self, method: &str, url: &str, body: &[u8]) -> Result<Vec<u8>, Error> {
        let signed = sign_request(&self.creds()?, &self.region, Service::S3, method, url, &[], Some(body), None)
            .map_err(Error::Request)?;
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in &signed.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(body.to_vec()).map_err(|e| Error::Request(e.to_string()))?;
        let (status, bytes) = super::client::read_answer(self.agent.run(req), MAX_ANSWER)?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let text = String::from_utf8_lossy(&bytes);
        let field = |name: &str| {
            let open = format!("<{name}>");
            let start = text.find(&open)? + open.len();
            Some(text[start..].split('<').next()?.to_string())
        };
        match field("Code") {
            Some(code) => Err(Error::Aws { status, message: field("Message").unwrap_or_default(), code }),
            None if status == 404 => Err(Error::Aws { status, code: "NotFound".into(), message: String::new() }),
            None => Err(Error::Aws { status, code: format!("HTTP {status}"), message: String::new() }),
        }
    }
}

/// An object key in a URL path: every byte but unreserved ones and `/` percent-encoded.
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
