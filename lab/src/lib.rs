//! odseed-lab: a BitTorrent swarm on one machine, from real parts, for `odseed lab`, the tests and
//! the benchmarks: network namespaces ([`netns`]), processes stopped on drop ([`process`]), temp
//! dirs ([`dir`]), opentracker ([`tracker`]), plain transmission-daemon peers ([`peer`]), the
//! swarm's leechers of either client ([`leecher`]), one-shot aria2c and libtorrent downloads
//! ([`clients`]), odseed agents ([`agent`]), generated content ([`content`]), the whole swarm
//! ([`swarm`]), what a lab run saw and measured ([`trace`], [`report`]) and its picture ([`svg`]).
//! Nothing here is a mock: every part is the real program, on addresses inside a namespace we made.
//! What only tests need is behind the `testing` feature ([`testing`]).

pub mod agent;
pub mod clients;
pub mod content;
pub mod dir;
pub mod leecher;
pub mod netns;
pub mod origin;
pub mod peer;
pub mod process;
pub mod report;
pub mod svg;
pub mod swarm;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod tracker;
pub mod webseed;

use std::time::{Duration, Instant};

pub use agent::{Agent, AgentOptions};
pub use dir::TempDir;
pub use netns::Netns;
pub use peer::Peer;
pub use process::Proc;
pub use tracker::Tracker;

/// Polls `f` until it gives a value or `timeout` passes; the error says what was awaited.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("gave up after {}s waiting for {what}", timeout.as_secs_f32()));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The `odseed-agent` to run: `$ODSEED_AGENT_BIN`, else the one beside this program (a test binary
/// in `target/<profile>/deps` looks one level up too), else one on PATH.
pub fn agent_bin() -> Result<std::path::PathBuf, String> {
    const NAME: &str = "odseed-agent";
    if let Some(p) = std::env::var_os("ODSEED_AGENT_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let beside = exe.ancestors().skip(1).take(2).map(|d| d.join(NAME));
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(NAME)).collect::<Vec<_>>())
        .unwrap_or_default();
    beside
        .chain(on_path)
        .find(|f| f.is_file())
        .ok_or_else(|| format!("{NAME} is neither beside {} nor on PATH (cargo build --release)", exe.display()))
}

/// A TCP port nobody listens on right now, on `ip`.
pub fn free_port(ip: std::net::Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}
