//! The user-data a provisioned instance runs once at its first boot (cloud-init runs a script that
//! starts with `#!`, as root): fetch the agent and the secrets object through presigned URLs and
//! check their SHA-256, install transmission-daemon from the distribution and keep its own service
//! off, install the agent, its config (TLS on), the pool's token, certificate and key, and the
//! hardened unit from `images/files/`; then power off. On any failure it stops short of powering off, so `provision` sees an instance
//! that never stopped and shows its console output.
//!
//! It holds no secret, only presigned URLs: the secrets object is deleted once provision has seen
//! the instances set up, and its URL is valid for an hour at most. The instance is launched with
//! IMDSv2 required and a hop limit of 1 all the same, so the metadata service (which serves the
//! user-data to any local process) answers only requests made on the instance itself.

/// The agent's hardened unit and its system user, as the board images install them.
pub const UNIT: &str = include_str!("../../../images/files/odseed-agent.service");
pub const SYSUSERS: &str = include_str!("../../../images/files/odseed.sysusers");

/// The secrets an instance installs: not in the user-data (whoever may describe the instance can
/// read that for its whole life) but in an S3 object of their own, fetched through a presigned URL
/// and deleted by provision once it has seen the instances set up.
pub struct Secrets<'a> {
    pub token: &'a str,
    pub cert_pem: &'a str,
    /// The certificate's SHA-256, written beside it (where the agent, which may not write /etc
    /// under its unit, would otherwise try to).
    pub cert_sha256: &'a str,
    pub key_pem: &'a str,
}

/// What the user-data fetches and sets up.
pub struct Setup<'a> {
    pub agent_url: &'a str,
    pub agent_sha256: &'a str,
    /// The secrets object ([`secrets`]), and its SHA-256.
    pub secrets_url: &'a str,
    pub secrets_sha256: &'a str,
    pub agent_port: u16,
    pub peer_port: u16,
}

/// EC2 refuses user-data over 16 KiB (before base64).
pub const MAX_BYTES: usize = 16 * 1024;

fn file(path: &str, text: &str) -> String {
    format!("cat > {path} <<'ODSEED_END'\n{}\nODSEED_END\n", text.trim_end())
}

/// The secrets object: a shell fragment the user-data runs (after checking its SHA-256) that writes
/// the token, certificate, key and fingerprint; an error if one of them could break out of its
/// quoting.
pub fn secrets(s: &Secrets) -> Result<String, String> {
    for (what, text) in
        [("token", s.token), ("certificate", s.cert_pem), ("key", s.key_pem), ("fingerprint", s.cert_sha256)]
    {
        if text.lines().any(|l| l == "ODSEED_END") {
            return Err(format!("the {what} cannot be written as it is"));
        }
    }
    Ok(format!(
        "umask 077\n{}{}{}{}umask 022\n",
        file("/etc/odseed/token", s.token),
        file("/etc/odseed/cert.pem", s.cert_pem),
        file("/etc/odseed/cert.sha256", s.cert_sha256),
        file("/etc/odseed/key.pem", s.key_pem),
    ))
}

/// The script; an error if something in it could break out of its quoting or it is too large.
pub fn script(s: &Setup) -> Result<String, String> {
    let hex = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit());
    let url_ok = |u: &str| !u.contains(['\'', '\n']);
    if !url_ok(s.agent_url) || !url_ok(s.secrets_url) || !hex(s.agent_sha256) || !hex(s.secrets_sha256) {
        return Err("a URL or SHA-256 cannot go into user-data as it is".into());
    }
    let config = format!(
        "listen = \"0.0.0.0:{}\"\ntoken_file = \"/etc/odseed/token\"\ndata_dir = \"/var/lib/odseed/data\"\n\
         state_dir = \"/var/lib/odseed/state\"\n\n[daemon]\npeer_port = {}\n\n[tls]\nenabled = true\n\
         cert_file = \"/etc/odseed/cert.pem\"\nkey_file = \"/etc/odseed/key.pem\"\n",
        s.agent_port, s.peer_port
    );
    let text = format!(
        r#"#!/bin/bash
# odseed helper setup, made by `odseed ec2 provision`: runs once at the first boot, then powers off.
set -euo pipefail
exec > >(tee -a /var/log/odseed-setup.log) 2>&1
fail() {{ echo "odseed-setup: FAILED: $*" >&2; exit 1; }}
echo "odseed-setup: starting"
# fetch URL SHA256 WHAT: a file with that SHA-256, fetched from URL.
fetch() {{
  local tmp got
  tmp=$(mktemp)
  if command -v curl > /dev/null; then
    curl -fsS --retry 5 --retry-connrefused -o "$tmp" "$1" || fail "cannot fetch the $3"
  elif command -v wget > /dev/null; then
    wget -q -O "$tmp" "$1" || fail "cannot fetch the $3"
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$tmp" ||
      fail "cannot fetch the $3"
  fi
  got=$(sha256sum "$tmp" | cut -d' ' -f1)
  [ "$got" = "$2" ] || fail "the $3 fetched has SHA-256 $got, not $2: not installed"
  echo "$tmp"
}}
agent=$(fetch '{agent_url}' '{agent_sha}' agent)
secrets=$(fetch '{secrets_url}' '{secrets_sha}' secrets)
if ! command -v transmission-daemon > /dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q || fail "apt-get update"
  apt-get install -y -q --no-install-recommends transmission-daemon || fail "cannot install transmission-daemon"
fi
# The distribution's own transmission service stays off: the agent runs its own daemon.
systemctl disable --now transmission-daemon.service > /dev/null 2>&1 || true
systemctl mask transmission-daemon.service > /dev/null 2>&1 || true
install -m 0755 "$agent" /usr/local/bin/odseed-agent
mkdir -p /etc/odseed /usr/lib/sysusers.d /etc/systemd/system
# The token, certificate and key (an object of their own, checked above).
. "$secrets"
rm -f "$agent" "$secrets"
{config}{unit}{sysusers}systemd-sysusers /usr/lib/sysusers.d/odseed.conf || fail "cannot make the user odseed"
chown root:odseed /etc/odseed/token /etc/odseed/key.pem
chmod 0640 /etc/odseed/token /etc/odseed/key.pem
chmod 0644 /etc/odseed/cert.pem /etc/odseed/cert.sha256 /etc/odseed/agent.toml
/usr/local/bin/odseed-agent --config /etc/odseed/agent.toml --check-config || fail "the agent refuses its config"
systemctl enable odseed-agent.service || fail "cannot enable odseed-agent"
if [ -d /run/systemd/system ]; then
  echo "odseed-setup: done; powering off"
  systemctl poweroff
else
  echo "odseed-setup: done (not booted with systemd, as in a chroot: not powering off)"
fi
"#,
        agent_url = s.agent_url,
        agent_sha = s.agent_sha256,
        secrets_url = s.secrets_url,
        secrets_sha = s.secrets_sha256,
        config = file("/etc/odseed/agent.toml", &config),
        unit = file("/etc/systemd/system/odseed-agent.service", UNIT),
        sysusers = file("/usr/lib/sysusers.d/odseed.conf", SYSUSERS),
    );
    if text.len() > MAX_BYTES {
        return Err(format!("the user-data would be {} bytes, over EC2's {MAX_BYTES}", text.len()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup<'static> {
        Setup {
            agent_url: "https://s3.eu-west-3.amazonaws.com/b/k?X-Amz-Signature=ab",
            agent_sha256: "0123abcd",
            secrets_url: "https://s3.eu-west-3.amazonaws.com/b/s?X-Amz-Signature=cd",
            secrets_sha256: "4567ef",
            agent_port: 5050,
            peer_port: 51413,
        }
    }

    #[test]
    fn the_script_holds_no_secret_and_fits() {
        let s = script(&setup()).unwrap();
        assert!(s.starts_with("#!/bin/bash\n"));
        for part in [
            "X-Amz-Signature=ab",
            "X-Amz-Signature=cd",
            "4567ef",
            "enabled = true",
            "ProtectSystem=strict",
            "systemctl poweroff",
        ] {
            assert!(s.contains(part), "{part}");
        }
        assert!(!s.contains("PRIVATE KEY"));
        assert!(s.len() <= MAX_BYTES);
        assert!(script(&Setup { secrets_url: "x'; rm -rf /", ..setup() }).is_err());
        assert!(script(&Setup { agent_sha256: "", ..setup() }).is_err());
    }

    #[test]
    fn the_secrets_are_written_verbatim() {
        let s = Secrets {
            token: "0123456789abcdef0123",
            cert_pem: "C",
            cert_sha256: "ab",
            key_pem: "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n",
        };
        let text = secrets(&s).unwrap();
        assert!(
            text.contains("0123456789abcdef0123")
                && text.contains("BEGIN PRIVATE KEY")
                && text.starts_with("umask 077")
        );
        assert!(secrets(&Secrets { token: "a\nODSEED_END\nrm -rf /", ..s }).is_err());
    }
}
