//! Faults: a board down at start, a board killed mid-run, the tracker killed mid-run, and the
//! controller killed with -9 then `odseed release`. Nothing stays engaged; each fault is one line.

use crate::{events, named, wait_engaged, world};
use odseed_lab::swarm::{Spec, Swarm};
use odseed_lab::testing::agent_bin;
use odseed_lab::wait_until;
use std::time::Duration;

fn spec(boards: usize) -> Spec {
    Spec {
        size: 2 << 20,
        leechers: 4,
        boards,
        origin_kbps: 20,
        helper_kbps: 20,
        leecher_kbps: 50,
        leecher_up_kbps: 0,
        daemon: None,
        board_tls: None,
        torrents: 1,
        leecher_clients: Vec::new(),
        piece_size: None,
        empty_boards: 0,
        webseed_kbps: None,
        origin_client: Default::default(),
        origin_program: None,
    }
}

#[test]
fn dead_boards_are_skipped_and_replaced_and_the_tracker_going_down_is_survived() {
    let w = world("faults");
    let spec = spec(4);
    let mut swarm = Swarm::start(&w.ns, w.dir.path(), &spec, &agent_bin()).unwrap();
    swarm.start_leechers(&spec).unwrap();
    swarm.wait_announced(Duration::from_secs(60)).unwrap();
    // A board that is down from the start (nothing listens at its URL).
    let down = format!(
        "[[board]]\nname = \"down\"\nurl = \"http://10.77.2.99:5050\"\ntoken_file = \"{}\"\n",
        swarm.boards[0].root.join("token").display()
    );
    let cfg = format!("{down}{}", swarm.controller_config());
    let cfg = w.write_config(&cfg);
    let torrent = swarm.torrent_file().to_str().unwrap().to_string();
    // Ratio 1, one seeder, four leechers: three helpers needed. board0-3 say they hold the torrent,
    // "down" says nothing: board0-2 go first, and "down" is never tried.
    let mut run = w.spawn(
        "run",
        &["run", &torrent, "1", "--interval", "1", "--min-size", "0", "--json", "--config", cfg.to_str().unwrap()],
    );
    wait_engaged(&run, 3);
    let engaged: Vec<String> =
        named(&events(&run), "engage").iter().filter_map(|e| e["helper"].as_str().map(str::to_string)).collect();
    assert_eq!(engaged, ["board0", "board1", "board2"], "{}", run.log_text());

    // Kill one engaged board: it is reported lost, in one line, and the spare board3 replaces it.
    swarm.boards[1].kill9();
    wait_until(Duration::from_secs(60), "board3 to replace the lost board1", || {
        named(&events(&run), "engage").iter().any(|e| e["helper"] == "board3").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log_text()));
    let lost_lines =
        run.log_text().lines().filter(|l| l.starts_with("[WARN") && l.contains("board board1: lost")).count();
    assert_eq!(lost_lines, 1, "{}", run.log_text());

    // Kill the tracker: rounds go on without counts, helpers are kept.
    swarm.tracker.proc().kill9();
    wait_until(Duration::from_secs(60), "a round without counts", || {
        named(&events(&run), "poll")
            .iter()
            .any(|p| p["error"].as_str().is_some_and(|e| e.contains("all trackers down")))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log_text()));
    assert!(run.exited().is_none(), "the run survives the tracker going down");

    // SIGTERM: everything reachable is released, exit 130.
    run.signal(libc::SIGTERM);
    let status = run.wait_exit(Duration::from_secs(60)).expect("the run ends after SIGTERM");
    assert_eq!(status.code(), Some(130), "{}", run.log_text());
    assert_eq!(named(&events(&run), "exit")[0]["reason"], "interrupted");
    for i in [0, 2, 3] {
        assert!(swarm.boards[i].client().list().unwrap().is_empty(), "board{i} still seeds");
    }
    // The killed board could not be released: the ledger keeps it for `odseed release`.
    let ledger = std::fs::read_to_string(w.ledger()).unwrap();
    assert!(ledger.contains("board1") && !ledger.contains("board0"), "{ledger}");
}

#[test]
fn after_kill_9_odseed_release_releases_the_leftovers() {
    let w = world("kill9");
    let spec = spec(2);
    let (swarm, cfg) = w.swarm(&spec);
    let torrent = swarm.torrent_file().to_str().unwrap().to_string();
    let mut run = w.spawn(
        "run",
        &["run", &torrent, "1", "--interval", "1", "--min-size", "0", "--json", "--config", cfg.to_str().unwrap()],
    );
    wait_engaged(&run, 2);
    run.kill9();
    let hash = swarm.torrent().meta.info_hash;
    assert!(swarm.boards.iter().all(|b| b.client().get(&hash).unwrap().is_some()), "kill -9 releases nothing");

    // A new run releases what the dead one left before it does anything (a dry run engages nothing).
    let o = w.odseed(&[
        "run",
        &torrent,
        "1",
        "--dry-run",
        "--once",
        "--min-size",
        "0",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("left engaged by an earlier run"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(swarm.boards.iter().all(|b| b.client().list().unwrap().is_empty()), "leftovers released");

    // Again, and this time `odseed release` cleans up.
    let mut run = w.spawn(
        "run2",
        &["run", &torrent, "1", "--interval", "1", "--min-size", "0", "--json", "--config", cfg.to_str().unwrap()],
    );
    wait_engaged(&run, 2);
    run.kill9();
    assert!(swarm.boards.iter().all(|b| b.client().get(&hash).unwrap().is_some()));
    let out = w.odseed(&["release", "--json", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().filter(|l| l.contains("\"release\"")).count(), 2, "{stdout}");
    assert!(swarm.boards.iter().all(|b| b.client().list().unwrap().is_empty()), "every board released");
    let out = w.odseed(&["release", "--config", cfg.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to release"));
}

/// A proxy in front of an agent that passes every request on but never lets an answer to a `PUT`
/// through (it closes the connection instead): the agent takes the torrent, the controller cannot
/// know it did.
fn start_answer_eater(agent: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = TcpStream::connect(agent) else { continue };
            let put = Arc::new(AtomicBool::new(false));
            let (mut c_in, mut u_out, put_in) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap(), put.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = c_in.read(&mut buf) {
                    if [&b"GET "[..], b"PUT ", b"DELETE ", b"HEAD "].iter().any(|m| buf[..n].starts_with(m)) {
                        put_in.store(buf.starts_with(b"PUT "), Ordering::SeqCst);
                    }
                    if u_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
            let (mut u_in, mut c_out) = (upstream, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = u_in.read(&mut buf) {
                    if put.load(Ordering::SeqCst) {
                        let _ = c_out.shutdown(Shutdown::Both);
                        break;
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_put_whose_answer_is_lost_stays_in_the_ledger_and_is_released() {
    let w = world("unsure");
    let spec = spec(1);
    let (swarm, _) = w.swarm(&spec);
    let board = &swarm.boards[0];
    let agent_addr = board.url.trim_start_matches("http://").parse().unwrap();
    let proxy = start_answer_eater(agent_addr);
    let cfg = w.write_config(&swarm.controller_config().replace(&board.url, &format!("http://{proxy}")));
    let torrent = swarm.torrent_file().to_str().unwrap();
    let o = w.odseed(&["run", torrent, "1", "--once", "--min-size", "0", "--json", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("board board0: lost (unsure whether it took the torrent"), "{err}");
    assert!(board.log().contains("asked to seed"), "the PUT reached the agent: {}", board.log());
    assert_eq!(board.client().get(&swarm.torrent().meta.info_hash).unwrap(), None, "the board still seeds: {err}");
    let ledger = std::fs::read_to_string(w.ledger()).unwrap();
    assert!(ledger.contains("\"helpers\": []"), "{ledger}");
}

#[test]
fn release_of_thousands_of_entries_asks_each_agent_in_turn_and_writes_the_ledger_once() {
    let w = world("manyrelease");
    let agent =
        odseed_lab::Agent::start(&agent_bin(), &w.dir.path().join("a"), &odseed_lab::AgentOptions::default()).unwrap();
    let token_file = agent.root.join("token");
    let entry = |i: u32, url: &str| {
        let hash: String = format!("{i:040x}");
        serde_json::json!({
            "kind": "board", "name": format!("b{i}"), "url": url, "token_file": token_file,
            "info_hash": hash, "owner": {"pid": u32::MAX - 1, "start": 0}, "engaged_at": 1,
        })
    };
    // 2,000 entries on a live agent (which seeds none of them: 404, released) and 2,000 on an
    // address where nothing listens.
    let mut helpers: Vec<_> = (0..2000).map(|i| entry(i, &agent.url)).collect();
    helpers.extend((2000..4000).map(|i| entry(i, "http://127.0.0.1:1")));
    std::fs::create_dir_all(w.ledger().parent().unwrap()).unwrap();
    std::fs::write(w.ledger(), serde_json::json!({"version": 1, "helpers": helpers}).to_string()).unwrap();

    let started = std::time::Instant::now();
    let o = w.odseed(&["release", "--json"]);
    eprintln!("odseed release of 4,000 entries: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(o.status.code(), Some(1), "not everything could be released");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().filter(|l| l.contains("\"event\":\"release\"")).count(), 2000);
    assert_eq!(out.lines().filter(|l| l.contains("\"event\":\"fault\"")).count(), 2000);
    let ledger: serde_json::Value = serde_json::from_slice(&std::fs::read(w.ledger()).unwrap()).unwrap();
    let left = ledger["helpers"].as_array().unwrap();
    assert_eq!(left.len(), 2000);
    assert!(left.iter().all(|e| e["url"] == "http://127.0.0.1:1"), "only the unreachable ones are kept");
    // The live agent was asked one request at a time: none refused for its per-address cap.
    assert!(!agent.log().contains("max_connections"), "{}", agent.log());
}
