//! `odseed release` (the panic button: every helper in the ledger) and the clean-up a new run does
//! first (the leftovers of runs that died without releasing).

use crate::config::Config;
use crate::helpers::Event;
use crate::ledger::{Entry, Ledger};
use crate::output::Printer;
use odseed_agent::client::AgentClient;
use std::time::Duration;

/// Releases one ledger entry: `DELETE` on its agent (404 counts: nothing to release), then forgets it.
pub fn release_entry(ledger: &Ledger, cfg: Option<&Config>, e: &Entry) -> Event {
    // The token: from the config's board of that name if there is one, else the file the entry names.
    let token = cfg
        .and_then(|c| c.boards.iter().find(|b| b.name == e.name && b.url == e.url))
        .map(|b| b.token.clone())
        .or_else(|| std::fs::read_to_string(&e.token_file).ok().map(|t| t.trim().to_string()));
    let Some(token) = token else {
        return Event::Fault(format!("{} {}: cannot read its token file {}", e.kind, e.name, e.token_file.display()));
    };
    let client = AgentClient::new(&e.url, &token, Duration::from_secs(10));
    match client.delete(&e.info_hash) {
        Ok(_) => match ledger.remove(&e.name, &e.info_hash) {
            Ok(()) => Event::Released(e.name.clone()),
            Err(err) => Event::Fault(err),
        },
        Err(err) => {
            Event::Fault(format!("{} {}: cannot release {} ({err}); still in the ledger", e.kind, e.name, e.info_hash))
        }
    }
}

/// Before a run: releases what runs that are no longer alive left engaged.
pub fn leftovers(ledger: &Ledger, cfg: &Config, printer: &Printer) {
    let entries = match ledger.entries() {
        Ok(e) => e,
        Err(e) => return printer.event(&Event::Fault(e)),
    };
    for e in entries.iter().filter(|e| !e.owner.alive()) {
        log::warn!("releasing {} {} left engaged by an earlier run (pid {})", e.kind, e.name, e.owner.pid);
        printer.event(&release_entry(ledger, Some(cfg), e));
    }
}

/// `odseed release`: every entry, whoever engaged it. True if the ledger is empty afterwards.
pub fn release_all(ledger: &Ledger, cfg: Option<&Config>, printer: &Printer) -> Result<bool, String> {
    let entries = ledger.entries()?;
    if entries.is_empty() && !printer.json {
        println!("nothing to release: the ledger {} is empty", ledger.path().display());
    }
    for e in &entries {
        printer.event(&release_entry(ledger, cfg, e));
    }
    Ok(ledger.entries()?.is_empty())
}
