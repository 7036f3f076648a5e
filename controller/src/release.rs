//! `odseed release` (the panic button: every helper in the ledger) and the clean-up a new run does
//! first (the leftovers of runs that died without releasing).

use crate::config::Config;
use crate::ec2::credentials::{self, Env};
use crate::ec2::Ec2;
use crate::error::Error;
use crate::helpers::ec2::stop_and_wait;
use crate::helpers::Event;
use crate::ledger::{Entry, HelperKind, Ledger};
use crate::output::Printer;
use odseed_proto::agent_client::{AgentClient, Trust};
use odseed_proto::fsutil::{read_text_bounded, MAX_SECRET_BYTES};
use std::time::Duration;

/// Releases one ledger entry and forgets it (see [`undo`]).
pub fn release_entry(ledger: &Ledger, cfg: Option<&Config>, e: &Entry) -> Event {
    match undo(cfg, e).0 {
        Ok(()) => forget(ledger, &[e]).pop().unwrap_or_else(|| Event::Released(e.name.clone())),
        Err(fault) => fault,
    }
}

/// Undoes one entry's engagement without touching the ledger: `DELETE` on its agent (404 counts:
/// nothing to release), and for an instance StopInstances (which is what matters: the DELETE may
/// fail, the stop may not). `Err`: the fault that keeps it in the ledger. Also what the agent did.
fn undo(cfg: Option<&Config>, e: &Entry) -> (Result<(), Event>, Result<(), AgentFailure>) {
    if e.is_provisioning() {
        return (stop(cfg, e), Ok(()));
    }
    let deleted = delete(cfg, e);
    if e.kind == HelperKind::Ec2 {
        if let Err(f) = &deleted {
            log::warn!("instance {}: cannot remove the torrent ({}); stopping it anyway", e.name, f.why);
        }
        return (stop(cfg, e), deleted);
    }
    let result = deleted.as_ref().map(|_| ()).map_err(|f| {
        Event::Fault(format!("{} {}: cannot release {} ({}); still in the ledger", e.kind, e.name, e.seeds(), f.why))
    });
    (result, deleted)
}

/// A `DELETE` that failed, and whether the agent could not be reached at all.
struct AgentFailure {
    why: String,
    unreachable: bool,
}

/// Forgets released entries, in one write of the ledger; an event for each.
fn forget(ledger: &Ledger, released: &[&Entry]) -> Vec<Event> {
    let keys: Vec<_> = released.iter().map(|e| (e.name.as_str(), e.info_hash, e.owner)).collect();
    match ledger.remove_all(&keys) {
        Ok(()) => released.iter().map(|e| Event::Released(e.name.clone())).collect(),
        Err(err) => vec![Event::Fault(err.to_string())],
    }
}

/// `DELETE` of the entry's torrent on its agent.
fn delete(cfg: Option<&Config>, e: &Entry) -> Result<(), AgentFailure> {
    let fail = |why: String| AgentFailure { why, unreachable: false };
    let (Some(url), Some(hash)) = (&e.url, &e.info_hash) else {
        return Err(fail("its agent was never reached".into()));
    };
    // The token: from the config's board or pool if there is one, else the file the entry names.
    let board = cfg.and_then(|c| c.boards.iter().find(|b| b.name == e.name && b.url == *url)).map(|b| &b.token);
    let pool = cfg
        .and_then(|c| c.ec2.as_ref())
        .and_then(|x| x.pools.iter().find(|p| Some(&p.region) == e.region.as_ref() && p.token_file == e.token_file))
        .map(|p| &p.token);
    let token = board
        .or(pool)
        .cloned()
        .or_else(|| read_text_bounded(&e.token_file, MAX_SECRET_BYTES).ok().map(|t| t.trim().to_string()))
        .ok_or_else(|| fail(format!("cannot read its token file {}", e.token_file.display())))?;
    // How to trust it: as it was engaged, else as the config says for that board or pool.
    let board = cfg.and_then(|c| c.boards.iter().find(|b| b.name == e.name && b.url == *url)).map(|b| b.trust());
    let pool = cfg
        .and_then(|c| c.ec2.as_ref())
        .and_then(|x| x.pools.iter().find(|p| Some(&p.region) == e.region.as_ref()))
        .map(|p| Trust { pin: p.cert_sha256, plain_http: p.plain_http });
    let pin = e.cert_sha256;
    let recorded = Trust { pin, plain_http: e.plain_http };
    let trust = if pin.is_some() || e.plain_http { recorded } else { board.or(pool).unwrap_or(recorded) };
    let client = AgentClient::with_trust(url, &token, trust, Duration::from_secs(10));
    client.delete(hash).map(drop).map_err(|err| AgentFailure {
        unreachable: matches!(err, odseed_proto::agent_client::Error::Unreachable { .. }),
        why: err.to_string(),
    })
}

/// The credentials every stop of this process signs with: found once (a release of many instances
/// runs one credential_process, one AssumeRole), then renewed by the provider itself.
fn provider(
    env: &Env,
    ec2: Option<&crate::config::Ec2Config>,
) -> Result<std::sync::Arc<credentials::Provider>, String> {
    type Key = (Option<String>, Option<String>);
    static FOUND: std::sync::Mutex<Vec<(Key, std::sync::Arc<credentials::Provider>)>> =
        std::sync::Mutex::new(Vec::new());
    let key: Key = (ec2.and_then(|x| x.profile.clone()), ec2.and_then(|x| x.endpoint_url.clone()));
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = found.iter().find(|(k, _)| *k == key) {
        return Ok(p.clone());
    }
    let p = credentials::Provider::load(env.clone(), key.0.as_deref(), key.1.as_deref())?;
    found.push((key, p.clone()));
    Ok(p)
}

/// StopInstances for an entry's instance (TerminateInstances for one provision left half set up),
/// with the credentials found now and the endpoint it was started through.
fn stop(cfg: Option<&Config>, e: &Entry) -> Result<(), Event> {
    let fault = |why: String| Event::Fault(format!("instance {}: cannot stop it ({why}); still in the ledger", e.name));
    let Some(region) = &e.region else { return Err(fault("the ledger does not say its region".into())) };
    let ec2 = cfg.and_then(|c| c.ec2.as_ref());
    let env = Env::process();
    let creds = provider(&env, ec2).map_err(fault)?;
    let endpoint = match &e.endpoint {
        Some(url) if credentials::check_endpoint(url).is_err() => {
            return Err(fault(format!("the ledger's endpoint {:?} is not a URL", credentials::redacted(url))))
        }
        Some(url) => url.clone(),
        None => credentials::endpoint(&env, ec2.and_then(|x| x.endpoint_url.as_deref()), region).map_err(fault)?,
    };
    let timeout = Duration::from_secs(ec2.map_or(20, |x| x.request_timeout));
    let client = Ec2::new(region, &endpoint, creds, timeout);
    // A half-set-up instance (provision was killed) would never finish its setup: it goes for good.
    let done = if e.is_provisioning() {
        crate::ec2::setup::terminate(&client, std::slice::from_ref(&e.name)).map(drop)
    } else {
        stop_and_wait(&client, std::slice::from_ref(&e.name))
    };
    match done {
        Ok(()) => Ok(()),
        Err(err) if err.code() == Some("InvalidInstanceID.NotFound") => {
            log::warn!("instance {} ({region}) no longer exists; forgetting it", e.name);
            Ok(())
        }
        Err(err) => Err(fault(format!("EC2 {region}: {err}"))),
    }
}

/// Before a run: releases what runs that are no longer alive left engaged.
pub fn leftovers(ledger: &Ledger, cfg: &Config, printer: &Printer) {
    let entries = match ledger.entries() {
        Ok(e) => e,
        Err(e) => return printer.event(&Event::Fault(e.to_string())),
    };
    let dead: Vec<&Entry> = entries.iter().filter(|e| !e.owner.alive()).collect();
    for e in &dead {
        log::warn!("releasing {} {} left engaged by an earlier run (pid {})", e.kind, e.name, e.owner.pid);
    }
    for event in release_entries(ledger, Some(cfg), &dead) {
        printer.event(&event);
    }
}

/// Agents and instances released at once, at most.
const RELEASE_THREADS: usize = 16;

/// Releases `entries`: one agent's entries one after another on one thread (an agent is asked one
/// thing at a time, and once it does not answer its other entries are not tried), up to
/// [`RELEASE_THREADS`] agents and instances at once; then forgets the released ones in one write of
/// the ledger. Faults first, in the entries' order, then the releases.
fn release_entries(ledger: &Ledger, cfg: Option<&Config>, entries: &[&Entry]) -> Vec<Event> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_agent: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        match e.kind {
            HelperKind::Board => {
                let g = *by_agent.entry(e.url.as_deref().unwrap_or_default()).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(i);
            }
            HelperKind::Ec2 => groups.push(vec![i]),
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut outcomes: Vec<(usize, Result<(), Event>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..RELEASE_THREADS.min(groups.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some(group) = groups.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                        done.extend(release_group(cfg, entries, group));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    outcomes.sort_by_key(|(i, _)| *i);
    let mut events = Vec::new();
    let mut released = Vec::new();
    for (i, outcome) in outcomes {
        match outcome {
            Ok(()) => released.push(entries[i]),
            Err(fault) => events.push(fault),
        }
    }
    // An entry whose worker died (a panic) is neither released nor a fault yet: say so.
    let answered = events.len() + released.len();
    if answered < entries.len() {
        events.push(Event::Fault(format!("{} release(s) failed; still in the ledger", entries.len() - answered)));
    }
    if !released.is_empty() {
        events.extend(forget(ledger, &released));
    }
    events
}

/// One agent's entries (or one instance's), in turn; once the agent cannot be reached, the rest are
/// faults without being tried.
fn release_group(cfg: Option<&Config>, entries: &[&Entry], group: &[usize]) -> Vec<(usize, Result<(), Event>)> {
    let mut out = Vec::with_capacity(group.len());
    let mut unreachable = None;
    for &i in group {
        let e = entries[i];
        if let Some(why) = &unreachable {
            let fault = format!("{} {}: cannot release {} ({why}); still in the ledger", e.kind, e.name, e.seeds());
            out.push((i, Err(Event::Fault(fault))));
            continue;
        }
        let outcome = undo(cfg, e);
        if e.kind == HelperKind::Board {
            if let Err(AgentFailure { why, unreachable: true }) = &outcome.1 {
                unreachable = Some(why.clone());
            }
        }
        out.push((i, outcome.0));
    }
    out
}

/// `odseed release`: every entry, whoever engaged it. [`Error::NotReleased`] if the ledger is not
/// empty afterwards.
pub fn release_all(ledger: &Ledger, cfg: Option<&Config>, printer: &Printer) -> Result<(), Error> {
    let entries = ledger.entries()?;
    if entries.is_empty() && !printer.json {
        println!("nothing to release: the ledger {} is empty", ledger.path().display());
    }
    for event in release_entries(ledger, cfg, &entries.iter().collect::<Vec<_>>()) {
        printer.event(&event);
    }
    match ledger.entries()?.is_empty() {
        true => Ok(()),
        false => Err(Error::NotReleased),
    }
}
