//! The publisher's own client, each of the three odseed asks (`[client] kind` = transmission,
//! qbittorrent, deluge; `[transmission]` too): the torrent found by name or info hash, the leechers
//! connected to it counted, a crowd seen between rounds, `watch`'s catalogue with and without a
//! label or category, "no connected peers"; and a client that refuses the password, answers HTML or
//! too much, or stops answering mid-run.

use crate::{events, named, world, World};
use odseed::publisher::Publisher;
use odseed_lab::clients::{Client, Leecher};
use odseed_lab::origin::OriginClient;
use odseed_lab::swarm::{leecher_ip, Spec, Swarm};
use odseed_lab::testing::{agent_bin, Daemon};
use odseed_lab::wait_until;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

each_daemon! {
/// The publisher's Transmission 3.00 or 4.x (and the swarm's other peers and agents alike).
fn transmission_as_the_publishers_client(d: Daemon) {
    publishers_client("publisher", OriginClient::Transmission, Some(d));
}
}

/// qBittorrent 4.5 (Debian 12's qbittorrent-nox) as the publisher's client.
#[test]
fn qbittorrent_as_the_publishers_client() {
    publishers_client("qbittorrent", OriginClient::Qbittorrent, None);
}

/// qBittorrent 5.x (Debian 13's qbittorrent-nox, through scripts/qbittorrent-nox-5) as the
/// publisher's client.
#[test]
fn qbittorrent_5_as_the_publishers_client() {
    publishers_client_program("qbittorrent5", OriginClient::Qbittorrent, None, Some(qbittorrent_5()));
}

/// `$ODSEED_QBITTORRENT_5`: a test of it must not pass without it.
fn qbittorrent_5() -> PathBuf {
    std::env::var_os("ODSEED_QBITTORRENT_5")
        .map(PathBuf::from)
        .expect("ODSEED_QBITTORRENT_5 is not set (scripts/test points it at scripts/qbittorrent-nox-5)")
}

/// Deluge 2.0 (Debian 12's deluged and deluge-web) as the publisher's client.
#[test]
fn deluge_as_the_publishers_client() {
    publishers_client("deluge", OriginClient::Deluge, None);
}

/// A swarm whose origin is `origin`: one full board, no leecher yet, the origin and the board slow
/// (20 kB/s) so that a crowd stays a while.
fn swarm(w: &World, origin: OriginClient, daemon: Option<Daemon>, program: Option<PathBuf>) -> Swarm {
    let spec = Spec {
        size: 1 << 20,
        leechers: 0,
        boards: 1,
        origin_kbps: 20,
        helper_kbps: 20,
        daemon: daemon.map(|d| d.program()),
        torrents: 1,
        origin_client: origin,
        origin_program: program,
        ..Spec::default()
    };
    let swarm = Swarm::start(&w.ns, w.dir.path(), &spec, &agent_bin()).unwrap();
    swarm.wait_announced(Duration::from_secs(60)).unwrap();
    swarm
}

/// The config's `[client]` section for the swarm's origin (`[transmission]` for Transmission, the
/// older spelling, which must keep working).
fn client_section(w: &World, swarm: &Swarm) -> String {
    let section = swarm.origin.as_publisher(w.dir.path()).unwrap();
    section.replace("[client]\nkind = \"transmission\"\n", "[transmission]\n")
}

/// odseed's own module for the client the config names, as `run` and `watch` build it.
fn publisher(cfg: &Path) -> Arc<dyn Publisher> {
    let cfg = odseed::config::load(cfg).unwrap();
    odseed::publisher::from_config(&cfg).expect("a client")
}

fn exit_reason(out: &[u8]) -> Value {
    let out = String::from_utf8_lossy(out);
    let exit: Vec<Value> =
        out.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|e| e["event"] == "exit").collect();
    exit.first().map(|e| e["reason"].clone()).unwrap_or(Value::Null)
}

fn publishers_client(name: &str, origin: OriginClient, daemon: Option<Daemon>) {
    publishers_client_program(name, origin, daemon, None);
}

fn publishers_client_program(name: &str, origin: OriginClient, daemon: Option<Daemon>, program: Option<PathBuf>) {
    let w = world(name);
    let qbittorrent_5 = program.is_some();
    let mut swarm = swarm(&w, origin, daemon, program);
    let version = swarm.origin.describe();
    match origin {
        OriginClient::Qbittorrent if qbittorrent_5 => assert!(version.starts_with("qBittorrent v5."), "{version}"),
        OriginClient::Qbittorrent => assert!(version.starts_with("qBittorrent v4."), "{version}"),
        OriginClient::Deluge => assert!(version.starts_with("Deluge 2."), "{version}"),
        OriginClient::Transmission => assert!(version.starts_with("Transmission "), "{version}"),
    }
    let cfg = w.write_config(&format!("{}{}", client_section(&w, &swarm), swarm.controller_config()));
    let cfg = cfg.to_str().unwrap();
    let info_hash = swarm.torrent().meta.info_hash;
    let hash = info_hash.to_string();

    // What odseed reads of the client: the torrent, seeding, its tracker, nobody connected, and
    // the client's copy of the torrent.
    let p = publisher(Path::new(cfg));
    // qBittorrent shows a torrent added without a check as checkingResumeData for a moment.
    let entries = wait_until(Duration::from_secs(30), "the origin to seed", || {
        p.entries(None).ok().filter(|e| e.iter().any(|e| e.seeding))
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", p.entries(None)));
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!((e.hash, e.name.as_str(), e.size, e.seeding), (info_hash, "payload.bin", 1 << 20, true), "{e:?}");
    assert_eq!(e.trackers, swarm.torrent().meta.trackers);
    assert_eq!((e.peers_connected, e.leechers), (Some(0), Some(0)));
    let copy = p.torrent(&e.hash, e.file.as_deref()).unwrap();
    assert_eq!(odseed_proto::metainfo::parse(&copy).unwrap().info_hash, info_hash, "the client's copy");

    // By name and by info hash (upper case as a person might paste it): the origin has no peer.
    for torrent in ["payload.bin", &hash, &hash.to_uppercase()] {
        let o = w.odseed(&["run", torrent, "0.5", "--min-size", "0", "--json", "--config", cfg]);
        assert!(o.status.success(), "{torrent}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(exit_reason(&o.stdout), "no_peers", "{torrent}: {}", String::from_utf8_lossy(&o.stdout));
    }
    let o = w.odseed(&["run", "no-such-torrent", "0.5", "--config", cfg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no torrent named \"no-such-torrent\""));

    // Too small is judged before anything else (the default --min-size is 50 MiB).
    let o = w.odseed(&["run", "payload.bin", "0.5", "--json", "--config", cfg]);
    assert_eq!(exit_reason(&o.stdout), "too_small");

    if let Some(d) = daemon {
        // status: the board is reachable, seeds nothing, and the ledger is empty.
        let o = w.odseed(&["status", "--json", "--config", cfg]);
        assert!(o.status.success());
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (v["boards"][0]["name"].as_str(), v["boards"][0]["reachable"].as_bool()),
            (Some("board0"), Some(true))
        );
        assert_eq!(v["boards"][0]["torrents"].as_array().map(Vec::len), Some(0));
        let version = v["boards"][0]["daemon_version"].as_str().unwrap_or_default();
        assert!(version.starts_with(&format!("{}.", d.major())), "status shows the board's daemon: {version:?}");
        assert_eq!(v["ledger"].as_array().map(Vec::len), Some(0));
    }

    // watch: the catalogue is what the publisher seeds, or what has the label (Transmission's
    // label, qBittorrent's category, Deluge's label).
    swarm.origin.set_label(&info_hash, "odseed").unwrap();
    assert!(p.entries(None).unwrap()[0].groups.contains(&"odseed".to_string()));
    let base = std::fs::read_to_string(cfg).unwrap();
    for (label, seen) in [(None, 1), (Some("odseed"), 1), (Some("other"), 0)] {
        let watch = label.map(|l| format!("[watch]\nlabel = \"{l}\"\n")).unwrap_or_default();
        let cfg = w.write_config(&format!("{base}{watch}[policy]\nmin_size = 0\n"));
        let o = w.odseed(&["watch", "--once", "--json", "--config", cfg.to_str().unwrap()]);
        assert!(o.status.success(), "{label:?}: {}", String::from_utf8_lossy(&o.stderr));
        let events: Vec<Value> =
            String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let round = events.iter().find(|e| e["event"] == "round").expect("a round");
        // Nobody is connected to the origin: no torrent needs help.
        assert_eq!((round["torrents"].as_u64(), round["needing_help"].as_u64()), (Some(seen), Some(0)), "{label:?}");
        assert_eq!(events.last().unwrap()["reason"], "once");
    }

    // The client restarted: odseed's session is gone, and it signs in again.
    if origin != OriginClient::Transmission {
        swarm.origin.restart().unwrap();
        assert_eq!(p.entries(None).unwrap().len(), 1, "signed in again");
        // A restarted qBittorrent reads its torrents' resume data first (checkingResumeData).
        wait_until(Duration::from_secs(60), "the origin to seed again", || {
            p.entries(None).ok().filter(|e| e.iter().any(|e| e.seeding))
        })
        .unwrap();
    }

    // A crowd between rounds: watch at a 10-minute interval has had its first round; two leechers
    // come. Only the client sees them between rounds: a helper engaged before the next interval
    // is the crowd seen there.
    let cfg =
        w.write_config(&format!("{base}[watch]\nratio = 1\n[policy]\nmin_size = 0\ninterval = 600\ncooldown = 5\n"));
    let watch = w.spawn("watch", &["watch", "--json", "--config", cfg.to_str().unwrap()]);
    wait_until(Duration::from_secs(60), "watch's first round", || {
        (!named(&events(&watch), "round").is_empty()).then_some(())
    })
    .unwrap();
    assert!(named(&events(&watch), "engage").is_empty(), "nobody came yet: {}", watch.log_text());
    let leechers: Vec<Leecher> = (0..2)
        .map(|i| {
            w.ns.add_host(leecher_ip(i)).unwrap();
            Leecher::start(
                w.dir.path(),
                &format!("leecher{i}"),
                Client::Libtorrent,
                leecher_ip(i),
                &swarm.torrent().bytes,
            )
            .unwrap()
        })
        .collect();
    // The client counts them as they connect.
    wait_until(Duration::from_secs(60), "the client to count two leechers", || {
        (p.leechers(None).ok()?.get(&info_hash) == Some(&2)).then_some(())
    })
    .unwrap();
    let e = &p.entries(Some(&[info_hash])).unwrap()[0];
    assert!(e.peers_connected >= Some(2) && e.leechers == Some(2), "{e:?}");
    wait_until(Duration::from_secs(120), "a helper engaged for the crowd, before the next interval", || {
        named(&events(&watch), "engage").first().map(|_| ())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", watch.log_text()));
    assert!(watch.log_text().contains("sees more leechers: a round now"), "{}", watch.log_text());
    watch.signal(libc::SIGTERM);
    drop(leechers);
}

/// A `.torrent` file for runs that need no client to find it.
fn torrent_file(w: &World, swarm: &Swarm) -> PathBuf {
    let file = w.dir.path().join("payload.torrent");
    std::fs::write(&file, &swarm.torrent().bytes).unwrap();
    file
}

/// `odseed run FILE 1` for 6 s, a round a second; (exit reason, stderr, polls).
fn short_run(w: &World, torrent: &Path, cfg: &Path) -> (Value, String, usize) {
    let args = ["run", torrent.to_str().unwrap(), "1", "--min-size", "0", "--interval", "1", "--max-time", "6"];
    let o = w.odseed(&[&args[..], &["--json", "--config", cfg.to_str().unwrap()]].concat());
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let polls = stdout.lines().filter(|l| l.contains("\"event\":\"poll\"")).count();
    (exit_reason(&o.stdout), String::from_utf8_lossy(&o.stderr).into_owned(), polls)
}

/// The lines of `stderr` that contain `needle`.
fn lines_with(stderr: &str, needle: &str) -> usize {
    stderr.lines().filter(|l| l.contains(needle)).count()
}

/// A wrong password, then the client going away mid-run: one clear line, and the run goes on
/// with the trackers.
fn refused_and_gone(name: &str, origin: OriginClient) {
    let w = world(name);
    let mut swarm = swarm(&w, origin, None, None);
    let section = client_section(&w, &swarm);
    let file = torrent_file(&w, &swarm);
    std::fs::write(w.dir.path().join("wrong.password"), "not-the-password\n").unwrap();
    let wrong = section.replace("origin.password", "wrong.password");
    let cfg = w.write_config(&format!("{wrong}{}", swarm.controller_config()));

    // Finding the torrent by name needs the client: a clear error, exit 1.
    let o = w.odseed(&["run", "payload.bin", "0.5", "--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the") && stderr.trim().lines().count() == 1, "{stderr}");
    // With the .torrent file the run goes on with the trackers, and says so once.
    // Two leechers the tracker knows of (made up): the swarm wants a helper all along.
    for peer in [1, 2] {
        crate::announce(&swarm.torrent().meta.trackers[0], swarm.torrent().meta.info_hash, peer, 1 << 20, "started");
    }
    let (reason, stderr, polls) = short_run(&w, &file, &cfg);
    assert_eq!(reason, "max_time", "{stderr}");
    assert!(polls >= 2, "the rounds went on: {stderr}");
    assert_eq!(lines_with(&stderr, "refused the"), 1, "said once: {stderr}");
    assert!(!stderr.contains("not-the-password"), "the password is never printed: {stderr}");

    // The client stops answering mid-run; a leecher is connected to it before (or the run would
    // end at once: nobody connected to the origin).
    w.ns.add_host(leecher_ip(0)).unwrap();
    let _leecher =
        Leecher::start(w.dir.path(), "leecher", Client::Libtorrent, leecher_ip(0), &swarm.torrent().bytes).unwrap();
    let hash = swarm.torrent().meta.info_hash;
    wait_until(Duration::from_secs(60), "a leecher connected to the origin", || {
        (swarm.origin.stats(&hash).leechers > 0).then_some(())
    })
    .unwrap();
    let cfg = w.write_config(&format!("{section}{}", swarm.controller_config()));
    let args = ["run", file.to_str().unwrap(), "1", "--min-size", "0", "--interval", "1", "--max-time", "400"];
    let run = w.spawn("run", &[&args[..], &["--json", "--config", cfg.to_str().unwrap()]].concat());
    wait_until(Duration::from_secs(30), "two rounds", || (named(&events(&run), "poll").len() >= 2).then_some(()))
        .unwrap_or_else(|e| panic!("{e}: {}", run.log_text()));
    swarm.origin.stop();
    wait_until(Duration::from_secs(60), "the run to say the client is gone", || {
        run.log_text().contains("counting from the trackers alone").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", run.log_text()));
    let polls = named(&events(&run), "poll").len();
    wait_until(Duration::from_secs(30), "three more rounds", || {
        (named(&events(&run), "poll").len() >= polls + 3).then_some(())
    })
    .unwrap();
    assert_eq!(lines_with(&run.log_text(), "counting from the trackers alone"), 1, "said once: {}", run.log_text());
    run.signal(libc::SIGTERM);
}

#[test]
fn a_qbittorrent_that_refuses_the_password_or_goes_away_leaves_the_run_to_the_trackers() {
    refused_and_gone("qbt-refused", OriginClient::Qbittorrent);
}

#[test]
fn a_deluge_that_refuses_the_password_or_goes_away_leaves_the_run_to_the_trackers() {
    refused_and_gone("deluge-refused", OriginClient::Deluge);
}

/// A web server on 127.0.0.1 that answers every request with `head` and then `body` `repeat`
/// times (an HTML page, or more than odseed takes); its URL.
fn answering(head: &'static str, body: &'static [u8], repeat: usize) -> String {
    serving(move |_| (head.to_string(), body.repeat(repeat))).0
}

/// A web server on 127.0.0.1 whose answer to each request (its first line, e.g. "POST /api/v2/auth/login
/// HTTP/1.1") is what `answer` gives: the head (status line and headers) and the body. Its URL, and
/// the first lines of the requests it had.
fn serving(
    answer: impl Fn(&str) -> (String, Vec<u8>) + Send + Sync + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (seen, answer) = (Arc::new(std::sync::Mutex::new(Vec::new())), Arc::new(answer));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (log, answer) = (log.clone(), answer.clone());
            std::thread::spawn(move || {
                // The whole request (head and body) is read first: a close with bytes unread
                // would reset the connection instead of ending the answer.
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let (mut request, mut buf) = (Vec::new(), [0u8; 8192]);
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text.lines().find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok());
                        if request.len() >= end + 4 + length.unwrap_or(0) {
                            break;
                        }
                    }
                }
                let first = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_string();
                log.lock().unwrap().push(first.clone());
                let (head, body) = answer(&first);
                let _ = conn.write_all(head.as_bytes());
                for chunk in body.chunks(1 << 16) {
                    if conn.write_all(chunk).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// A `.torrent` file (of content nobody has) whose tracker is an address with nothing behind it.
fn unreachable_torrent(w: &World) -> PathBuf {
    let file = w.dir.path().join("payload.torrent");
    let made =
        odseed_lab::content::make(w.dir.path(), "payload.bin", 1 << 16, 7, &["http://10.77.0.1:6969/announce".into()])
            .unwrap();
    std::fs::write(&file, &made.bytes).unwrap();
    file
}

/// qBittorrent's sign-in as 5.2 answers it (204 with the cookie, 401 for a wrong password), and a
/// wrong password asked once only: qBittorrent bans an address after 5 failures.
#[test]
fn qbittorrent_sign_in_of_every_version_and_a_wrong_password_asked_once() {
    let w = world("qbt-sign-in");
    let file = unreachable_torrent(&w);
    std::fs::write(w.dir.path().join("qbt.password"), "pw\n").unwrap();
    let config = |url: &str| {
        w.write_config(&format!(
            "[client]\nkind = \"qbittorrent\"\nurl = \"{url}\"\nusername = \"admin\"\npassword_file = \"qbt.password\"\n"
        ))
    };
    let ok = |status: &str| {
        format!("HTTP/1.1 {status}\r\nSet-Cookie: QBT_SID_8080=s3ss10n; HttpOnly; path=/\r\nConnection: close\r\n\r\n")
    };
    let json = |body: &str| {
        (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_string(),
            body.as_bytes().to_vec(),
        )
    };
    for (version, login) in [("5.2", (ok("204 No Content"), Vec::new())), ("4.5", (ok("200 OK"), b"Ok.".to_vec()))] {
        let (url, seen) = serving(move |first| if first.contains("auth/login") { login.clone() } else { json("[]") });
        let cfg = config(&url);
        let (reason, stderr, _) = short_run(&w, &file, &cfg);
        assert_eq!(reason, "max_time", "{version}: {stderr}");
        assert!(!stderr.contains("qBittorrent at"), "{version}: signed in, nothing to say: {stderr}");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.iter().filter(|l| l.contains("auth/login")).count(), 1, "{version}: one sign-in: {seen:?}");
        assert!(seen.iter().any(|l| l.contains("torrents/info")), "{version}: {seen:?}");
    }
    for wrong in
        ["HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nFails."]
    {
        let (url, seen) = serving(move |_| (wrong.to_string(), Vec::new()));
        let cfg = config(&url);
        let (reason, stderr, polls) = short_run(&w, &file, &cfg);
        assert_eq!(reason, "max_time", "{stderr}");
        assert!(polls >= 2 && lines_with(&stderr, "refused the username/password") == 1, "{stderr}");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "a wrong password is asked once, whatever the rounds and the crowd poll: {seen:?}");
    }
}

/// A "client" that answers with a login page, or with 100 MB: one line that says what came, and
/// the run goes on without it.
#[test]
fn a_client_answering_html_or_100_mb_is_said_once_and_the_run_goes_on() {
    let w = world("client-answers");
    let file = unreachable_torrent(&w);
    let html = answering(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n",
        b"<html><body>Please log in</body></html>",
        1,
    );
    // No Content-Length: 100 MB until the connection closes.
    let huge = answering(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[",
        &[b' '; 100_000],
        1000,
    );
    for (kind, path) in [("qbittorrent", ""), ("deluge", "/json")] {
        for (url, said) in [(&html, "not JSON"), (&huge, "answer body over")] {
            let cfg = w.write_config(&format!("[client]\nkind = \"{kind}\"\nurl = \"{url}{path}\"\n"));
            let (reason, stderr, polls) = short_run(&w, &file, &cfg);
            assert_eq!(reason, "max_time", "{kind} {said}: {stderr}");
            assert!(polls >= 2, "{kind} {said}: the rounds went on: {stderr}");
            assert_eq!(lines_with(&stderr, said), 1, "{kind}: said once: {stderr}");
            // By name, the same answer is a clear error.
            let o = w.odseed(&["run", "payload.bin", "0.5", "--config", cfg.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{kind}: {stderr}");
            assert!(stderr.contains(said) && stderr.trim().lines().count() == 1, "{kind}: {stderr}");
        }
    }
}
