//! AWS credentials found as AWS's tools find them, against moto (EC2 and STS) and a stand-in of the
//! SSO portal: a profile that assumes a role signs every EC2 call with it (moto keeps EC2 apart per
//! account, and the account is the signing key's), a `credential_process` is run again as its keys
//! expire while a run uses EC2, bad set-ups are one line, and SSO's cached token is traded for the
//! role's keys.

use crate::ec2::{idle_agents, run_args, Cloud, TOKEN};
use crate::ec2_api::{make_instances, states};
use crate::{events, named, wait_engaged, world, World};
use odseed::ec2::credentials::{self, Env, Provider};
use odseed::ec2::Ec2;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The chain as odseed run in `w` sees it.
fn env_of(w: &World) -> Env {
    Env::with(
        &[
            ("AWS_CONFIG_FILE", w.aws_config().to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", w.aws_credentials().to_str().unwrap()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        w.dir.path(),
    )
}

#[test]
fn a_profile_that_assumes_a_role_signs_every_ec2_call_with_the_role() {
    let w = world("assume");
    let (mut agents, torrent) = idle_agents(&w, 1);
    let cloud = Cloud::start(&w);
    std::fs::write(w.aws_credentials(), "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n")
        .unwrap();
    std::fs::write(
        w.aws_config(),
        "[profile odseed]\nrole_arn = arn:aws:iam::111111111111:role/odseed\nsource_profile = base\nrole_session_name = odseed-test\nregion = eu-west-3\n",
    )
    .unwrap();
    let role = credentials::load(&env_of(&w), Some("odseed"), Some(&cloud.moto.url())).unwrap();
    assert!(
        role.source.contains("role arn:aws:iam::111111111111:role/odseed") && role.source.contains("profile \"base\""),
        "{}",
        role.source
    );
    assert!(role.credentials.access_key_id != "AKIDBASE" && role.credentials.expires.is_some(), "{role:?}");
    // The test's own client signs as the role: its instance is in the role's account.
    let as_role = Ec2::new("eu-west-3", &cloud.moto.url(), Provider::fixed(role.credentials), Duration::from_secs(10));
    agents[0].set_token(TOKEN).unwrap();
    let tags = [("odseed:role", "helper"), ("odseed:agent-url", agents[0].url.as_str())];
    let mine = make_instances(&as_role, 1, &tags);
    // The same tag in the account of keys that are not the role's: a run signing with those would start it.
    let other_account = cloud.ec2("eu-west-3");
    let other = make_instances(&other_account, 1, &tags);

    let cfg =
        cloud.config(&cloud.moto.url(), &["eu-west-3"], 2, 30).replace("[ec2]\n", "[ec2]\nprofile = \"odseed\"\n");
    let cfg = w.write_config(&cfg);
    let (torrent, cfg) = (torrent.to_str().unwrap(), cfg.to_str().unwrap());
    let mut run = w.spawn("run", &run_args(torrent, cfg, &["--max-time", "4"]));
    wait_engaged(&run, 1);
    assert_eq!(states(&as_role, &mine), ["running"], "{}", run.log_text());
    assert_eq!(states(&other_account, &other), ["stopped"], "only the role's account is seen");
    let status = run.wait_exit(Duration::from_secs(60)).expect("the run ends");
    assert!(status.success(), "{}", run.log_text());
    assert!(states(&as_role, &mine).iter().all(|s| s == "stopped" || s == "stopping"), "{}", run.log_text());
    let ev = events(&run);
    let engaged: Vec<&str> = named(&ev, "engage").iter().filter_map(|e| e["helper"].as_str()).collect();
    assert_eq!(engaged, [mine[0].as_str()]);

    // `odseed status` says where the credentials came from and when they expire, never a secret.
    let out = w.odseed(&["status", "--json", "--config", cfg]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let source = status["aws_credentials"]["source"].as_str().unwrap_or_default();
    assert!(source.contains("role arn:aws:iam::111111111111:role/odseed"), "{status}");
    assert!(status["aws_credentials"]["expires"].is_string(), "{status}");
    let human = String::from_utf8_lossy(&w.odseed(&["status", "--config", cfg]).stdout).into_owned();
    assert!(
        human.contains("AWS credentials from profile \"odseed\": role") && !human.contains("base-secret"),
        "{human}"
    );
}

/// A credential_process script whose keys expire `life` seconds after each run; it counts its runs.
fn expiring_process(w: &World, life: u32) -> std::path::PathBuf {
    let count = w.dir.path().join("process.count");
    let script = w.dir.path().join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(( $(cat {c} 2>/dev/null || echo 0) + 1 ))\necho $n > {c}\nexp=$(date -u -d @$(( $(date +%s) + {life} )) +%Y-%m-%dT%H:%M:%SZ)\nprintf '{{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC%s\", \"SecretAccessKey\": \"proc-secret\", \"SessionToken\": \"t\", \"Expiration\": \"%s\"}}' $n $exp\n",
            c = count.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(w.aws_credentials(), "").unwrap();
    std::fs::write(
        w.aws_config(),
        format!("[default]\nregion = eu-west-3\ncredential_process = {}\n", script.display()),
    )
    .unwrap();
    count
}

fn runs_of(count: &std::path::Path) -> u32 {
    std::fs::read_to_string(count).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn a_credential_process_is_run_again_as_its_keys_expire_and_a_failing_one_is_said_once() {
    let w = world("credproc");
    let (mut agents, torrent) = idle_agents(&w, 1);
    let cloud = Cloud::start(&w);
    let ids = cloud.instances_for("eu-west-3", &mut agents[..]);
    let ec2 = cloud.ec2("eu-west-3");
    let count = expiring_process(&w, 6);
    let cfg = w.write_config(&cloud.config(&cloud.moto.url(), &["eu-west-3"], 1, 30));
    let (torrent, cfg) = (torrent.to_str().unwrap(), cfg.to_str().unwrap());

    let mut run = w.spawn("run", &run_args(torrent, cfg, &["--max-time", "60"]));
    wait_engaged(&run, 1);
    assert_eq!(states(&ec2, &ids), ["running"], "{}", run.log_text());
    // Renewed before each expiry while the rounds go on.
    odseed_lab::wait_until(Duration::from_secs(30), "three renewals", || (runs_of(&count) >= 4).then_some(()))
        .unwrap_or_else(|e| panic!("{e}\n{}", run.log_text()));
    // The process breaks: said once, EC2 set aside, the run goes on; it heals: EC2 is used again.
    let path = w.dir.path().join("creds.sh");
    let script = std::fs::read_to_string(&path).unwrap();
    // Replaced whole (a rename), never rewritten while odseed may be running it.
    let replace = |text: &str| {
        let tmp = w.dir.path().join("creds.sh.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    replace("#!/bin/sh\necho broken >&2\nexit 1\n");
    let said = |run: &odseed_lab::Proc| -> usize {
        let ev = events(run);
        let faults = named(&ev, "fault");
        faults.iter().filter(|f| f["message"].as_str().unwrap_or("").contains("EC2 is not used until")).count()
    };
    odseed_lab::wait_until(Duration::from_secs(40), "a fault about the renewal", || (said(&run) > 0).then_some(()))
        .unwrap_or_else(|e| panic!("{e}\n{}", run.log_text()));
    // Rounds that find no credentials go by before it heals.
    let polls = || named(&events(&run), "poll").len();
    let before = polls();
    odseed_lab::wait_until(Duration::from_secs(30), "three rounds without credentials", || {
        (polls() >= before + 3).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log_text()));
    replace(&script);
    let status = run.wait_exit(Duration::from_secs(90)).expect("the run ends");
    assert!(status.success(), "{}", run.log_text());
    assert_eq!(said(&run), 1, "said once\n{}", run.log_text());
    assert!(!run.log_text().contains("proc-secret"), "no secret in the log");
    assert!(ec2.describe(&[]).unwrap().iter().all(|i| i.state.to_string() != "running"), "{}", run.log_text());
}

#[test]
fn bad_aws_set_ups_are_one_clear_line_and_exit_2() {
    let w = world("awsbad");
    let (_agents, torrent) = idle_agents(&w, 1);
    let cloud = Cloud::start(&w);
    let torrent = torrent.to_str().unwrap().to_string();
    let cases: [(&str, &str, &str); 5] = [
        ("", "[default]\ncredential_process = sh -c 'echo secret-garbage'\n", "is not the JSON"),
        ("", "[default]\ncredential_process = sh -c 'exit 1'\n", "credential_process: it failed"),
        ("", "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n", "cycle: a -> b -> a"),
        ("", "[profile other]\nregion = eu-west-3\n", "no AWS profile \"a\""),
        ("[a]\naws_access_key_id = AKIDX\n", "", "has no aws_secret_access_key"),
    ];
    for (i, (creds, config, want)) in cases.iter().enumerate() {
        std::fs::write(w.aws_credentials(), creds).unwrap();
        std::fs::write(w.aws_config(), config).unwrap();
        let profile = if config.contains("[profile a]") || config.contains("other") || creds.contains("[a]") {
            "profile = \"a\"\n"
        } else {
            ""
        };
        let cfg =
            cloud.config(&cloud.moto.url(), &["eu-west-3"], 1, 30).replace("[ec2]\n", &format!("[ec2]\n{profile}"));
        let cfg = w.write_config(&cfg);
        let out = w.odseed(&run_args(&torrent, cfg.to_str().unwrap(), &[]));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        let line = err.lines().find(|l| l.contains(want)).unwrap_or_else(|| panic!("case {i}: {want:?} in {err}"));
        assert!(
            line.contains(w.aws_config().to_str().unwrap()) || line.contains(w.aws_credentials().to_str().unwrap()),
            "case {i}: names the file: {line}"
        );
        assert!(!err.contains("secret-garbage"), "case {i}: what the process printed is not repeated: {err}");
    }
}

/// A stand-in HTTP server on loopback: `answer(request line, headers)` gives status and body. It
/// counts the requests.
fn stand_in(answer: impl Fn(&str, &[String]) -> (&'static str, String) + Send + 'static) -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let headers: Vec<String> = head.iter().skip(1).map(|h| h.to_ascii_lowercase()).collect();
            let (status, body) = answer(head.first().map_or("", String::as_str), &headers);
            let mut conn = conn;
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, asked)
}

/// In an hour, in milliseconds since the epoch and as RFC 3339.
fn in_an_hour() -> (u128, String) {
    let t = std::time::SystemTime::now() + Duration::from_secs(3600);
    (t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(), credentials::format_time(t))
}

/// A stand-in of the SSO portal's GetRoleCredentials: the role's keys for `token`, 401 otherwise.
fn sso_portal(token: &'static str) -> (String, Arc<AtomicUsize>) {
    stand_in(move |request, headers| {
        let ok = request.starts_with("GET /federation/credentials?")
            && request.contains("account_id=111111111111")
            && request.contains("role_name=Odseed")
            && headers.iter().any(|h| *h == format!("x-amz-sso_bearer_token: {token}"));
        if ok {
            let body = format!(
                "{{\"roleCredentials\":{{\"accessKeyId\":\"ASIASSO\",\"secretAccessKey\":\"sso-secret\",\"sessionToken\":\"tok\",\"expiration\":{}}}}}",
                in_an_hour().0
            );
            ("200 OK", body)
        } else {
            ("401 Unauthorized", "{\"message\":\"Session token not found or invalid\"}".to_string())
        }
    })
}

#[test]
fn web_identity_a_container_and_an_instance_role_each_give_credentials() {
    let w = world("awsmachine");
    let cloud = Cloud::start(&w);
    // Web identity: STS AssumeRoleWithWebIdentity at moto, unsigned.
    let token = w.dir.path().join("token.jwt");
    std::fs::write(&token, "eyJhbGciOiJub25lIn0.e30.").unwrap();
    let moto = cloud.moto.url();
    let env = Env::with(
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
            ("AWS_ROLE_ARN", "arn:aws:iam::222222222222:role/ci"),
            ("AWS_ENDPOINT_URL", &moto),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        w.dir.path(),
    );
    let found = credentials::load(&env, None, None).unwrap();
    assert!(found.source.contains("web identity, role arn:aws:iam::222222222222:role/ci"), "{found:?}");
    assert!(found.credentials.session_token.is_some() && found.credentials.expires.is_some(), "{found:?}");

    // A container's credentials endpoint, with its authorization token.
    let (container, _) = stand_in(|request, headers| {
        let ok = request.starts_with("GET /creds ") && headers.iter().any(|h| h == "authorization: container-token");
        let body = format!(
            "{{\"AccessKeyId\":\"ASIACONTAINER\",\"SecretAccessKey\":\"s\",\"Token\":\"t\",\"Expiration\":\"{}\",\"RoleArn\":\"r\"}}",
            in_an_hour().1
        );
        if ok {
            ("200 OK", body)
        } else {
            ("403 Forbidden", "{}".to_string())
        }
    });
    let full = format!("{container}creds");
    let env = Env::with(
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
        ],
        w.dir.path(),
    );
    let found = credentials::load(&env, None, None).unwrap();
    assert_eq!(
        (found.credentials.access_key_id.as_str(), found.source.as_str()),
        ("ASIACONTAINER", "the container's credentials")
    );
    let env =
        Env::with(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full), ("AWS_CONFIG_FILE", "/nonexistent")], w.dir.path());
    let e = credentials::load(&env, None, None).unwrap_err();
    assert!(e.contains("container credentials: HTTP 403"), "{e}");

    // IMDSv2: a session token first, then the role's name, then its credentials.
    let (imds, asked) = stand_in(|request, headers| {
        let token = headers.iter().any(|h| h == "x-aws-ec2-metadata-token: imds-token");
        match request.split(' ').take(2).collect::<Vec<_>>()[..] {
            ["PUT", "/latest/api/token"] if headers.iter().any(|h| h.starts_with("x-aws-ec2-metadata-token-ttl-seconds:")) => {
                ("200 OK", "imds-token".into())
            }
            ["GET", "/latest/meta-data/iam/security-credentials/"] if token => ("200 OK", "odseed-role\n".into()),
            ["GET", "/latest/meta-data/iam/security-credentials/odseed-role"] if token => (
                "200 OK",
                format!(
                    "{{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAIMDS\",\"SecretAccessKey\":\"s\",\"Token\":\"t\",\"Expiration\":\"{}\"}}",
                    in_an_hour().1
                ),
            ),
            _ => ("401 Unauthorized", String::new()),
        }
    });
    let env =
        Env::with(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds), ("AWS_CONFIG_FILE", "/nonexistent")], w.dir.path());
    let found = credentials::load(&env, None, None).unwrap();
    assert_eq!((found.credentials.access_key_id.as_str(), asked.load(Ordering::SeqCst)), ("ASIAIMDS", 3));
    assert!(found.source.contains("IMDSv2"), "{found:?}");
    // Nothing there (a laptop): the chain ends with the usual line.
    let env = Env::with(
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"), ("AWS_CONFIG_FILE", "/nonexistent")],
        w.dir.path(),
    );
    assert!(credentials::load(&env, None, None).unwrap_err().starts_with("no AWS credentials"));
}

#[test]
fn an_sso_profile_trades_the_cached_token_for_the_role_s_keys_and_an_expired_one_asks_for_a_login() {
    let home = odseed_lab::TempDir::new("sso").unwrap();
    let (portal, asked) = sso_portal("the-access-token");
    std::fs::create_dir_all(home.path().join(".aws/sso/cache")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile dev]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Odseed\nregion = eu-west-3\n[sso-session corp]\nsso_region = eu-central-1\nsso_start_url = https://corp.awsapps.com/start\n",
    )
    .unwrap();
    let cache = home.path().join(format!(".aws/sso/cache/{}.json", sha1_smol::Sha1::from("corp").digest()));
    let write_token = |expires: &str| {
        std::fs::write(&cache, format!("{{\"startUrl\":\"https://corp.awsapps.com/start\",\"region\":\"eu-central-1\",\"accessToken\":\"the-access-token\",\"expiresAt\":\"{expires}\"}}")).unwrap()
    };
    let env = Env::with(
        &[
            ("AWS_ENDPOINT_URL_SSO", &portal),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ],
        home.path(),
    );
    write_token("2099-01-01T00:00:00Z");
    let found = credentials::load(&env, Some("dev"), None).unwrap();
    assert_eq!(found.credentials.access_key_id, "ASIASSO");
    assert!(
        found.credentials.expires.is_some() && found.source.contains("SSO, account 111111111111 role Odseed"),
        "{found:?}"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // Expired: a line asking for `aws sso login`, and the portal not asked.
    write_token("2020-01-01T00:00:00Z");
    let e = credentials::load(&env, Some("dev"), None).unwrap_err();
    assert!(
        e.contains("expired") && e.contains("aws sso login --sso-session corp") && e.contains("profile \"dev\""),
        "{e}"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // A token the portal refuses.
    std::fs::write(&cache, "{\"accessToken\":\"revoked\",\"expiresAt\":\"2099-01-01T00:00:00Z\"}").unwrap();
    let e = credentials::load(&env, Some("dev"), None).unwrap_err();
    assert!(e.contains("refused the token (HTTP 401)"), "{e}");
    // No login at all.
    std::fs::remove_file(&cache).unwrap();
    let e = credentials::load(&env, Some("dev"), None).unwrap_err();
    assert!(e.contains("no SSO token") && e.contains("aws sso login"), "{e}");
}
