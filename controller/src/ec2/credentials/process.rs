//! `credential_process`: a command (run by `sh -c`, as AWS's Rust SDK does on Unix) that prints
//! `{"Version": 1, "AccessKeyId": ..., "SecretAccessKey": ..., "SessionToken": ..., "Expiration":
//! RFC 3339}` on stdout. Bounded: at most [`TIMEOUT`] and [`MAX_OUTPUT`] bytes of output; a command
//! that exits with an error, hangs or prints anything else is one line saying so, never what it
//! printed on stdout (that may hold a secret). Its stderr goes where odseed's goes.

use super::Credentials;
use serde::Deserialize;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_OUTPUT: u64 = 64 << 10;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Output {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expiration: Option<String>,
}

/// Runs `command` and reads the credentials it prints.
pub fn run(command: &str, timeout: Duration) -> Result<Credentials, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("cannot read its output")?;
    // Read on a thread: the deadline holds even for a command that prints nothing and never exits.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = (&mut stdout).take(MAX_OUTPUT + 1).read_to_end(&mut out);
        read.map(|_| out)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it did not finish within {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    // It exited: its stdout is closed unless a child of its own holds it; that is bounded too, and
    // what it left behind goes with its group.
    let out = wait_reader(reader, deadline);
    kill_group(child.id());
    let out = out.ok_or("its output did not end (a process it started holds it open)")?;
    let out = out.map_err(|e| format!("cannot read its output: {e}"))?;
    // Too much output first: what is not read ends it with SIGPIPE.
    if out.len() as u64 > MAX_OUTPUT {
        return Err(format!("it printed more than {} KiB", MAX_OUTPUT >> 10));
    }
    if !status.success() {
        return Err(format!("it failed ({status})"));
    }
    let o: Output = serde_json::from_slice(&out).map_err(|e| {
        // serde's message may quote a value: only where it failed is said.
        format!("its output is not the JSON AWS's tools expect (line {}, column {})", e.line(), e.column())
    })?;
    if o.version != 1 {
        return Err(format!("its output has Version {}; only 1 is known", o.version));
    }
    Credentials::from_parts(
        o.access_key_id,
        o.secret_access_key,
        o.session_token,
        o.expiration.as_deref(),
        "its output",
    )
}

/// SIGKILL to the process group `pid` leads (the command and whatever it started).
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) of a process group; no memory effects on this process.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

fn wait_reader<T>(reader: std::thread::JoinHandle<T>, deadline: Instant) -> Option<T> {
    while !reader.is_finished() {
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    reader.join().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_s_credentials_and_every_way_it_can_go_wrong() {
        let good = r#"echo '{"Version":1,"AccessKeyId":"AKP","SecretAccessKey":"sEcReT","SessionToken":"t","Expiration":"2030-01-02T03:04:05Z"}'"#;
        let c = run(good, TIMEOUT).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token.as_deref()), ("AKP", Some("t")));
        assert_eq!(c.expires, Some(std::time::UNIX_EPOCH + Duration::from_secs(1_893_553_445)));
        let cases = [
            ("exit 3", "it failed"),
            ("echo sEcReT-garbage", "is not the JSON"),
            (r#"echo '{"Version":2,"AccessKeyId":"a","SecretAccessKey":"sEcReT"}'"#, "Version 2"),
            (r#"echo '{"Version":1,"AccessKeyId":"a","SecretAccessKey":"sEcReT","Expiration":"soon"}'"#, "Expiration"),
            ("sleep 30", "did not finish within 1s"),
            ("head -c 100000 /dev/zero", "more than 64 KiB"),
            ("/nonexistent/thing", "it failed"),
        ];
        for (command, want) in cases {
            let e = run(command, Duration::from_secs(1)).unwrap_err();
            assert!(e.contains(want), "{command}: {e}");
            assert!(!e.contains("sEcReT"), "{command}: {e}");
        }
    }
}
