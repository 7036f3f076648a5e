//! Where the controller's files live by default, the XDG way: the home directory, the config home
//! (`$XDG_CONFIG_HOME`, else `~/.config`) and the state home (`$XDG_STATE_HOME`, else
//! `~/.local/state`). One place, so the config, the ledger and AWS's credentials agree.

use std::path::PathBuf;

/// `$HOME`, else `/`.
pub fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

/// `$XDG_CONFIG_HOME/odseed`, else `~/.config/odseed`.
pub fn config_dir() -> PathBuf {
    base("XDG_CONFIG_HOME", ".config").join("odseed")
}

/// `$XDG_STATE_HOME/odseed`, else `~/.local/state/odseed`.
pub fn state_dir() -> PathBuf {
    base("XDG_STATE_HOME", ".local/state").join("odseed")
}

/// The directory `var` names if set and not empty, else `~/fallback`.
fn base(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| home().join(fallback))
}
