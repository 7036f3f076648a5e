//! The wait between rounds. The trackers are remote and rate-limited: they are asked once a round,
//! every interval. The publisher's own Transmission is local and cheap: it is asked every
//! [`LOCAL_EVERY`] meanwhile, and when it sees more leechers than the last round counted (a crowd
//! arriving), the next round comes at once, with the trackers' last answers
//! ([`crate::observe::Survey::fresh`]) and the client's fresh count.

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often the publisher's client is asked between rounds.
pub const LOCAL_EVERY: Duration = Duration::from_secs(2);

/// What ended the wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// The interval passed.
    Round,
    /// The publisher's client saw a crowd.
    Crowd,
    /// A signal.
    Stop,
}

/// Waits `interval`; with `crowd` (asked every `every`), less if it says a crowd came.
pub fn wait(
    stop: &mpsc::Receiver<()>,
    interval: Duration,
    every: Duration,
    mut crowd: Option<impl FnMut() -> bool>,
) -> Next {
    let due = Instant::now() + interval;
    loop {
        let left = due.saturating_duration_since(Instant::now());
        let step = if crowd.is_some() { left.min(every) } else { left };
        if stop.recv_timeout(step).is_ok() {
            return Next::Stop;
        }
        if Instant::now() >= due {
            return Next::Round;
        }
        if crowd.as_mut().is_some_and(|f| f()) {
            return Next::Crowd;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crowd_ends_the_wait_early_and_a_signal_at_once() {
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        let crowd = || {
            asked += 1;
            asked == 3
        };
        let started = Instant::now();
        assert_eq!(wait(&rx, Duration::from_secs(60), Duration::from_millis(10), Some(crowd)), Next::Crowd);
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(asked, 3);
        let none: Option<fn() -> bool> = None;
        assert_eq!(wait(&rx, Duration::from_millis(30), Duration::from_millis(10), none), Next::Round);
        tx.send(()).unwrap();
        assert_eq!(wait(&rx, Duration::from_secs(60), Duration::from_millis(10), none), Next::Stop);
    }
}
