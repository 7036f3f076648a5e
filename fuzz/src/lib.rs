//! Fuzzing every parser that reads outside bytes. Each [`Target`] feeds one parser and checks what
//! must hold whatever the input (no panic, no hang, and the parser's own promises: a torrent's paths
//! stay relative, a head never claims more bytes than it was given...). The mutator starts from the
//! seed corpus committed in `fuzz/corpus/<target>/` and the regressions in `fuzz/regressions/<target>/`
//! (every input that once failed), and mutates: bit flips, random and "interesting" bytes, deletions,
//! duplications, splices with other seeds.
//!
//! Two drivers share the targets: this crate's own mutator (no coverage guidance, plain stable
//! Rust: `cargo test -p odseed-fuzz` runs every target briefly, `odseed-fuzz TARGET --secs N` at
//! length) and libFuzzer through cargo-fuzz (coverage-guided; it works on stable with
//! `--sanitizer none`): `scripts/fuzz SECS` runs every target in `fuzz/libfuzzer/` for SECS seconds.

pub mod mutate;
pub mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One parser under test.
pub struct Target {
    pub name: &'static str,
    /// Feeds the parser; panics when something that must hold does not.
    pub run: fn(&[u8]),
    /// Tokens the mutator splices in (keywords, delimiters, boundary numbers of this format).
    pub dictionary: &'static [&'static [u8]],
}

/// The fuzz dir of the checkout (`fuzz/`).
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The committed inputs of `target`: its seed corpus, then its regressions.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(dir().join(kind).join(target)) else { continue };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        out.extend(paths.iter().filter_map(|p| std::fs::read(p).ok()));
    }
    out
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub executions: u64,
    pub elapsed: Duration,
}

/// A failing input: the panic's message and the bytes.
#[derive(Debug, Clone)]
pub struct Crash {
    pub message: String,
    pub input: Vec<u8>,
}

thread_local! {
    /// The input being tried, for a panic hook to save: release builds abort on panic, so a
    /// failure can only be reported from the hook.
    static CURRENT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The input this thread is trying now.
pub fn current_input() -> Vec<u8> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `target` on every seed, then on mutations of them until `iterations` executions or `budget`
/// passed, whichever first. The first input that panics is returned.
pub fn fuzz(target: &Target, iterations: u64, budget: Duration, seed: u64) -> Result<Stats, Box<Crash>> {
    let seeds = seeds(target.name);
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut m = mutate::Mutator::new(seed, target.dictionary);
    let check = |input: &[u8]| {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            c.clear();
            c.extend_from_slice(input);
        });
        std::panic::catch_unwind(|| (target.run)(input)).map_err(|p| {
            let message = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Box::new(Crash { message, input: input.to_vec() })
        })
    };
    for s in &seeds {
        check(s)?;
        stats.executions += 1;
    }
    let fallback = [Vec::new()];
    let pool: &[Vec<u8>] = if seeds.is_empty() { &fallback } else { &seeds };
    while stats.executions < iterations && started.elapsed() < budget {
        let input = m.mutate(pool);
        check(&input)?;
        stats.executions += 1;
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Runs target `name` on `data` (the entry point of the libFuzzer targets in `fuzz/libfuzzer/`).
pub fn run(name: &str, data: &[u8]) {
    match target(name) {
        Some(t) => (t.run)(data),
        None => panic!("no fuzz target {name:?}"),
    }
}

/// Every target, by name.
pub fn target(name: &str) -> Option<&'static Target> {
    targets::ALL.iter().find(|t| t.name == name)
}
