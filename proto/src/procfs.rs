//! What odseed reads of another process in `/proc`: whether it lives, when it started, its command
//! line. One parser of `/proc/PID/stat` for the agent (a leftover daemon), the controller (the
//! ledger's owner) and the lab (its processes).

/// A live (not zombie) process's `/proc/PID/stat`, as far as odseed reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Start time in clock ticks since boot (field 22): with the pid, names one process for good.
    pub start_time: u64,
}

/// The process `pid` if it exists and is not a zombie.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// True if a process with this pid exists and is not a zombie (read without parsing every field:
/// the agent's binary needs only this).
pub fn alive(pid: u32) -> bool {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = text.rsplit(')').next().and_then(|rest| rest.bytes().find(|b| *b != b' '));
    state.is_some_and(|s| s != b'Z')
}

/// True if one argument of `pid`'s command line is `arg` (false if it is gone).
pub fn has_arg(pid: u32, arg: &[u8]) -> bool {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0).any(|a| a == arg)
}

/// The fields after the command name, which may itself hold spaces and parentheses: hence the last
/// ')' (here and in [`alive`]).
fn parse_stat(text: &str) -> Option<Stat> {
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    match fields.first() {
        None | Some(&"Z") => None,
        Some(_) => Some(Stat { start_time: fields.get(19)?.parse().ok()? }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_lines() {
        let line = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(parse_stat(line), Some(Stat { start_time: 12345 }));
        assert_eq!(parse_stat("42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 0 0"), None);
        assert_eq!(parse_stat("42 (x)"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id();
        assert!(alive(me));
        assert_eq!(stat(me), stat(me));
        let exe = std::fs::read(format!("/proc/{me}/cmdline")).unwrap();
        let first = exe.split(|b| *b == 0).next().unwrap();
        assert!(has_arg(me, first) && !has_arg(me, b"no such argument"));
    }
}
