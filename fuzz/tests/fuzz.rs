//! Every target, briefly: its seeds and regressions, then mutations (ODSEED_FUZZ_ITERATIONS each,
//! default 20,000, at most 20 s). A failure names the target and shows the input.

use odseed_fuzz::{fuzz, targets::ALL};
use std::time::Duration;

#[test]
fn no_parser_fails_on_any_input_tried() {
    let iterations = std::env::var("ODSEED_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    for t in ALL {
        assert!(!odseed_fuzz::seeds(t.name).is_empty(), "no seed corpus for {}", t.name);
        if let Err(crash) = fuzz(t, iterations, Duration::from_secs(20), 0x0d5eed) {
            failures.push(format!(
                "{}: {}\n  input: {:?}",
                t.name,
                crash.message,
                String::from_utf8_lossy(&crash.input)
            ));
        }
    }
    let _ = std::panic::take_hook();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
