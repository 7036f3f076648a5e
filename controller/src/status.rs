//! `odseed status`: every configured board (reachable?, daemon, what it seeds), each EC2 pool's
//! tagged instances and their states, and the ledger.

use crate::config::Config;
use crate::helpers::ec2::{Fleet, URL_TAG};
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
    let pools: Vec<serde_json::Value> = match Fleet::from_config(cfg.ec2.as_ref()) {
        Err(e) => vec![json!({"region": null, "error": e, "instances": []})],
        Ok(fleet) => fleet
            .pools
            .iter()
            .map(|p| match p.describe() {
                Ok(list) => json!({
                    "region": p.region(),
                    "error": null,
                    "instances": list.iter().map(|i| json!({"id": i.id, "state": i.state, "public_ip": i.public_ip, "agent_url": i.tag(URL_TAG)})).collect::<Vec<_>>(),
                }),
                Err(e) => json!({"region": p.region(), "error": e.to_string(), "instances": []}),
            })
            .collect(),
    };
    let entries = ledger.entries()?;
    let engaged: Vec<_> = entries
        .iter()
        .map(|e| json!({"kind": e.kind, "name": e.name, "region": e.region, "info_hash": e.info_hash, "owner_pid": e.owner.pid, "owner_alive": e.owner.alive()}))
        .collect();
    if as_json {
        println!("{}", json!({"boards": boards, "ec2": pools, "ledger": engaged}));
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
    if !pools.is_empty() {
        println!("\n{:<16} {:<22} {:<14} AGENT", "REGION", "INSTANCE", "STATE");
    }
    for p in &pools {
        let region = p["region"].as_str().unwrap_or("-");
        if let Some(err) = p["error"].as_str() {
            println!("{region:<16} {err}");
        }
        for i in p["instances"].as_array().into_iter().flatten() {
            let agent = i["agent_url"].as_str().or(i["public_ip"].as_str()).unwrap_or("-");
            println!(
                "{region:<16} {:<22} {:<14} {agent}",
                i["id"].as_str().unwrap_or(""),
                i["state"].as_str().unwrap_or("")
            );
        }
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
            let region = e.region.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
            println!("  {} {}{region} seeds {} for {owner}", e.kind, e.name, e.info_hash);
        }
    }
    Ok(())
}
