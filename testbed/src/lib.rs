//! Real parts on one machine, for odseed's tests, benchmarks and lab: temp dirs, network namespaces,
//! processes that are stopped on drop, opentracker, plain transmission-daemon peers, odseed agents.
//! Nothing here is a mock: every part is the real program, on addresses inside a namespace we made.

pub mod agent;
pub mod content;
pub mod dir;
pub mod netns;
pub mod peer;
pub mod process;
pub mod tracker;

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

/// A TCP port nobody listens on right now, on `ip`.
pub fn free_port(ip: std::net::Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}
