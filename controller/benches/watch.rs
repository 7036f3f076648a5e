//! `odseed watch` benchmark: prints figures, asserts nothing. A catalogue of 1,000 torrents (a
//! directory of .torrent files) on one opentracker, 10 of them with leechers, two boards:
//!   - `odseed watch --once --dry-run`, a fresh process each time (the catalogue parsed, one
//!     round): wall time, CPU, peak RSS, scrape requests;
//!   - `odseed watch --dry-run --interval 1` for 15 rounds: CPU per round once warm, requests per
//!     round, RSS.
//!
//! The torrents announce a counting relay in front of opentracker, which counts the HTTP requests.
//! Run: `cargo bench -p odseed --bench watch` (root, or under `unshare --user --map-root-user --net`).

use odseed_lab::{wait_until, Netns, Proc, TempDir, Tracker};
use odseed_proto::bencode::Owned;
use odseed_proto::InfoHash;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TORRENTS: usize = 1000;
const BUSY: usize = 10;
const RUNS: usize = 5;
const ROUNDS: usize = 15;

/// Relays `listen` to `upstream`, counting the requests (lines starting "GET ") sent upstream.
fn relay(listen: TcpListener, upstream: (Ipv4Addr, u16), requests: Arc<AtomicUsize>) {
    std::thread::spawn(move || {
        for conn in listen.incoming().flatten() {
            let requests = requests.clone();
            std::thread::spawn(move || {
                let Ok(up) = TcpStream::connect(upstream) else { return };
                let (mut c2, mut u2) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
                let back = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(Shutdown::Write);
                });
                let (mut conn, mut up) = (conn, up);
                let mut buf = [0u8; 16384];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || up.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    requests.fetch_add(buf[..n].windows(4).filter(|w| w == b"GET ").count(), Ordering::Relaxed);
                }
                let _ = up.shutdown(Shutdown::Write);
                let _ = back.join();
            });
        }
    });
}

fn torrent(i: usize, announce: &str) -> Vec<u8> {
    let info = Owned::dict([
        ("name", Owned::str(&format!("t{i}.bin"))),
        ("length", Owned::Int(1 << 30)),
        ("piece length", Owned::Int(1 << 20)),
        ("pieces", Owned::Bytes(vec![0; 20 * 1024])),
    ]);
    Owned::dict([("announce", Owned::str(announce)), ("info", info)]).encode()
}

/// (user + system CPU, peak RSS in KiB) of a child, by wait4(2).
fn wait_child(pid: u32) -> (Duration, u64) {
    let mut status = 0;
    // SAFETY: rusage is plain data filled in by the kernel; pid is our child.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::wait4(pid as i32, &mut status, 0, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(usage.ru_utime) + tv(usage.ru_stime), usage.ru_maxrss as u64)
}

/// utime + stime of a live process, from /proc.
fn cpu_of(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process alive");
    let fields: Vec<u64> =
        text.rsplit_once(')').unwrap().1.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    // SAFETY: sysconf only reads a constant.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    // utime and stime, fields 14 and 15: the 12th and 13th after the command name.
    Duration::from_millis((fields[11] + fields[12]) * 1000 / hz)
}

fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn watch_cmd(dir: &Path, cfg: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_odseed"));
    cmd.arg("watch").args(args).args(["--json", "--config", cfg.to_str().unwrap()]);
    cmd.env("XDG_STATE_HOME", dir.join("state")).env("RUST_LOG", "warn");
    cmd
}

fn main() {
    let ns = Netns::enter().unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("bench-watch").unwrap();
    let ip = Ipv4Addr::new(10, 77, 0, 1);
    ns.add_host(ip).unwrap();
    let announce = format!("http://{ip}:6970/announce");
    let torrents = dir.path().join("torrents");
    std::fs::create_dir_all(&torrents).unwrap();
    let mut hashes = Vec::new();
    for i in 0..TORRENTS {
        let bytes = torrent(i, &announce);
        hashes.push(odseed_proto::metainfo::parse(&bytes).unwrap().info_hash);
        std::fs::write(torrents.join(format!("t{i}.torrent")), bytes).unwrap();
    }
    let _tracker = Tracker::start(&dir.path().join("tracker"), ip, 6969, &hashes).unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    relay(TcpListener::bind((ip, 6970)).unwrap(), (ip, 6969), requests.clone());
    let busy: Vec<InfoHash> = hashes.iter().step_by(TORRENTS / BUSY).copied().collect();
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
    for (n, h) in busy.iter().enumerate() {
        let hash: String = h.as_bytes().iter().map(|b| format!("%{b:02X}")).collect();
        for p in 0..20 {
            let url = format!("http://{ip}:6969/announce?info_hash={hash}&peer_id=-OD0001-{:012}&port={}&uploaded=0&downloaded=0&left=1000&event=started&compact=1", n * 100 + p, 10000 + p);
            agent.get(&url).call().expect("announce");
        }
    }
    std::fs::write(dir.path().join("token"), "bench-token-bench-token").unwrap();
    let boards: String = (0..2)
        .map(|i| format!("[[board]]\nname = \"b{i}\"\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"token\"\n"))
        .collect();
    let cfg = dir.path().join("odseed.toml");
    let text = format!("[watch]\ndir = \"{}\"\nratio = 0.5\n[policy]\nmin_size = 0\n{boards}", torrents.display());
    std::fs::write(&cfg, text).unwrap();

    println!("odseed watch benchmark: {TORRENTS} torrents on one opentracker ({BUSY} with 20 leechers), 2 boards");
    let (mut walls, mut cpus, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    let mut per_run = 0;
    let mut needing = String::new();
    for _ in 0..RUNS {
        let before = requests.load(Ordering::Relaxed);
        let start = Instant::now();
        // Waited for by wait4(2) below, which gives its CPU time and peak RSS.
        #[allow(clippy::zombie_processes)]
        let child =
            watch_cmd(dir.path(), &cfg, &["--once", "--dry-run"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        let mut out = String::new();
        child.stdout.unwrap().read_to_string(&mut out).unwrap();
        let (cpu, peak) = wait_child(pid);
        walls.push(start.elapsed());
        cpus.push(cpu);
        rss.push(peak);
        per_run = requests.load(Ordering::Relaxed) - before;
        needing = out.lines().find(|l| l.contains("\"round\"")).unwrap_or_default().to_string();
    }
    walls.sort();
    cpus.sort();
    println!(
        "  watch --once --dry-run (fresh process, {TORRENTS} .torrent files parsed): wall median {:.0} ms (min {:.0}), \
         CPU median {:.0} ms, peak RSS max {:.2} MiB, {per_run} scrape requests to the tracker",
        walls[RUNS / 2].as_secs_f64() * 1e3,
        walls[0].as_secs_f64() * 1e3,
        cpus[RUNS / 2].as_secs_f64() * 1e3,
        *rss.iter().max().unwrap() as f64 / 1024.0
    );
    println!("  its round: {needing}");

    let log = dir.path().join("watch.log");
    let mut w =
        Proc::spawn("odseed watch", watch_cmd(dir.path(), &cfg, &["--dry-run", "--interval", "1"]), &log).unwrap();
    let pid = w.pid();
    let rounds = |w: &Proc| w.log_text().lines().filter(|l| l.contains("\"round\"")).count();
    wait_until(Duration::from_secs(30), "the first round", || (rounds(&w) >= 1).then_some(())).unwrap();
    let (cpu0, req0, r0) = (cpu_of(pid), requests.load(Ordering::Relaxed), rounds(&w));
    let mut max_rss = 0;
    wait_until(Duration::from_secs(120), "the rounds", || {
        max_rss = max_rss.max(rss_kib(pid));
        (rounds(&w) >= r0 + ROUNDS).then_some(())
    })
    .unwrap();
    let (cpu1, req1, r1) = (cpu_of(pid), requests.load(Ordering::Relaxed), rounds(&w));
    w.stop(Duration::from_secs(10));
    let n = (r1 - r0) as f64;
    println!(
        "  watch --dry-run --interval 1, {} warm rounds: CPU {:.1} ms per round, {:.1} scrape requests per round, RSS max {:.2} MiB",
        r1 - r0,
        (cpu1 - cpu0).as_secs_f64() * 1e3 / n,
        (req1 - req0) as f64 / n,
        max_rss as f64 / 1024.0
    );
}
