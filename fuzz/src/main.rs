//! `odseed-fuzz TARGET [--secs N] [--seed S]`: fuzzes one target (or `all`) for N seconds (default
//! 60), prints executions per second, and saves a failing input to `fuzz/crashes/<target>/`; make it
//! a regression by moving it to `fuzz/regressions/<target>/`.

use odseed_fuzz::{fuzz, target, targets::ALL, Target};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = ALL.iter().map(|t| t.name).collect();
    let usage = format!("usage: odseed-fuzz TARGET|all [--secs N] [--seed S]\ntargets: {}", names.join(", "));
    let Some(which) = args.first() else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (secs, seed) = (flag("--secs", 60), flag("--seed", 0x0d5eed));
    let chosen: Vec<&Target> = match which.as_str() {
        "all" => ALL.iter().collect(),
        name => match target(name) {
            Some(t) => vec![t],
            None => {
                eprintln!("odseed-fuzz: no target {name:?}\n{usage}");
                return ExitCode::from(2);
            }
        },
    };
    let mut failed = false;
    for t in chosen {
        // Release builds abort on a panic: the hook saves the input first.
        let name = t.name;
        std::panic::set_hook(Box::new(move |info| {
            let path = save(name, seed, &odseed_fuzz::current_input());
            eprintln!("{name:<20} FAILED: {info}\n{:<20} input saved to {path}", "");
        }));
        match fuzz(t, u64::MAX, Duration::from_secs(secs), seed) {
            Ok(s) => println!(
                "{:<20} {:>10} executions in {:.1} s ({:.0}/s), 0 failures",
                t.name,
                s.executions,
                s.elapsed.as_secs_f64(),
                s.executions as f64 / s.elapsed.as_secs_f64().max(1e-9)
            ),
            Err(crash) => {
                failed = true;
                let path = save(t.name, seed, &crash.input);
                println!("{:<20} FAILED: {}\n{:<20} input saved to {path}", t.name, crash.message, "");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes a failing input to `fuzz/crashes/<target>/`; where it went (or why it could not).
fn save(target: &str, seed: u64, input: &[u8]) -> String {
    let dir = odseed_fuzz::dir().join("crashes").join(target);
    let path = dir.join(format!("crash-{seed:x}"));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("nowhere ({e}): {input:?}"),
    }
}
