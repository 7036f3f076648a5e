//! An `odseed-agent` process with its own config, token, data and state dirs, reached through the
//! agent API client of odseed-proto.

use crate::process::Proc;
use odseed_proto::agent_client::AgentClient;
use odseed_proto::tls::Fingerprint;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What differs between agents in a test.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The host address its daemon binds to (peers and announces).
    pub host: Ipv4Addr,
    /// The API's address.
    pub listen: Ipv4Addr,
    pub idle_stop_secs: u64,
    pub upload_kbps: u32,
    pub max_torrent_bytes: u64,
    pub max_torrents: usize,
    pub stop_grace_secs: u64,
    /// The transmission-daemon to run (`daemon.program`).
    pub program: PathBuf,
    /// The API over TLS, with a self-signed certificate the agent makes at its first start.
    pub tls: bool,
    /// The API's port (None: one free here; give one when the agent runs in a namespace of its own).
    pub port: Option<u16>,
    /// `max_content_bytes` and `min_free_bytes`, when not the agent's defaults.
    pub max_content_bytes: Option<u64>,
    pub min_free_bytes: Option<u64>,
    /// `daemon.utp_off_secs`, when not the agent's default (tests where Transmission 3's uTP window
    /// is not the subject set 0 and need not wait it out).
    pub utp_off_secs: Option<u64>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            host: Ipv4Addr::LOCALHOST,
            listen: Ipv4Addr::LOCALHOST,
            idle_stop_secs: 300,
            upload_kbps: 0,
            max_torrent_bytes: 1 << 20,
            max_torrents: 100,
            stop_grace_secs: 10,
            program: PathBuf::from("transmission-daemon"),
            tls: false,
            port: None,
            max_content_bytes: None,
            min_free_bytes: None,
            utp_off_secs: None,
        }
    }
}

pub struct Agent {
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub config: PathBuf,
    pub url: String,
    pub token: String,
    /// With TLS: its certificate's fingerprint, read from the file the agent writes.
    pub pin: Option<Fingerprint>,
    bin: PathBuf,
    proc: Option<Proc>,
    starts: u32,
}

impl Agent {
    /// Writes a config under `root` and starts the agent at `bin`; returns once `/v1/health` answers.
    pub fn start(bin: &Path, root: &Path, o: &AgentOptions) -> Result<Agent, String> {
        let (data_dir, state_dir) = (root.join("data"), root.join("state"));
        std::fs::create_dir_all(&data_dir).map_err(|e| format!("agent dir: {e}"))?;
        let port = o.port.unwrap_or_else(|| crate::free_port(o.listen));
        let config = root.join("agent.toml");
        let text = format!(
            "listen = \"{}:{port}\"\ntoken_file = \"{}\"\ndata_dir = \"{}\"\nstate_dir = \"{}\"\nmax_torrent_bytes = {}\n{}\
             [daemon]\nprogram = \"{}\"\nbind_address = \"{}\"\npeer_port = 51413\nidle_stop_secs = {}\nupload_kbps = {}\nstop_grace_secs = {}\n{}",
            o.listen,
            root.join("token").display(),
            data_dir.display(),
            state_dir.display(),
            o.max_torrent_bytes,
            // Only when set: an agent from before the key existed still starts with the others.
            [
                (o.max_torrents != AgentOptions::default().max_torrents).then(|| format!("max_torrents = {}\n", o.max_torrents)),
                o.max_content_bytes.map(|b| format!("max_content_bytes = {b}\n")),
                o.min_free_bytes.map(|b| format!("min_free_bytes = {b}\n")),
            ]
            .into_iter().flatten().collect::<String>(),
            o.program.display(),
            o.host,
            o.idle_stop_secs,
            o.upload_kbps,
            o.stop_grace_secs,
            o.utp_off_secs.map(|s| format!("utp_off_secs = {s}\n")).unwrap_or_default(),
        ) + &if o.tls {
            let tls = root.join("tls");
            format!(
                "[tls]\nenabled = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                tls.join("cert.pem").display(),
                tls.join("key.pem").display()
            )
        } else {
            String::new()
        };
        std::fs::write(&config, text).map_err(|e| format!("agent config: {e}"))?;
        let mut agent = Agent {
            root: root.to_path_buf(),
            data_dir,
            state_dir,
            config,
            url: format!("{}://{}:{port}", if o.tls { "https" } else { "http" }, o.listen),
            token: String::new(),
            pin: None,
            bin: bin.to_path_buf(),
            proc: None,
            starts: 0,
        };
        agent.launch()?;
        Ok(agent)
    }

    /// Starts (again) the agent process with the same config; waits for health.
    pub fn launch(&mut self) -> Result<(), String> {
        self.starts += 1;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config").arg(&self.config).env("RUST_LOG", "odseed_agent=debug,info");
        let log = self.root.join(format!("agent-{}.log", self.starts));
        let mut proc = Proc::spawn("odseed-agent", cmd, &log)?;
        let token_file = self.root.join("token");
        let pin_file = self.root.join("tls").join("cert.sha256");
        let tls = self.url.starts_with("https://");
        let ready = crate::wait_until(Duration::from_secs(20), "the agent's /v1/health", || {
            if let Some(s) = proc.exited() {
                return Some(Err(format!("odseed-agent exited ({s}): {}", proc.log_tail(5))));
            }
            let token = std::fs::read_to_string(&token_file).ok()?.trim().to_string();
            let pin = match tls {
                true => Some(Fingerprint::parse(&std::fs::read_to_string(&pin_file).ok()?).ok()?),
                false => None,
            };
            let client = AgentClient::pinned(&self.url, &token, pin, Duration::from_secs(2));
            client.health().ok().map(|_| Ok((token, pin)))
        });
        (self.token, self.pin) = ready??;
        self.proc = Some(proc);
        Ok(())
    }

    /// An API client with the right token.
    pub fn client(&self) -> AgentClient {
        AgentClient::pinned(&self.url, &self.token, self.pin, Duration::from_secs(15))
    }

    /// Requests the agent has answered in all (`odseed_agent_requests_total`), asked through its
    /// client (this request counts too, once answered).
    pub fn requests_served(&self) -> Result<u64, String> {
        let (_, body) = self.client().request("GET", "/metrics", None).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with("odseed_agent_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum())
    }

    pub fn proc(&mut self) -> Option<&mut Proc> {
        self.proc.as_mut()
    }

    /// The agent's whole log so far (this start).
    pub fn log(&self) -> String {
        self.proc.as_ref().map(Proc::log_text).unwrap_or_default()
    }

    /// The pid of the agent's transmission-daemon, while it runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.state_dir.join("daemon.pid")).ok()?.trim().parse().ok()?;
        crate::process::alive(pid).then_some(pid)
    }

    /// Kills the agent with SIGKILL (its daemon gets SIGTERM from the kernel).
    pub fn kill9(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.kill9();
        }
    }

    /// SIGTERM and wait for the exit; the exit status, if it exited in time.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let p = self.proc.as_mut()?;
        p.signal(libc::SIGTERM);
        p.wait_exit(timeout)
    }

    /// Makes the agent know the content of `torrents` already in its data dir (copied there by
    /// hand): each is put, checked whole by its daemon, and released, as a staged helper's would be.
    /// Restart the agent afterwards ([`Agent::restart`]) before a tracker comes up: Transmission 3
    /// was seen to announce a released torrent as a seeder to a tracker that came up a moment later.
    pub fn register(&self, torrents: &[&crate::content::Made]) -> Result<(), String> {
        let c = self.client();
        for t in torrents {
            c.put(&t.meta.info_hash, &t.bytes).map_err(|e| e.to_string())?;
        }
        for t in torrents {
            let hash = t.meta.info_hash;
            crate::wait_until(Duration::from_secs(120), &format!("{} to hold {hash} whole", self.url), || {
                let content = c.content().ok()?;
                content.torrents.iter().any(|h| h.info_hash == hash && h.complete()).then_some(())
            })?;
            c.delete(&hash).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Stops the agent (and its daemon) and starts it again. From the thread that owns the agent:
    /// a child is sent SIGTERM when the thread that started it ends.
    pub fn restart(&mut self) -> Result<(), String> {
        self.terminate(Duration::from_secs(30)).ok_or("the agent did not stop")?;
        self.launch()
    }

    /// Gives the agent `token` (as instances of one EC2 pool share one): restarts it with that token.
    pub fn set_token(&mut self, token: &str) -> Result<(), String> {
        self.terminate(Duration::from_secs(30)).ok_or("the agent did not stop")?;
        std::fs::write(self.root.join("token"), format!("{token}\n")).map_err(|e| format!("agent token: {e}"))?;
        self.launch()
    }
}
