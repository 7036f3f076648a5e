//! A private network namespace for the calling thread. Processes the thread starts inherit it, so a
//! whole swarm lives on addresses that exist nowhere else, and traffic never leaves it. The thread
//! returns to its original namespace on drop; the namespace vanishes with its last process.
//!
//! Needs CAP_SYS_ADMIN: root, or a user namespace (`unshare --user --map-root-user`).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

pub struct Netns {
    original: File,
    /// Namespaces are per thread: the handle must stay on the thread that entered.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Netns {
    /// Moves the calling thread into a new network namespace and brings `lo` up.
    pub fn enter() -> Result<Netns, String> {
        let original =
            File::open("/proc/thread-self/ns/net").map_err(|e| format!("cannot open this thread's netns: {e}"))?;
        // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's namespace.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!(
                "cannot make a network namespace ({e}); run as root or under `unshare --user --map-root-user`"
            ));
        }
        let ns = Netns { original, _not_send: std::marker::PhantomData };
        ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Gives the namespace one more host address (on `lo`, so every host reaches every other).
    pub fn add_host(&self, addr: Ipv4Addr) -> Result<(), String> {
        ip(&["addr", "add", &format!("{addr}/32"), "dev", "lo"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // SAFETY: setns(2) on a namespace fd we opened; returns this thread to where it was.
        #[allow(unsafe_code)]
        unsafe {
            libc::setns(self.original.as_raw_fd(), libc::CLONE_NEWNET);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if !out.status.success() {
        return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}
