//! Credentials found by the chain ([`super::load`]), kept, and found again before they expire.

use super::{load, Credentials, Env, Found};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Renewed this long before they expire, at most: a quarter of their life if that is shorter.
const RENEW_AHEAD: Duration = Duration::from_secs(300);

/// Credentials found by the chain, kept, and found again before they expire. A renewal that fails
/// keeps the current ones while they are valid; expired ones are never handed out.
pub struct Provider {
    env: Env,
    profile: Option<String>,
    configured: Option<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    found: Option<Found>,
    renew_at: Option<SystemTime>,
    /// The last attempt failed (said once until one succeeds).
    failing: bool,
    /// No credentials were handed out since the last that worked (said once).
    missing: bool,
}

/// No credentials to sign with now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub why: String,
    /// The first failure since credentials last worked (the one to say).
    pub first: bool,
}

impl Provider {
    /// Finds credentials now: an error here is a configuration error.
    pub fn load(env: Env, profile: Option<&str>, configured: Option<&str>) -> Result<Arc<Provider>, String> {
        let p = Provider {
            env,
            profile: profile.map(str::to_string),
            configured: configured.map(str::to_string),
            state: Mutex::default(),
        };
        let found = load(&p.env, profile, configured)?;
        if found.credentials.expires.is_some_and(|t| t <= SystemTime::now()) {
            return Err(format!("the AWS credentials from {} have expired", found.source));
        }
        p.keep(&mut p.lock(), found);
        Ok(Arc::new(p))
    }

    /// Credentials that never change (tests).
    pub fn fixed(credentials: Credentials) -> Arc<Provider> {
        let p = Provider { env: Env::default(), profile: None, configured: None, state: Mutex::default() };
        p.keep(&mut p.lock(), Found { credentials, source: "given".into() });
        Arc::new(p)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keep(&self, st: &mut State, found: Found) {
        let now = SystemTime::now();
        st.renew_at = found.credentials.expires.map(|t| {
            let life = t.duration_since(now).unwrap_or_default();
            t - RENEW_AHEAD.min(life / 4)
        });
        st.found = Some(found);
        st.failing = false;
        st.missing = false;
    }

    /// Where the credentials came from and when they expire.
    pub fn source(&self) -> Option<(String, Option<SystemTime>)> {
        self.lock().found.as_ref().map(|f| (f.source.clone(), f.credentials.expires))
    }

    /// Credentials to sign with now.
    pub fn get(&self) -> Result<Credentials, Missing> {
        let mut st = self.lock();
        let now = SystemTime::now();
        if let Some(f) = &st.found {
            if st.renew_at.is_none_or(|t| now < t) {
                return Ok(f.credentials.clone());
            }
        }
        match load(&self.env, self.profile.as_deref(), self.configured.as_deref()) {
            Ok(found) if found.credentials.expires.is_none_or(|t| t > now) => {
                if st.failing {
                    log::info!("AWS credentials renewed from {}", found.source);
                }
                let c = found.credentials.clone();
                self.keep(&mut st, found);
                Ok(c)
            }
            result => {
                let why = match result {
                    Err(e) => e,
                    Ok(f) => format!("the AWS credentials from {} have expired", f.source),
                };
                let failed_before = std::mem::replace(&mut st.failing, true);
                match &st.found {
                    Some(f) if f.credentials.expires.is_some_and(|t| t > now) => {
                        if !failed_before {
                            log::warn!(
                                "cannot renew the AWS credentials ({why}); the current ones serve until they expire"
                            );
                        }
                        Ok(f.credentials.clone())
                    }
                    _ => {
                        let first = !std::mem::replace(&mut st.missing, true);
                        Err(Missing { why: format!("cannot renew the AWS credentials: {why}"), first })
                    }
                }
            }
        }
    }
}
