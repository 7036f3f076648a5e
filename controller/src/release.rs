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
use odseed_proto::agent_client::AgentClient;
use std::time::Duration;

/// Releases one ledger entry: `DELETE` on its agent (404 counts: nothing to release), and for an
/// instance StopInstances (which is what matters: the DELETE may fail, the stop may not); then
/// forgets it.
pub fn release_entry(ledger: &Ledger, cfg: Option<&Config>, e: &Entry) -> Event {
    let deleted = delete(cfg, e);
    if e.kind == HelperKind::Ec2 {
        if let Err(why) = deleted {
            log::warn!("instance {}: cannot remove the torrent ({why}); stopping it anyway", e.name);
        }
        return stop(ledger, cfg, e);
    }
    match deleted {
        Ok(()) => forget(ledger, e),
        Err(why) => {
            Event::Fault(format!("{} {}: cannot release {} ({why}); still in the ledger", e.kind, e.name, e.info_hash))
        }
    }
}

fn forget(ledger: &Ledger, e: &Entry) -> Event {
    match ledger.remove(&e.name, &e.info_hash, &e.owner) {
        Ok(()) => Event::Released(e.name.clone()),
        Err(err) => Event::Fault(err.to_string()),
    }
}

/// `DELETE` of the entry's torrent on its agent.
fn delete(cfg: Option<&Config>, e: &Entry) -> Result<(), String> {
    if e.url.is_empty() {
        return Err("its agent was never reached".into());
    }
    // The token: from the config's board or pool if there is one, else the file the entry names.
    let board = cfg.and_then(|c| c.boards.iter().find(|b| b.name == e.name && b.url == e.url)).map(|b| &b.token);
    let pool = cfg
        .and_then(|c| c.ec2.as_ref())
        .and_then(|x| x.pools.iter().find(|p| Some(&p.region) == e.region.as_ref() && p.token_file == e.token_file))
        .map(|p| &p.token);
    let token = board
        .or(pool)
        .cloned()
        .or_else(|| std::fs::read_to_string(&e.token_file).ok().map(|t| t.trim().to_string()))
        .ok_or_else(|| format!("cannot read its token file {}", e.token_file.display()))?;
    let client = AgentClient::new(&e.url, &token, Duration::from_secs(10));
    client.delete(&e.info_hash).map(drop).map_err(|err| err.to_string())
}

/// StopInstances for an entry's instance, with the credentials found now and the endpoint it was
/// started through.
fn stop(ledger: &Ledger, cfg: Option<&Config>, e: &Entry) -> Event {
    let fault = |why: String| Event::Fault(format!("instance {}: cannot stop it ({why}); still in the ledger", e.name));
    let Some(region) = &e.region else { return fault("the ledger does not say its region".into()) };
    let ec2 = cfg.and_then(|c| c.ec2.as_ref());
    let env = Env::process();
    let creds = match credentials::load(&env, ec2.and_then(|x| x.profile.as_deref())) {
        Ok(c) => c,
        Err(why) => return fault(why),
    };
    let endpoint = match &e.endpoint {
        Some(url) if credentials::check_endpoint(url).is_err() => {
            return fault(format!("the ledger's endpoint {url:?} is not a URL"))
        }
        Some(url) => url.clone(),
        None => match credentials::endpoint(&env, ec2.and_then(|x| x.endpoint_url.as_deref()), region) {
            Ok(url) => url,
            Err(why) => return fault(why),
        },
    };
    let timeout = Duration::from_secs(ec2.map_or(20, |x| x.request_timeout));
    let client = Ec2::new(region, &endpoint, creds, timeout);
    match stop_and_wait(&client, std::slice::from_ref(&e.name)) {
        Ok(()) => forget(ledger, e),
        Err(err) if err.code() == Some("InvalidInstanceID.NotFound") => {
            log::warn!("instance {} ({region}) no longer exists; forgetting it", e.name);
            forget(ledger, e)
        }
        Err(err) => fault(format!("EC2 {region}: {err}")),
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

/// Releases `entries` at once (a slow agent or region does not hold up the others), each as
/// `release_entry` does; the events in the entries' order.
fn release_entries(ledger: &Ledger, cfg: Option<&Config>, entries: &[&Entry]) -> Vec<Event> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = entries.iter().map(|e| scope.spawn(move || release_entry(ledger, cfg, e))).collect();
        handles
            .into_iter()
            .zip(entries)
            .map(|(h, e)| {
                h.join().unwrap_or_else(|_| Event::Fault(format!("{} {}: its release failed", e.kind, e.name)))
            })
            .collect()
    })
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
