//! One log line per interval for events a client can repeat at will (bad tokens, refused
//! connections), with a count of the ones held back, so nobody can flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLog {
    interval: Duration,
    /// When the last line was let through, and how many events were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLog {
    pub const fn new(interval: Duration) -> RateLog {
        RateLog { interval, state: Mutex::new((None, 0)) }
    }

    /// Records one event. `Some(n)` when a line should be written now: `n - 1` events were held
    /// back since the last one.
    pub fn hit(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.0 {
            Some(at) if at.elapsed() < self.interval => {
                s.1 += 1;
                None
            }
            _ => {
                let n = s.1 + 1;
                *s = (Some(Instant::now()), 0);
                Some(n)
            }
        }
    }

    /// Events held back, if a line is due for them (the interval has passed since the last line).
    pub fn due(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.0 {
            Some(at) if s.1 > 0 && at.elapsed() >= self.interval => {
                let n = s.1;
                *s = (Some(Instant::now()), 0);
                Some(n)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_one_line_through_per_interval_and_counts_the_rest() {
        let r = RateLog::new(Duration::from_secs(1));
        assert_eq!(r.hit(), Some(1));
        assert_eq!((r.hit(), r.hit(), r.due()), (None, None, None));
        let deadline = Instant::now() + Duration::from_secs(10);
        let held = loop {
            match r.due() {
                Some(n) => break n,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                None => panic!("no summary after the interval"),
            }
        };
        assert_eq!(held, 2);
        assert_eq!(r.due(), None);
        assert_eq!(r.hit(), None, "the summary started a new interval");
    }
}
