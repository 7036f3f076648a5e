//! `odseed status`: every configured helper (reachable?, daemon, what it seeds) and the ledger.

use crate::config::Config;
use crate::ledger::Ledger;
use odseed_agent::client::AgentClient;
use serde_json::json;
use std::time::Duration;

pub fn status(cfg: &Config, ledger: &Ledger, as_json: bool) -> Result<(), String> {
    let mut boards = Vec::new();
    for b in &cfg.boards {
        let c = AgentClient::new(&b.url, &b.token, Duration::from_secs(5));
        let health = c.health();
        let torrents = health.as_ref().ok().map(|_| c.list());
        boards.push(json!({
            "name": b.name,
            "url": b.url,
            "reachable": health.is_ok(),
            "daemon": health.as_ref().ok().map(|h| h.daemon),
            "error": health.as_ref().err().map(|e| e.to_string()).or_else(|| torrents.as_ref().and_then(|t| t.as_ref().err()).map(|e| e.to_string())),
            "torrents": torrents.and_then(Result::ok).unwrap_or_default(),
        }));
    }
    let entries = ledger.entries()?;
    let engaged: Vec<_> = entries
        .iter()
        .map(|e| json!({"kind": e.kind, "name": e.name, "info_hash": e.info_hash, "owner_pid": e.owner.pid, "owner_alive": e.owner.alive()}))
        .collect();
    if as_json {
        println!("{}", json!({"boards": boards, "ledger": engaged}));
        return Ok(());
    }
    println!("{:<16} {:<28} {:<10} {:<9} SEEDS", "BOARD", "URL", "REACHABLE", "DAEMON");
    for b in &boards {
        let seeds: Vec<String> = b["torrents"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        format!(
                            "{} ({}, {:.0}%)",
                            t["name"].as_str().unwrap_or("?"),
                            t["state"].as_str().unwrap_or("?"),
                            t["percent_done"].as_f64().unwrap_or(0.0) * 100.0
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reach = if b["reachable"].as_bool() == Some(true) { "yes".to_string() } else { "NO".to_string() };
        let daemon = b["daemon"].as_str().unwrap_or("-");
        let seeds = if let Some(err) = b["error"].as_str() {
            err.to_string()
        } else if seeds.is_empty() {
            "-".into()
        } else {
            seeds.join(", ")
        };
        println!(
            "{:<16} {:<28} {:<10} {:<9} {seeds}",
            b["name"].as_str().unwrap_or(""),
            b["url"].as_str().unwrap_or(""),
            reach,
            daemon
        );
    }
    if entries.is_empty() {
        println!("\nledger {}: nothing engaged", ledger.path().display());
    } else {
        println!("\nledger {}: engaged", ledger.path().display());
        for e in &entries {
            let owner = if e.owner.alive() {
                format!("run pid {}", e.owner.pid)
            } else {
                format!("dead run pid {} (run `odseed release`)", e.owner.pid)
            };
            println!("  {} {} seeds {} for {owner}", e.kind, e.name, e.info_hash);
        }
    }
    Ok(())
}
