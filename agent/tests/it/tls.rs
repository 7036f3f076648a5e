//! The API over TLS: a self-signed certificate made at first start and kept, its fingerprint in a
//! file and from `--fingerprint`, and clients that trust only that fingerprint.

use crate::{bin, torrent_in, world};
use odseed_lab::AgentOptions;
use odseed_proto::agent_client::{AgentClient, Error};
use odseed_proto::tls::Fingerprint;
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn the_api_speaks_tls_to_clients_that_pinned_its_certificate() {
    let w = world("tls");
    let mut agent = w.agent("a", &AgentOptions { tls: true, ..AgentOptions::default() });
    assert!(agent.url.starts_with("https://"), "{}", agent.url);
    let pin = agent.pin.expect("the agent wrote its fingerprint beside its certificate");
    let printed =
        std::process::Command::new(bin()).arg("--config").arg(&agent.config).arg("--fingerprint").output().unwrap();
    assert!(printed.status.success());
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), pin.to_string(), "--fingerprint prints the same");
    let cert = std::fs::read(agent.root.join("tls/cert.pem")).unwrap();
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(agent.root.join("tls/key.pem")).unwrap().permissions(),
    );
    assert_eq!(key_mode & 0o077, 0, "the key is the agent's alone");

    // The whole API works through the pinned client.
    let c = agent.client();
    let t = torrent_in(&agent.data_dir, "over-tls", 100_000);
    let (hash, bytes) = (t.meta.info_hash, t.bytes);
    let (t, new) = c.put(&hash, &bytes).unwrap();
    assert!(new && t.info_hash == hash);
    assert_eq!(c.list().unwrap().len(), 1);
    assert!(c.delete(&hash).unwrap());

    // Another fingerprint, or none: refused before a request is sent.
    let before = agent.requests_served().unwrap();
    let wrong =
        AgentClient::pinned(&agent.url, &agent.token, Some(Fingerprint::of(b"another")), Duration::from_secs(5));
    let unpinned = AgentClient::new(&agent.url, &agent.token, Duration::from_secs(5));
    for (client, says) in [(&wrong, "cert_sha256"), (&unpinned, "no cert_sha256")] {
        let e = client.health().unwrap_err();
        assert!(matches!(e, Error::Tls { .. }), "{e:?}");
        assert!(e.to_string().contains(says) && !e.to_string().contains(&agent.token), "{e}");
        let put = client.put(&hash, &bytes).unwrap_err();
        assert!(!put.maybe_applied(), "{put:?}");
    }
    // Plain HTTP to the TLS port gets no HTTP answer.
    let addr = agent.url.trim_start_matches("https://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(agent.requests_served().unwrap(), before + 1, "only the metrics request itself reached the API");

    // A restart keeps the certificate.
    agent.terminate(Duration::from_secs(30)).expect("stopped");
    agent.launch().unwrap();
    assert_eq!(agent.pin, Some(pin));
    assert_eq!(std::fs::read(agent.root.join("tls/cert.pem")).unwrap(), cert);
    assert!(agent.client().health().is_ok());
}

#[test]
fn answers_larger_than_rustls_buffer_go_out_whole() {
    let w = world("tlsbig");
    let agent = w.agent("a", &AgentOptions { tls: true, max_torrents: 400, ..AgentOptions::default() });
    let c = agent.client();
    // 300 torrents with 200-character names: a torrent list of well over rustls's 64 KiB default.
    for i in 0..300 {
        let t = torrent_in(&agent.data_dir, &format!("{i:03}-{}", "n".repeat(196)), 1000);
        c.put(&t.meta.info_hash, &t.bytes).unwrap();
    }
    let (status, body) = c.request("GET", "/v1/torrents", None).unwrap();
    assert_eq!(status, 200);
    assert!(body.len() > 64 * 1024, "{} bytes", body.len());
    assert_eq!(c.list().unwrap().len(), 300);
}
