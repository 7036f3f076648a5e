//! Bad input: one clear line, exit 2, nothing engaged.

use crate::world;
use odseed_proto::bencode::Owned;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_ratios_are_refused() {
    let w = world("ratios");
    for ratio in ["1.5", "-0.1", "abc"] {
        let o = w.odseed(&["run", "file.txt", ratio]);
        assert_eq!(o.status.code(), Some(2), "{ratio}");
        let e = stderr(&o);
        assert!(e.contains("RATIO") && e.trim().lines().count() == 1, "{ratio}: {e}");
    }
}

#[test]
fn missing_and_bad_configs_say_what_to_do() {
    let w = world("configs");
    let o = w.odseed(&["run", "x", "0.5"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("no config at") && e.contains("[[board]]"), "shows an example: {e}");
    assert!(
        e.lines().any(|l| l.trim() == "[[board]]                         # one per helper running odseed-agent"),
        "with its newlines: {e}"
    );
    assert!(!e.contains("\\n"), "no literal \\n: {e}");

    let cfg = w.write_config("[policy]\nplacement = \"everywhere\"\n");
    let o = w.odseed(&["run", "x", "0.5", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("placement") && e.trim().lines().count() == 1, "{e}");
}

#[test]
fn unknown_and_malformed_torrents_are_refused() {
    let w = world("torrents");
    let cfg = w.write_config("");
    let cfg = cfg.to_str().unwrap();
    let o = w.odseed(&["run", "no-such-name", "0.5", "--config", cfg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no-such-name"), "{}", stderr(&o));

    let bad = w.dir.path().join("bad.torrent");
    std::fs::write(&bad, b"d4:infod4:name").unwrap();
    let o = w.odseed(&["run", bad.to_str().unwrap(), "0.5", "--config", cfg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.torrent") && stderr(&o).contains("not a torrent"), "{}", stderr(&o));

    // A v2-only torrent (libtorrent's v2_only): no helper could seed it; said before anything is engaged.
    let content = w.dir.path().join("v2.bin");
    odseed_lab::content::write_file(&content, 50_000, 1).unwrap();
    let v2 = odseed_lab::content::libtorrent_torrent(&content, &[], odseed_lab::content::Flavour::V2Only).unwrap();
    let file = w.dir.path().join("v2.torrent");
    std::fs::write(&file, v2).unwrap();
    let o = w.odseed(&["run", file.to_str().unwrap(), "0.5", "--config", cfg]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("v2-only") && stderr(&o).contains("hybrid"), "{}", stderr(&o));
}

#[test]
fn garbage_truncated_and_failing_trackers_are_observations_not_crashes() {
    use std::io::{Read, Write};
    let w = world("trackers");
    let bodies: [&str; 3] = ["not bencode", "d5:filesd20:", "d14:failure reason15:not whitelistede"];
    let answers: Vec<&'static [u8]> = bodies
        .iter()
        .map(|b| -> &'static [u8] {
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()).into_bytes().leak()
        })
        .collect();
    for (i, answer) in answers.into_iter().enumerate() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            // Every attempt (the scraper retries) gets the same answer.
            for stream in listener.incoming().take(3) {
                let Ok(mut s) = stream else { break };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer);
            }
        });
        let info = Owned::dict([
            ("name", Owned::str("t.bin")),
            ("length", Owned::Int(100 << 20)),
            ("piece length", Owned::Int(1 << 22)),
            ("pieces", Owned::Bytes(vec![0; 20 * 25])),
        ]);
        let torrent = Owned::dict([
            ("announce", Owned::str(&format!("http://127.0.0.1:{port}/announce?passkey=s3cr3tk3y"))),
            ("info", info),
        ])
        .encode();
        let path = w.dir.path().join(format!("t{i}.torrent"));
        std::fs::write(&path, torrent).unwrap();
        let cfg = w.write_config("");
        let o =
            w.odseed(&["run", path.to_str().unwrap(), "0.5", "--once", "--json", "--config", cfg.to_str().unwrap()]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{i}: {}", stderr(&o));
        assert!(out.contains("all trackers down") && out.contains("\"reason\":\"once\""), "{i}: {out}");
        let e = stderr(&o);
        let want = ["malformed answer", "malformed answer", "not whitelisted"][i];
        assert!(e.lines().any(|l| l.contains(want)), "{i}: {e}");
        assert!(!e.contains("s3cr3tk3y") && !out.contains("s3cr3tk3y"), "a tracker's passkey was shown: {e}");
        drop(server);
    }
}

#[test]
fn bad_ec2_setups_are_refused_in_one_line_without_a_secret() {
    let w = world("ec2input");
    std::fs::write(w.dir.path().join("pool.token"), "tok").unwrap();
    let pool = "[[ec2.pool]]\nregion = \"eu-west-3\"\ntoken_file = \"pool.token\"\n";
    let cases: [(&str, &str, &str); 5] = [
        ("[[ec2.pool]]\ntoken_file = \"pool.token\"\n", "", "missing field `region`"),
        ("[ec2]\nprofile = \"nope\"\n", "", "no AWS profile \"nope\" in"),
        ("[ec2]\nendpoint_url = \"localhost:5000\"\n", "", "`ec2.endpoint_url` \"localhost:5000\": it needs http://"),
        (
            "",
            "[default]\naws_access_key_id = AKID\nthis line holds sEcReT\n",
            "line 3: expected `[section]` or `key = value`",
        ),
        ("", "[default]\naws_access_key_id = AKID\n", "it has no aws_secret_access_key"),
    ];
    for (ec2, credentials, want) in cases {
        let cfg = w.write_config(&if ec2.contains("[[ec2.pool]]") { ec2.to_string() } else { format!("{ec2}{pool}") });
        let creds = w.dir.path().join("aws-credentials");
        let _ = std::fs::remove_file(&creds);
        if !credentials.is_empty() {
            std::fs::write(&creds, credentials).unwrap();
        }
        let o = w.odseed(&["run", "x", "0.5", "--config", cfg.to_str().unwrap()]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{want}: {e}");
        assert!(e.contains(want) && e.trim().lines().count() == 1, "{want}: {e}");
        assert!(!e.contains("sEcReT"), "{e}");
    }
    // An endpoint from the environment is checked too.
    std::fs::remove_file(w.dir.path().join("aws-credentials")).unwrap();
    let cfg = w.write_config(pool);
    let o = w
        .command(&["run", "x", "0.5", "--config", cfg.to_str().unwrap()])
        .env("AWS_ENDPOINT_URL_EC2", "http://")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("AWS_ENDPOINT_URL_EC2 \"http://\" is not an endpoint URL: it has no host"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn names_from_an_agent_cannot_act_on_the_terminal() {
    let w = world("escapes");
    let agent = odseed_lab::Agent::start(
        &odseed_lab::testing::agent_bin(),
        &w.dir.path().join("a"),
        &odseed_lab::AgentOptions::default(),
    )
    .unwrap();
    // A torrent whose name clears the screen and sets a colour (ESC and the 8-bit CSI).
    let name = "evil\u{1b}[2J\u{9b}31m.bin";
    let t = odseed_lab::content::make(&agent.data_dir, name, 1000, 7, &[]).unwrap();
    agent.client().put(&t.meta.info_hash, &t.bytes).unwrap();
    let cfg = w.write_config(&format!(
        "[[board]]\nname = \"b\"\nurl = \"{}\"\ntoken_file = \"{}\"\n",
        agent.url,
        agent.root.join("token").display()
    ));
    let o = w.odseed(&["status", "--config", cfg.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("evil\\u{1b}[2J\\u{9b}31m.bin"), "the name is shown escaped: {out}");
    assert!(!out.contains('\u{1b}') && !out.contains('\u{9b}'), "a raw control character reached the terminal");
}

/// An agent that answers every route with what a hostile one can send: terminal escapes, C1
/// controls, bidi overrides and line separators in every string, and strings of 100,000
/// characters; a `PUT` is refused with such a message (a fault). What it was asked, in order.
fn worst_agent() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let worst = format!("\u{1b}]0;x\u{7}\n\u{9b}2J\u{202e}evil\u{2028}\"\\{}", "z".repeat(100_000));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let _ = r.by_ref().take(length as u64).read_to_end(&mut Vec::new());
            let (method, path) = first
                .split_once(' ')
                .map(|(m, rest)| (m.to_string(), rest.split(' ').next().unwrap_or("").to_string()))
                .unwrap_or_default();
            log.lock().unwrap().push(format!("{method} {path}"));
            let torrent = serde_json::json!({"info_hash": "0".repeat(39) + "1", "name": worst, "state": "seeding",
                "percent_done": 1.0, "peers": 0, "upload_bps": 0, "uploaded_bytes": 0, "error": worst});
            let (status, body) = match (method.as_str(), path.as_str()) {
                (_, "/v1/health") => (
                    200,
                    serde_json::json!({"status": "ok", "version": worst, "daemon": "running", "torrents": 1, "daemon_version": worst}),
                ),
                ("PUT", _) => (422, serde_json::json!({"error": "bad_torrent", "message": worst})),
                ("DELETE", _) => (500, serde_json::json!({"error": "state_write", "message": worst})),
                (_, "/v1/torrents") => (200, serde_json::json!([torrent])),
                _ => (200, torrent),
            };
            let body = body.to_string();
            let mut c = conn;
            let _ = write!(c, "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (url, asked)
}

#[test]
fn every_json_line_is_json_whatever_an_agent_sends() {
    let w = world("worstjson");
    let (url, asked) = worst_agent();
    let token = w.dir.path().join("token");
    std::fs::write(&token, "token-token-token-token\n").unwrap();
    let cfg = w
        .write_config(&format!("[[board]]\nname = \"worst\"\nurl = \"{url}\"\ntoken_file = \"{}\"\n", token.display()));
    let content = w.dir.path().join("c.bin");
    let t = odseed_lab::content::make(w.dir.path(), "c.bin", 100_000, 3, &[]).unwrap();
    let torrent = w.dir.path().join("c.torrent");
    std::fs::write(&torrent, &t.bytes).unwrap();
    assert!(content.exists());
    let cfg = cfg.to_str().unwrap();
    // What a dead run left on it, for `odseed release` to try (and fail: the agent answers 500).
    let entry = serde_json::json!({"kind": "board", "name": "worst", "url": url, "token_file": token,
        "info_hash": t.meta.info_hash, "owner": {"pid": u32::MAX - 1, "start": 0}, "engaged_at": 1});
    std::fs::create_dir_all(w.ledger().parent().unwrap()).unwrap();
    std::fs::write(w.ledger(), serde_json::json!({"version": 1, "helpers": [entry]}).to_string()).unwrap();
    let runs: [&[&str]; 3] = [
        &["run", torrent.to_str().unwrap(), "1", "0", "3", "--once", "--min-size", "0", "--json", "--config", cfg],
        &["status", "--json", "--config", cfg],
        &["release", "--json", "--config", cfg],
    ];
    for args in runs {
        let o = w.odseed(args);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(!out.trim().is_empty(), "{args:?} printed nothing: {}", stderr(&o));
        for line in out.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line:.300}"));
            assert!(v.is_object(), "{line:.300}");
            assert!(line.len() < 40_000, "{args:?}: a line of {} bytes", line.len());
            for c in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}', '\u{2028}'] {
                assert!(!line.contains(c), "{args:?}: {c:?} written raw: {line:.300}");
            }
        }
    }
    let asked = asked.lock().unwrap().join(", ");
    assert!(asked.contains("PUT /v1/torrents/") && asked.contains("GET /v1/health"), "{asked}");
    // The fault quotes what the agent said, escaped inside its JSON string.
    let o = w.odseed(runs[0]);
    let out = String::from_utf8_lossy(&o.stdout);
    let fault = out.lines().find(|l| l.contains("\"fault\"")).unwrap_or_else(|| panic!("no fault: {out:.2000}"));
    let v: serde_json::Value = serde_json::from_str(fault).unwrap();
    assert!(v["message"].as_str().unwrap().contains("\u{202e}evil\u{2028}"), "{fault:.300}");
}
