//! Bad configs: one clear line naming the key, exit code 2; --check-config.

use crate::bin;
use odseed_lab::TempDir;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run odseed-agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn bad_configs_name_the_key_and_exit_2() {
    let dir = TempDir::new("config").unwrap();
    let cases = [
        ("listen = \"nowhere\"\n", "`listen`"),
        ("[daemon]\npeer_prot = 1\n", "peer_prot"),
        ("max_connections = 0\n", "`max_connections`"),
        ("max_connections_per_address = 100\n", "`max_connections_per_address`"),
        ("[daemon]\nbind_address = \"nowhere\"\n", "line 2, key `bind_address`"),
        ("token_file = 5\n", "`token_file`"),
        ("this is not toml", "line 1"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (code, _, err) = run(&["--config", path.to_str().unwrap(), "--check-config"]);
        assert_eq!(code, 2, "{text:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line for {text:?}: {err}");
        assert!(err.contains(needle) && err.contains(path.to_str().unwrap()), "{text:?}: {err}");
    }
    // A token shorter than 16 characters: a config error, with or without --check-config.
    std::fs::write(dir.path().join("short.token"), "0123456789abcde\n").unwrap();
    let path = dir.path().join("short.toml");
    std::fs::write(&path, format!("token_file = \"{}\"\n", dir.path().join("short.token").display())).unwrap();
    for args in [&["--config", path.to_str().unwrap(), "--check-config"][..], &["--config", path.to_str().unwrap()]] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("at least 16 characters") && err.contains("short.token"), "{err}");
    }
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/agent.md")).unwrap();
    assert!(page.contains("at least 16 characters"), "docs/agent.md tells the token's minimum length");
    let (code, _, err) = run(&["--config", "/nonexistent/agent.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/agent.toml"), "{err}");
    assert_eq!(run(&["--frobnicate"]).0, 2);
}

#[test]
fn check_config_accepts_the_example_and_help_explains() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/agent.toml");
    let (code, out, err) = run(&["--config", example, "--check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"));
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--config") && out.contains("--check-config"));
}
