//! Faults moto cannot make: a small HTTP proxy of the test's own, between odseed and moto, answers
//! chosen actions in chosen regions with what EC2 sends when things go wrong (throttling, no
//! capacity, no rights, a bare 500, a broken body, no answer at all) and forwards the rest.

use crate::ec2::{idle_agents, run_args, Cloud};
use crate::ec2_api::states;
use crate::{events, named, wait_engaged, world};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reply {
    Forward,
    /// Forwards (EC2 does it), then answers a bare 500 as if it had failed.
    ForwardThen500,
    /// An EC2 error response: status and code.
    Error(u16, &'static str),
    /// A 500 with no EC2 error in it.
    Bare500,
    /// 200 and a body that is not XML.
    Broken,
    /// Reads the request and never answers.
    Hang,
}

type Rules = dyn Fn(&str, &str, usize) -> Reply + Send + Sync;

/// The proxy: `rules(region, action, n)` decides the n-th (from 0) request of that action there.
pub struct FaultProxy {
    pub url: String,
    rules: Arc<Mutex<Arc<Rules>>>,
    /// (region, action, reply) for every request, in order.
    pub seen: Arc<Mutex<Vec<(String, String, Reply)>>>,
}

impl FaultProxy {
    pub fn start(upstream: String) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let rules: Arc<Mutex<Arc<Rules>>> = Arc::new(Mutex::new(Arc::new(|_: &str, _: &str, _: usize| Reply::Forward)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, s) = (rules.clone(), seen.clone());
        std::thread::spawn(move || {
            let counts = Arc::new(Mutex::new(HashMap::<(String, String), usize>::new()));
            for conn in listener.incoming().flatten() {
                let (r, s, c, up) = (r.clone(), s.clone(), counts.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, &r, &s, &c);
                });
            }
        });
        FaultProxy { url, rules, seen }
    }

    pub fn set(&self, rules: impl Fn(&str, &str, usize) -> Reply + Send + Sync + 'static) {
        *self.rules.lock().unwrap() = Arc::new(rules);
    }

    /// How many times `reply` was given to `action`.
    pub fn served(&self, action: &str, reply: Reply) -> usize {
        self.seen.lock().unwrap().iter().filter(|(_, a, r)| a == action && *r == reply).count()
    }
}

/// One request per connection (answers say `Connection: close`).
fn serve(
    mut conn: TcpStream,
    upstream: &str,
    rules: &Mutex<Arc<Rules>>,
    seen: &Mutex<Vec<(String, String, Reply)>>,
    counts: &Mutex<HashMap<(String, String), usize>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let action = form.get("Action").cloned().unwrap_or_default();
    // Credential=AKID/20260101/REGION/ec2/aws4_request
    let auth = header("authorization").unwrap_or_default();
    let region = auth.split("Credential=").nth(1).and_then(|c| c.split('/').nth(2)).unwrap_or("").to_string();
    let n = {
        let mut c = counts.lock().unwrap();
        let n = c.entry((region.clone(), action.clone())).or_default();
        *n += 1;
        *n - 1
    };
    let rule = rules.lock().unwrap().clone();
    let reply = rule(&region, &action, n);
    seen.lock().unwrap().push((region, action, reply));
    let (status, text) = match reply {
        Reply::Forward => forward(upstream, &headers, &body),
        Reply::ForwardThen500 => {
            forward(upstream, &headers, &body);
            (500, "<html>Internal Server Error</html>".into())
        }
        Reply::Error(status, code) => (
            status,
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>made by the test's proxy</Message></Error></Errors><RequestID>ab-12</RequestID></Response>"),
        ),
        Reply::Bare500 => (500, "<html>Internal Server Error</html>".into()),
        Reply::Broken => (200, "<DescribeInstancesResponse><reservationSet><item>".into()),
        Reply::Hang => {
            std::thread::sleep(Duration::from_secs(600));
            return Ok(());
        }
    };
    write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

fn forward(upstream: &str, headers: &[String], body: &[u8]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = agent.post(upstream);
    for h in headers.iter().skip(1) {
        if let Some((k, v)) = h.split_once(':') {
            if ["authorization", "x-amz-date", "x-amz-security-token", "content-type"]
                .contains(&k.to_ascii_lowercase().as_str())
            {
                req = req.header(k, v.trim());
            }
        }
    }
    match req.send(body) {
        Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
        Err(e) => (502, format!("proxy: {e}")),
    }
}

#[test]
fn ec2_faults_are_retried_or_fall_over_to_another_region_and_everything_is_still_stopped() {
    let w = world("ec2faults");
    let (mut agents, torrent) = idle_agents(&w, 2);
    let cloud = Cloud::start(&w);
    let paris = cloud.instances_for("eu-west-3", &mut agents[0..1]);
    let virginia = cloud.instances_for("us-east-1", &mut agents[1..2]);
    let (eu, us) = (cloud.ec2("eu-west-3"), cloud.ec2("us-east-1"));
    let proxy = FaultProxy::start(cloud.moto.url());
    let cfg = w.write_config(&cloud.config(&proxy.url, &["eu-west-3", "us-east-1"], 1, 30));
    let (torrent, cfg) = (torrent.to_str().unwrap(), cfg.to_str().unwrap());

    // Paris starts the instance but answers 500, then says it has no capacity (the instance must
    // be stopped all the same); Virginia throttles, breaks, hangs, then answers; its first stop is
    // a bare 500.
    proxy.set(|region, action, n| match (region, action, n) {
        ("eu-west-3", "StartInstances", 0) => Reply::ForwardThen500,
        ("eu-west-3", "StartInstances", _) => Reply::Error(500, "InsufficientInstanceCapacity"),
        ("us-east-1", "DescribeInstances", 0) => Reply::Error(503, "RequestLimitExceeded"),
        ("us-east-1", "DescribeInstances", 1) => Reply::Broken,
        ("us-east-1", "DescribeInstances", 2) => Reply::Hang,
        ("us-east-1", "StopInstances", 0) => Reply::Bare500,
        _ => Reply::Forward,
    });
    let mut run = w.spawn("fallover", &run_args(torrent, cfg, &[]));
    wait_engaged(&run, 1);
    let ev = events(&run);
    assert_eq!(named(&ev, "engage")[0]["helper"], virginia[0].as_str(), "{}", run.log_text());
    assert_eq!(named(&ev, "engage").len(), 1, "max_instances 1\n{}", run.log_text());
    let faults: Vec<&str> = named(&ev, "fault").iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(faults.iter().any(|f| f.contains("eu-west-3") && f.contains("InsufficientInstanceCapacity")), "{faults:?}");
    assert_eq!(proxy.served("StartInstances", Reply::ForwardThen500), 1);
    assert_eq!(states(&eu, &paris), ["stopped"], "started by an answer that said 500, and stopped");
    assert_eq!(states(&us, &virginia), ["running"]);
    for (action, reply) in [
        ("DescribeInstances", Reply::Error(503, "RequestLimitExceeded")),
        ("DescribeInstances", Reply::Broken),
        ("DescribeInstances", Reply::Hang),
        ("StartInstances", Reply::Error(500, "InsufficientInstanceCapacity")),
    ] {
        assert_eq!(
            proxy.served(action, reply),
            1,
            "{action} {reply:?} once: no retry of a refusal, retries of the rest"
        );
    }
    run.signal(libc::SIGTERM);
    let status = run.wait_exit(Duration::from_secs(60)).expect("an exit after SIGTERM");
    assert_eq!(status.code(), Some(130), "{}", run.log_text());
    assert_eq!(proxy.served("StopInstances", Reply::Bare500), 1, "{}", run.log_text());
    assert_eq!(states(&us, &virginia), ["stopped"], "stopped after a retried 500\n{}", run.log_text());
    assert!(std::fs::read_to_string(w.ledger()).unwrap().contains("\"helpers\": []"));

    // No rights anywhere: nothing starts, the run says why and ends at max_time.
    proxy.set(|region, _, _| match region {
        "eu-west-3" => Reply::Error(401, "AuthFailure"),
        _ => Reply::Error(403, "UnauthorizedOperation"),
    });
    // At the most verbose log level, to see that no secret is in it.
    let mut cmd = w.command(&run_args(torrent, cfg, &["--max-time", "3"]));
    cmd.env("RUST_LOG", "trace");
    let mut run = odseed_lab::Proc::spawn("norights", cmd, &w.dir.path().join("norights.log")).unwrap();
    let status = run.wait_exit(Duration::from_secs(60)).expect("an exit at max_time");
    assert!(status.success(), "{}", run.log_text());
    let ev = events(&run);
    assert!(named(&ev, "engage").is_empty(), "{}", run.log_text());
    let faults: Vec<&str> = named(&ev, "fault").iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(
        faults.iter().any(|f| f.contains("AuthFailure")) && faults.iter().any(|f| f.contains("UnauthorizedOperation")),
        "{faults:?}"
    );
    assert!(run.log_text().contains("[DEBUG]"), "a verbose log");
    assert!(!run.log_text().contains("made-up"), "no secret (key or session token) in the output");
    assert_eq!(states(&eu, &paris), ["stopped"]);
    assert_eq!(states(&us, &virginia), ["stopped"]);
}
