//! Credentials found by the chain ([`super::load`]), kept, and found again before they expire.
//! One renewal at a time, outside the lock callers read through: while it runs (an STS call, a
//! `credential_process`), the others keep signing with the current credentials if they are valid.
//! After a failed renewal the next waits [`RETRY_AFTER`]; expired credentials (or ones about to
//! expire, [`MARGIN`]) are never handed out.

use super::{load, Credentials, Env, Found};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Renewed this long before they expire, at most: a quarter of their life if that is shorter.
const RENEW_AHEAD: Duration = Duration::from_secs(300);
/// Credentials with less than this left are not handed out (a request takes time to reach AWS).
const MARGIN: Duration = Duration::from_secs(2);
/// After a renewal failed, the next one is tried this much later at the earliest.
const RETRY_AFTER: Duration = Duration::from_secs(10);

pub struct Provider {
    env: Env,
    profile: Option<String>,
    configured: Option<String>,
    state: Mutex<State>,
    /// Held by the one caller that renews.
    renewing: Mutex<()>,
}

#[derive(Default)]
struct State {
    found: Option<Found>,
    renew_at: Option<SystemTime>,
    /// No renewal before this (the last one failed).
    retry_at: Option<SystemTime>,
    /// Why the last renewal failed, while it is not followed by one that worked.
    failure: Option<String>,
    /// Whether the outage (no valid credentials) has been said; new for each outage.
    said: Option<Arc<AtomicBool>>,
}

/// No credentials to sign with now.
#[derive(Debug, Clone)]
pub struct Missing {
    pub why: String,
    /// Shared by every error of one outage: the first to swap it says it.
    pub said: Arc<AtomicBool>,
}

/// Two errors are the same if they say the same.
impl PartialEq for Missing {
    fn eq(&self, other: &Missing) -> bool {
        self.why == other.why
    }
}

impl Eq for Missing {}

impl Missing {
    /// True for the one caller that should say this outage.
    pub fn first(&self) -> bool {
        !self.said.swap(true, Ordering::SeqCst)
    }
}

impl State {
    /// The current credentials, if they are still good to sign with at `now`.
    fn valid(&self, now: SystemTime) -> Option<Credentials> {
        let f = self.found.as_ref()?;
        f.credentials.expires.is_none_or(|t| t > now + MARGIN).then(|| f.credentials.clone())
    }

    fn missing(&mut self) -> Missing {
        let why = self.failure.clone().unwrap_or_else(|| "the AWS credentials have expired".into());
        Missing { why, said: self.said.get_or_insert_with(Arc::default).clone() }
    }
}

impl Provider {
    /// Finds credentials now: an error here is a configuration error.
    pub fn load(env: Env, profile: Option<&str>, configured: Option<&str>) -> Result<Arc<Provider>, String> {
        let p = Provider::new(env, profile, configured);
        let found = load(&p.env, profile, configured)?;
        if found.credentials.expires.is_some_and(|t| t <= SystemTime::now() + MARGIN) {
            return Err(format!("the AWS credentials from {} have expired", found.source));
        }
        keep(&mut p.lock(), found);
        Ok(Arc::new(p))
    }

    /// Credentials that never change (tests).
    pub fn fixed(credentials: Credentials) -> Arc<Provider> {
        let p = Provider::new(Env::default(), None, None);
        keep(&mut p.lock(), Found { credentials, source: "given".into() });
        Arc::new(p)
    }

    fn new(env: Env, profile: Option<&str>, configured: Option<&str>) -> Provider {
        Provider {
            env,
            profile: profile.map(str::to_string),
            configured: configured.map(str::to_string),
            state: Mutex::default(),
            renewing: Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the credentials came from and when they expire.
    pub fn source(&self) -> Option<(String, Option<SystemTime>)> {
        self.lock().found.as_ref().map(|f| (f.source.clone(), f.credentials.expires))
    }

    /// Credentials to sign with now.
    pub fn get(&self) -> Result<Credentials, Missing> {
        // What the state says without renewing: fresh ones, or valid ones while a renewal waits.
        let quick = |st: &mut State| -> Option<Result<Credentials, Missing>> {
            let now = SystemTime::now();
            let valid = st.valid(now);
            let due = st.renew_at.is_some_and(|t| now >= t) || valid.is_none();
            let may_retry = st.retry_at.is_none_or(|t| now >= t);
            match valid {
                Some(c) if !due || !may_retry => Some(Ok(c)),
                None if !may_retry => Some(Err(st.missing())),
                _ => None,
            }
        };
        if let Some(answer) = quick(&mut self.lock()) {
            return answer;
        }
        // One renewal at a time; while another runs, valid credentials serve.
        let _renewing = match self.renewing.try_lock() {
            Ok(g) => g,
            Err(_) => {
                if let Some(c) = self.lock().valid(SystemTime::now()) {
                    return Ok(c);
                }
                let g = self.renewing.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(answer) = quick(&mut self.lock()) {
                    return answer;
                }
                g
            }
        };
        let result = load(&self.env, self.profile.as_deref(), self.configured.as_deref());
        let mut st = self.lock();
        let now = SystemTime::now();
        match result {
            Ok(found) if found.credentials.expires.is_none_or(|t| t > now + MARGIN) => {
                if st.failure.is_some() {
                    log::info!("AWS credentials renewed from {}", found.source);
                }
                let c = found.credentials.clone();
                keep(&mut st, found);
                Ok(c)
            }
            result => {
                let why = match result {
                    Err(e) => e,
                    Ok(f) => format!("the AWS credentials from {} have expired", f.source),
                };
                let first_failure = st.failure.is_none();
                st.failure = Some(format!("cannot renew the AWS credentials: {why}"));
                st.retry_at = Some(now + RETRY_AFTER);
                match st.valid(now) {
                    Some(c) => {
                        if first_failure {
                            log::warn!(
                                "cannot renew the AWS credentials ({why}); the current ones serve until they expire"
                            );
                        }
                        Ok(c)
                    }
                    None => Err(st.missing()),
                }
            }
        }
    }
}

fn keep(st: &mut State, found: Found) {
    let now = SystemTime::now();
    st.renew_at = found.credentials.expires.map(|t| {
        let life = t.duration_since(now).unwrap_or_default();
        t - RENEW_AHEAD.min(life / 4)
    });
    st.found = Some(found);
    st.retry_at = None;
    st.failure = None;
    st.said = None;
}
