//! `odseed ec2 provision` and `deprovision`: EC2 helpers from nothing, and gone again.
//!
//! Provision makes (or reuses) the region's secrets (token, certificate and key, 0600 under the
//! config dir), finds Debian's newest image, makes the helpers' security group, puts the agent
//! binary in S3, and launches instances whose user-data ([`userdata`]) sets them up and powers them
//! off. Every instance is in the ledger from RunInstances on, so an interrupted provision stops what
//! it made and `odseed release` does after a kill -9. Then it waits (bounded) for each to stop,
//! names those that did not with their console output (and terminates them), and adds the region's
//! `[[ec2.pool]]` to the config.

pub mod secrets;
pub mod userdata;

use crate::cli::{DeprovisionArgs, ProvisionArgs};
use crate::config::Config;
use crate::ec2::credentials::{self, Env};
use crate::ec2::s3::S3;
use crate::ec2::setup::{self, Launch};
use crate::ec2::{Ec2, InstanceState};
use crate::error::Error;
use crate::ledger::{Entry, HelperKind, Ledger, Owner};
use odseed_proto::fsutil::random_hex;
use odseed_proto::tls::Fingerprint;
use secrets::Secrets;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const AGENT_PORT: u16 = 5050;
const PEER_PORT: u16 = 51413;
/// An agent binary larger than this is not one.
const MAX_AGENT_BYTES: u64 = 64 << 20;
/// How long the presigned URL of the agent binary is valid: an instance fetches it at first boot.
const URL_VALID: Duration = Duration::from_secs(6 * 3600);
/// How long the presigned URL of the secrets object is valid (the object itself is deleted once
/// provision has seen the instances set up).
const SECRETS_VALID: Duration = Duration::from_secs(3600);
/// Tags of what provision made.
pub const PROVISIONED_TAG: &str = "odseed:provisioned";
pub const CERT_TAG: &str = "odseed:cert-sha256";
const LAUNCH_TAG: &str = "odseed:launch";

/// Where the AWS parts are, for one region.
struct Aws {
    ec2: Ec2,
    s3: S3,
}

fn aws(cfg: Option<&Config>, region: &str) -> Result<Aws, Error> {
    credentials::check_region(region).map_err(|e| Error::Usage(format!("--region {e}")))?;
    let ec2cfg = cfg.and_then(|c| c.ec2.as_ref());
    let env = Env::process();
    let configured = ec2cfg.and_then(|x| x.endpoint_url.as_deref());
    let creds = credentials::Provider::load(env.clone(), ec2cfg.and_then(|x| x.profile.as_deref()), configured)
        .map_err(Error::Config)?;
    let timeout = Duration::from_secs(ec2cfg.map_or(20, |x| x.request_timeout));
    let ec2_url = credentials::endpoint(&env, configured, region).map_err(Error::Config)?;
    let s3_url = credentials::s3_endpoint(&env, configured, region).map_err(Error::Config)?;
    // The agent binary (tens of MB) goes up in one request: S3 gets more time than EC2's calls.
    let s3 = S3::new(region, &s3_url, creds.clone(), timeout.max(Duration::from_secs(600)));
    Ok(Aws { ec2: Ec2::new(region, &ec2_url, creds, timeout), s3 })
}

/// `--region`, else the region AWS's tools would use (`AWS_REGION`, `AWS_DEFAULT_REGION`, the
/// profile's `region`).
fn region(given: &str, cfg: Option<&Config>) -> Result<String, Error> {
    if !given.is_empty() {
        return Ok(given.to_string());
    }
    let profile = cfg.and_then(|c| c.ec2.as_ref()).and_then(|x| x.profile.as_deref());
    match credentials::region(&Env::process(), profile).map_err(Error::Config)? {
        Some(r) => Ok(r),
        None => {
            Err(Error::Usage("no region: give --region, or set AWS_REGION, or `region` in your AWS profile".into()))
        }
    }
}

fn load_config(path: &Path) -> Result<Option<Config>, Error> {
    match crate::config::load(path) {
        Ok(c) => Ok(Some(c)),
        Err(_) if !path.exists() => Ok(None),
        Err(e) => Err(e),
    }
}

fn aws_err(what: &str) -> impl Fn(crate::ec2::Error) -> Error + '_ {
    move |e| Error::System(format!("{what}: {e}"))
}

/// The agent binary for `arch`, read and checked (an ELF executable for that machine).
fn agent_binary(path: Option<&Path>, arch: &str) -> Result<(PathBuf, Vec<u8>), Error> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| Error::System(format!("cannot find this program: {e}")))?
            .with_file_name("odseed-agent"),
    };
    let bytes = odseed_proto::fsutil::read_bounded(&path, MAX_AGENT_BYTES)
        .map_err(|e| Error::Usage(format!("--agent {}: cannot read: {e} (pass --agent PATH)", path.display())))?;
    let machine =
        (bytes.len() > 20 && bytes.starts_with(b"\x7fELF")).then(|| u16::from_le_bytes([bytes[18], bytes[19]]));
    let want = if arch == "arm64" { 0xb7 } else { 0x3e };
    if machine != Some(want) {
        return Err(Error::Usage(format!("--agent {}: not an {arch} Linux executable", path.display())));
    }
    Ok((path, bytes))
}

/// How a provision ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Launched (and, unless `--no-wait`, set up); the pool is in the config.
    Done,
    /// A signal came while the instances set themselves up: those not set up were terminated.
    Interrupted,
}

/// One provision's parts, shared by its steps.
struct Provision<'a> {
    a: &'a ProvisionArgs,
    aws: Aws,
    secrets: Secrets,
    config_path: PathBuf,
    cfg: Option<Config>,
}

/// An S3 object made for the instances, and its presigned URL.
struct Object {
    bucket: String,
    key: String,
    url: String,
    sha256: String,
}

pub fn provision(a: &ProvisionArgs, ledger: &Ledger, stop: &Receiver<()>) -> Result<Outcome, Error> {
    let config_path = a.config.clone().unwrap_or_else(crate::config::default_path);
    let cfg = load_config(&config_path)?;
    let a = &ProvisionArgs { region: region(&a.region, cfg.as_ref())?, ..a.clone() };
    let aws = aws(cfg.as_ref(), &a.region)?;
    let (agent_path, agent) = agent_binary(a.agent.as_deref(), &a.arch)?;
    let secrets = Secrets::load_or_make(&secrets::dir(&config_path, &a.region))?;
    let p = Provision { a, aws, secrets, config_path, cfg };
    let image = p.image()?;
    let group =
        setup::security_group(&p.aws.ec2, AGENT_PORT, PEER_PORT, &a.allow_from).map_err(aws_err("security group"))?;
    p.say(format!("security group {group} ({}): agent port {AGENT_PORT} from {}", setup::GROUP_NAME, a.allow_from));
    let agent = p.upload_agent(&agent_path, &agent)?;
    let launch_id = random_hex(8).map_err(|e| Error::System(format!("no randomness: {e}")))?;
    let secret = p.upload_secrets(&agent.bucket, &launch_id)?;
    let launched = p.launch(&image, &group, &agent, &secret, &launch_id).inspect_err(|_| p.drop_secrets(&secret))?;
    let entries = p.record(ledger, &launched).inspect_err(|_| p.drop_secrets(&secret))?;
    p.say(format!(
        "launched {} ({} x {}), each sets itself up and powers off",
        launched.join(", "),
        a.count,
        a.instance_type
    ));
    let forget = || -> Result<(), Error> {
        let me = Owner::me();
        ledger.remove_all(&entries.iter().map(|e| (e.name.as_str(), e.info_hash, me)).collect::<Vec<_>>())
    };
    if a.no_wait {
        p.say(format!(
            "the instances fetch their secrets from s3://{}/{} within the hour; it stays until \
             `odseed ec2 deprovision` (or delete it once they have stopped)",
            secret.bucket, secret.key
        ));
        forget()?;
        p.done(&launched, &[]);
        return Ok(Outcome::Done);
    }
    let waited = wait_stopped(&p.aws.ec2, &launched, Duration::from_secs(a.wait), stop);
    p.drop_secrets(&secret);
    // What may still run stays in the ledger until it is terminated.
    p.terminate_unready(&launched, &waited)?;
    forget()?;
    p.settle(&launched, waited)
}

impl Provision<'_> {
    /// With --json, the human lines go to the log (stderr) and one JSON object ends on stdout.
    fn say(&self, line: String) {
        if self.a.json {
            log::info!("{line}")
        } else {
            crate::output::say(&line)
        }
    }

    /// `--ami`, or Debian's newest image for the architecture.
    fn image(&self) -> Result<String, Error> {
        if let Some(id) = &self.a.ami {
            return Ok(id.clone());
        }
        let i = setup::debian_image(&self.aws.ec2, &self.a.arch).map_err(aws_err("DescribeImages"))?;
        self.say(format!("image {} ({})", i.id, i.name));
        Ok(i.id)
    }

    /// The agent binary in S3 (once per content), and a URL the instances fetch it from.
    fn upload_agent(&self, path: &Path, agent: &[u8]) -> Result<Object, Error> {
        let (s3, a) = (&self.aws.s3, self.a);
        let bucket = match &a.bucket {
            Some(b) => b.clone(),
            None => self.secrets.bucket()?,
        };
        let sha256 = Fingerprint::of(agent).to_string();
        let key = format!("odseed-agent-{}-{}", a.arch, &sha256[..16]);
        s3.create_bucket(&bucket).map_err(aws_err("S3 CreateBucket"))?;
        if !s3.exists(&bucket, &key).map_err(aws_err("S3 HeadObject"))? {
            s3.put(&bucket, &key, agent).map_err(aws_err("S3 PutObject"))?;
        }
        self.secrets.remember_object(&bucket, &key)?;
        let url = s3.presigned_get(&bucket, &key, URL_VALID).map_err(aws_err("S3 presign"))?;
        self.say(format!("agent {} (SHA-256 {sha256}) in s3://{bucket}/{key}", path.display()));
        Ok(Object { bucket, key, url, sha256 })
    }

    /// The token, certificate and key: an object of this launch's own, deleted once it is over.
    fn upload_secrets(&self, bucket: &str, launch_id: &str) -> Result<Object, Error> {
        let s = &self.secrets;
        let text = userdata::secrets(&userdata::Secrets {
            token: &s.token,
            cert_pem: &s.cert_pem,
            cert_sha256: &s.pin.to_string(),
            key_pem: &s.key_pem,
        })
        .map_err(Error::System)?;
        let key = format!("odseed-secrets-{launch_id}");
        s.remember_object(bucket, &key)?;
        self.aws.s3.put(bucket, &key, text.as_bytes()).map_err(aws_err("S3 PutObject"))?;
        let sha256 = Fingerprint::of(text.as_bytes()).to_string();
        let object = Object { bucket: bucket.into(), key, url: String::new(), sha256 };
        match self.aws.s3.presigned_get(bucket, &object.key, SECRETS_VALID) {
            Ok(url) => Ok(Object { url, ..object }),
            Err(e) => {
                self.drop_secrets(&object);
                Err(aws_err("S3 presign")(e))
            }
        }
    }

    fn drop_secrets(&self, o: &Object) {
        if let Err(e) = self.aws.s3.delete(&o.bucket, &o.key) {
            log::warn!("cannot delete s3://{}/{} ({e}); `odseed ec2 deprovision` will", o.bucket, o.key);
        }
    }

    /// RunInstances with the user-data that sets them up; the ids. If it fails, whatever may have
    /// launched all the same (it carries this launch's tag) is terminated.
    fn launch(
        &self,
        image: &str,
        group: &str,
        agent: &Object,
        secret: &Object,
        id: &str,
    ) -> Result<Vec<String>, Error> {
        let user_data = userdata::script(&userdata::Setup {
            agent_url: &agent.url,
            agent_sha256: &agent.sha256,
            secrets_url: &secret.url,
            secrets_sha256: &secret.sha256,
            agent_port: AGENT_PORT,
            peer_port: PEER_PORT,
        })
        .map_err(Error::System)?;
        let pin = self.secrets.pin.to_string();
        let tags = [
            ("odseed:role", "helper"),
            (PROVISIONED_TAG, "1"),
            (CERT_TAG, pin.as_str()),
            (LAUNCH_TAG, id),
            ("Name", "odseed-helper"),
        ];
        let (ec2, a) = (&self.aws.ec2, self.a);
        let launch = Launch {
            image,
            instance_type: &a.instance_type,
            count: a.count,
            group,
            user_data: &user_data,
            tags: &tags,
            client_token: id,
        };
        let e = match setup::run_instances(ec2, &launch) {
            Ok(list) => return Ok(list.into_iter().map(|i| i.id).collect()),
            Err(e) => e,
        };
        // Looked for a few times: DescribeInstances lags behind.
        for _ in 0..3 {
            let tag = format!("tag:{LAUNCH_TAG}");
            if let Ok(found) = ec2.describe(&[(&tag, &[id])]) {
                let ids: Vec<String> = found.into_iter().filter(|i| !i.state.is_down()).map(|i| i.id).collect();
                if !ids.is_empty() {
                    terminate_or_name(ec2, &ids);
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        Err(Error::System(format!("EC2 {} RunInstances: {e}", a.region)))
    }

    /// Every launched instance in the ledger; if that cannot be written, they go now (unrecorded,
    /// they would be nobody's to stop).
    fn record(&self, ledger: &Ledger, launched: &[String]) -> Result<Vec<Entry>, Error> {
        let entries: Vec<Entry> =
            launched.iter().map(|id| entry(id, &self.aws.ec2, &self.secrets.token_file)).collect();
        for e in &entries {
            if let Err(err) = ledger.record(e.clone()) {
                let _ = ledger
                    .remove_all(&entries.iter().map(|e| (e.name.as_str(), e.info_hash, e.owner)).collect::<Vec<_>>());
                terminate_or_name(&self.aws.ec2, launched);
                return Err(err);
            }
        }
        Ok(entries)
    }

    /// After the wait: names and terminates those not set up.
    fn terminate_unready(&self, launched: &[String], w: &Waited) -> Result<(), Error> {
        for id in &w.failed {
            let tail =
                setup::console_tail(&self.aws.ec2, id, 15).unwrap_or_else(|e| format!("(no console output: {e})"));
            log::warn!("instance {id} did not set itself up within {} s; its console ends:\n{tail}", self.a.wait);
        }
        let not_ready: Vec<String> = launched.iter().filter(|id| !w.stopped.contains(id)).cloned().collect();
        if !not_ready.is_empty() {
            setup::terminate(&self.aws.ec2, &not_ready).map_err(aws_err("TerminateInstances"))?;
            self.say(format!("terminated {} (not set up)", not_ready.join(", ")));
        }
        Ok(())
    }

    /// How it ended: interrupted, none set up (an error), or ready (the pool goes in the config).
    fn settle(&self, launched: &[String], w: Waited) -> Result<Outcome, Error> {
        if w.interrupted {
            return Ok(Outcome::Interrupted);
        }
        if w.stopped.is_empty() {
            return Err(Error::System(format!("no instance set itself up in {} s", self.a.wait)));
        }
        self.say(format!("ready (stopped, set up): {}", w.stopped.join(", ")));
        self.done(launched, &w.stopped);
        Ok(Outcome::Done)
    }

    /// The region's pool into the config, and with --json the summary.
    fn done(&self, launched: &[String], ready: &[String]) {
        let (a, s) = (self.a, &self.secrets);
        self.say(write_pool(&self.config_path, self.cfg.as_ref(), &a.region, s));
        if a.json {
            let summary = serde_json::json!({
                "event": "provisioned", "region": a.region, "launched": launched, "ready": ready,
                "cert_sha256": s.pin.to_string(), "token_file": s.token_file,
            });
            println!("{}", crate::output::json_line(summary));
        }
    }
}

/// Terminates `ids`; if EC2 does not, says which may still run.
fn terminate_or_name(ec2: &Ec2, ids: &[String]) {
    if let Err(e) = setup::terminate(ec2, ids) {
        log::error!("EC2 {}: cannot terminate {} ({e}): terminate them yourself", ec2.region, ids.join(", "));
    }
}

/// The ledger's record of an instance provision launched: no torrent yet, no agent reached.
fn entry(id: &str, ec2: &Ec2, token_file: &Path) -> Entry {
    Entry {
        kind: HelperKind::Ec2,
        name: id.into(),
        url: None,
        token_file: token_file.to_path_buf(),
        info_hash: None,
        owner: Owner::me(),
        engaged_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        region: Some(ec2.region.clone()),
        endpoint: Some(ec2.endpoint.clone()),
        cert_sha256: None,
        plain_http: false,
        torrent: None,
    }
}

struct Waited {
    stopped: Vec<String>,
    failed: Vec<String>,
    interrupted: bool,
}

/// Polls until every instance has stopped (set up), the time is up, or a signal came.
fn wait_stopped(ec2: &Ec2, ids: &[String], limit: Duration, stop: &Receiver<()>) -> Waited {
    let deadline = Instant::now() + limit;
    let mut stopped: Vec<String> = Vec::new();
    loop {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        if let Ok(list) = ec2.describe(&[("instance-id", &refs)]) {
            for i in list {
                // Stopping: it powered itself off once set up.
                let down = matches!(i.state, InstanceState::Stopped | InstanceState::Stopping);
                if down && !stopped.contains(&i.id) {
                    log::info!("instance {} is set up and stopped", i.id);
                    stopped.push(i.id);
                }
            }
        }
        let failed = || ids.iter().filter(|id| !stopped.contains(id)).cloned().collect();
        if stopped.len() == ids.len() {
            return Waited { stopped, failed: Vec::new(), interrupted: false };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Waited { failed: failed(), stopped, interrupted: false };
        }
        if stop.recv_timeout(left.min(Duration::from_secs(5))).is_ok() {
            log::warn!("interrupted: terminating the instances that are not set up yet");
            return Waited { failed: Vec::new(), stopped, interrupted: true };
        }
    }
}

/// Adds the region's `[[ec2.pool]]` to the config file, or says what to add if the config has
/// another pool for that region or cannot be written; what it did, in a line.
fn write_pool(path: &Path, cfg: Option<&Config>, region: &str, s: &Secrets) -> String {
    let token_file = toml_string(&s.token_file.display().to_string());
    let entry = format!(
        "\n[[ec2.pool]]                      # made by `odseed ec2 provision`\nregion = \"{region}\"\n\
         token_file = {token_file}\ncert_sha256 = \"{}\"\n",
        s.pin
    );
    let existing = cfg.and_then(|c| c.ec2.as_ref()).and_then(|x| x.pools.iter().find(|p| p.region == region));
    match existing {
        Some(p) if p.cert_sha256 == Some(s.pin) => {
            format!("config {}: the pool for {region} is already there", path.display())
        }
        Some(_) => format!("config {} has another pool for {region}; make it this one:{entry}", path.display()),
        None => {
            let mut text = match odseed_proto::fsutil::read_text_bounded(path, odseed_proto::fsutil::MAX_CONFIG_BYTES) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return format!("cannot read {} ({e}); add this yourself:{entry}", path.display()),
            };
            if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                return format!("{} is a symbolic link, left as it is; add this yourself:{entry}", path.display());
            }
            text.push_str(&entry);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            match odseed_proto::fsutil::write_atomic(path, text.as_bytes(), 0o600) {
                Ok(()) => format!("config {}: added the pool for {region}", path.display()),
                Err(e) => format!("cannot write {} ({e}); add this yourself:{entry}", path.display()),
            }
        }
    }
}

/// `text` as a TOML basic string, quotes included.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `odseed ec2 deprovision`: terminates every instance provision made in the region (tag
/// `odseed:provisioned=1`, and no other), then deletes the security group and the agent's S3
/// objects and bucket.
pub fn deprovision(a: &DeprovisionArgs) -> Result<(), Error> {
    let config_path = a.config.clone().unwrap_or_else(crate::config::default_path);
    let cfg = load_config(&config_path)?;
    let a = &DeprovisionArgs { region: region(&a.region, cfg.as_ref())?, ..a.clone() };
    let aws = aws(cfg.as_ref(), &a.region)?;
    let tag = format!("tag:{PROVISIONED_TAG}");
    let states = ["pending", "running", "stopping", "stopped", "shutting-down"];
    let found =
        aws.ec2.describe(&[(&tag, &["1"]), ("instance-state-name", &states)]).map_err(aws_err("DescribeInstances"))?;
    let ids: Vec<String> = found.into_iter().map(|i| i.id).collect();
    if !ids.is_empty() {
        setup::terminate(&aws.ec2, &ids).map_err(aws_err("TerminateInstances"))?;
        crate::output::say(&format!("terminated {}", ids.join(", ")));
        // The group cannot go while they exist.
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            let left = aws.ec2.describe(&[("instance-id", &refs)]).map_err(aws_err("DescribeInstances"))?;
            if left.iter().all(|i| i.state == InstanceState::Terminated) {
                break;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    setup::delete_security_group(&aws.ec2).map_err(aws_err("DeleteSecurityGroup"))?;
    crate::output::say(&format!("deleted security group {}", setup::GROUP_NAME));
    let dir = secrets::dir(&config_path, &a.region);
    for (bucket, key) in secrets::objects(&dir) {
        aws.s3.delete(&bucket, &key).map_err(aws_err("S3 DeleteObject"))?;
        crate::output::say(&format!("deleted s3://{bucket}/{key}"));
    }
    if let Some(bucket) = secrets::made_bucket(&dir) {
        aws.s3.delete_bucket(&bucket).map_err(aws_err("S3 DeleteBucket"))?;
        crate::output::say(&format!("deleted bucket {bucket}"));
    }
    secrets::forget_objects(&dir)?;
    Ok(())
}
