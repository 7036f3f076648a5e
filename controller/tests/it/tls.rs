//! Where odseed sends an agent's token: over TLS only to the pinned certificate, in clear only to
//! loopback and private addresses (or where the config says `plain_http`). Everything else is
//! refused in one line, before a byte reaches the agent.

use crate::world;
use odseed_lab::testing::agent_bin;
use odseed_lab::{Agent, AgentOptions};
use odseed_proto::tls::Fingerprint;
use serde_json::Value;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A listener of the test's own at `ip:5050` that counts the connections it gets and the bytes
/// they send.
fn listener(ip: Ipv4Addr) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = TcpListener::bind((ip, 5050)).unwrap();
    let (conns, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, b) = (conns.clone(), bytes.clone());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            let b = b.clone();
            std::thread::spawn(move || {
                let mut s = s;
                s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    b.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    (conns, bytes)
}

#[test]
fn a_token_goes_only_where_it_is_safe() {
    let w = world("transport");
    let agent =
        Agent::start(&agent_bin(), &w.dir.path().join("a"), &AgentOptions { tls: true, ..AgentOptions::default() })
            .unwrap();
    let pin = agent.pin.unwrap();
    let token_file = agent.root.join("token");
    let board = |url: &str, extra: &str| {
        format!("[[board]]\nname = \"b\"\nurl = \"{url}\"\ntoken_file = \"{}\"\n{extra}", token_file.display())
    };
    let status = |cfg: &str| {
        let path = w.write_config(cfg);
        w.odseed(&["status", "--json", "--config", path.to_str().unwrap()])
    };

    // The pinned certificate: reachable over TLS, and status says the pin matched.
    let o = status(&board(&agent.url, &format!("cert_sha256 = \"{pin}\"\n")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = &v["boards"][0];
    assert_eq!(
        (b["transport"].as_str(), b["pin"].as_str(), b["reachable"].as_bool()),
        (Some("https"), Some("matched"), Some(true)),
        "{b}"
    );

    // Another certificate: the handshake fails, nothing reaches the agent, status says so.
    let before = agent.requests_served().unwrap();
    let o = status(&board(&agent.url, &format!("cert_sha256 = \"{}\"\n", Fingerprint::of(b"other"))));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = &v["boards"][0];
    assert_eq!((b["pin"].as_str(), b["reachable"].as_bool()), (Some("failed"), Some(false)), "{b}");
    assert!(b["error"].as_str().unwrap_or_default().contains("cert_sha256"), "{b}");
    assert_eq!(agent.requests_served().unwrap(), before + 1, "only the test's own metrics request reached the agent");
    let table = w.odseed(&["status", "--config", w.dir.path().join("odseed.toml").to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("PIN FAILED"),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );

    // A public address (one this namespace has) with a listener of the test's own.
    let public = Ipv4Addr::new(203, 0, 113, 7);
    w.ns.add_host(public).unwrap();
    let (conns, _) = listener(public);
    let refused = [
        (board(&agent.url, ""), "no `cert_sha256`"),
        (board("http://203.0.113.7:5050", ""), "in clear"),
        (board("http://203.0.113.7:5050", &format!("cert_sha256 = \"{pin}\"\n")), "not https://"),
        (board(&agent.url, "cert_sha256 = \"12:34\"\n"), "SHA-256 fingerprint"),
    ];
    for (cfg, says) in refused {
        let o = status(&cfg);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{cfg}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(says), "{cfg}: {err}");
        assert!(!err.contains(&agent.token), "{err}");
    }
    // The client itself refuses too, whatever a config let through (a host name resolves there).
    let direct =
        odseed_proto::agent_client::AgentClient::new("http://203.0.113.7:5050", &agent.token, Duration::from_secs(5));
    let e = direct.health().unwrap_err().to_string();
    assert!(e.contains("refused to send the token in clear to 203.0.113.7"), "{e}");
    assert_eq!(conns.load(Ordering::SeqCst), 0, "nothing connected to the public address");
    assert_eq!(agent.requests_served().unwrap(), before + 2, "nor to the agent");

    // Unless the config says so.
    let o = status(&board("http://203.0.113.7:5050", "plain_http = true\n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(conns.load(Ordering::SeqCst) >= 1, "plain_http = true lets it through");
}
