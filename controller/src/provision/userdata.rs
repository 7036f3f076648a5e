//! The user-data a provisioned instance runs once at its first boot (cloud-init runs a script that
//! starts with `#!`, as root): fetch the agent through a presigned URL and check its SHA-256, install
//! transmission-daemon from the distribution and keep its own service off, install the agent, its
//! config (TLS on), the pool's token, certificate and key, and the hardened unit from `images/files/`;
//! then power off. On any failure it stops short of powering off, so `provision` sees an instance
//! that never stopped and shows its console output.
//!
//! It holds secrets (the token, the key): the instance is launched with IMDSv2 required and a hop
//! limit of 1, so the metadata service (which serves the user-data to any local process) answers
//! only requests made on the instance itself, not forged ones relayed from outside or from
//! containers. In the account, whoever may call DescribeInstanceAttribute can read it too.

/// The agent's hardened unit and its system user, as the board images install them.
pub const UNIT: &str = include_str!("../../../images/files/odseed-agent.service");
pub const SYSUSERS: &str = include_str!("../../../images/files/odseed.sysusers");

/// What the script installs.
pub struct Setup<'a> {
    pub agent_url: &'a str,
    pub agent_sha256: &'a str,
    pub token: &'a str,
    pub cert_pem: &'a str,
    /// The certificate's SHA-256, written beside it (where the agent, which may not write /etc
    /// under its unit, would otherwise try to).
    pub cert_sha256: &'a str,
    pub key_pem: &'a str,
    pub agent_port: u16,
    pub peer_port: u16,
}

/// EC2 refuses user-data over 16 KiB (before base64).
pub const MAX_BYTES: usize = 16 * 1024;

/// The script; an error if something in it could break out of its quoting or it is too large.
pub fn script(s: &Setup) -> Result<String, String> {
    for (what, text) in [("token", s.token), ("certificate", s.cert_pem), ("key", s.key_pem)] {
        if text.lines().any(|l| l == "ODSEED_END") || text.contains('\'') {
            return Err(format!("the {what} cannot go into user-data as it is"));
        }
    }
    let hex = |t: &str| t.bytes().all(|b| b.is_ascii_hexdigit());
    if s.agent_url.contains(['\'', '\n']) || !hex(s.agent_sha256) || !hex(s.cert_sha256) {
        return Err("the agent's URL or SHA-256 cannot go into user-data as it is".into());
    }
    let config = format!(
        "listen = \"0.0.0.0:{}\"\ntoken_file = \"/etc/odseed/token\"\ndata_dir = \"/var/lib/odseed/data\"\n\
         state_dir = \"/var/lib/odseed/state\"\n\n[daemon]\npeer_port = {}\n\n[tls]\nenabled = true\n\
         cert_file = \"/etc/odseed/cert.pem\"\nkey_file = \"/etc/odseed/key.pem\"\n",
        s.agent_port, s.peer_port
    );
    let file = |path: &str, text: &str| format!("cat > {path} <<'ODSEED_END'\n{}\nODSEED_END\n", text.trim_end());
    let text = format!(
        r#"#!/bin/bash
# odseed helper setup, made by `odseed ec2 provision`: runs once at the first boot, then powers off.
set -euo pipefail
exec > >(tee -a /var/log/odseed-setup.log) 2>&1
fail() {{ echo "odseed-setup: FAILED: $*"; exit 1; }}
echo "odseed-setup: starting"
agent_url='{url}'
agent_sha256='{sha}'
tmp=$(mktemp)
if command -v curl > /dev/null; then
  curl -fsS --retry 5 --retry-connrefused -o "$tmp" "$agent_url" || fail "cannot fetch the agent"
elif command -v wget > /dev/null; then
  wget -q -O "$tmp" "$agent_url" || fail "cannot fetch the agent"
else
  python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$agent_url" "$tmp" ||
    fail "cannot fetch the agent"
fi
got=$(sha256sum "$tmp" | cut -d' ' -f1)
[ "$got" = "$agent_sha256" ] || fail "the agent fetched has SHA-256 $got, not $agent_sha256: not installed"
if ! command -v transmission-daemon > /dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q || fail "apt-get update"
  apt-get install -y -q --no-install-recommends transmission-daemon || fail "cannot install transmission-daemon"
fi
# The distribution's own transmission service stays off: the agent runs its own daemon.
systemctl disable --now transmission-daemon.service > /dev/null 2>&1 || true
systemctl mask transmission-daemon.service > /dev/null 2>&1 || true
install -m 0755 "$tmp" /usr/local/bin/odseed-agent
rm -f "$tmp"
mkdir -p /etc/odseed /usr/lib/sysusers.d /etc/systemd/system
umask 077
{token}{cert}{key}umask 022
{config}{pin}{unit}{sysusers}systemd-sysusers /usr/lib/sysusers.d/odseed.conf || fail "cannot make the user odseed"
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
        url = s.agent_url,
        sha = s.agent_sha256,
        token = file("/etc/odseed/token", s.token),
        cert = file("/etc/odseed/cert.pem", s.cert_pem),
        key = file("/etc/odseed/key.pem", s.key_pem),
        config = file("/etc/odseed/agent.toml", &config),
        pin = file("/etc/odseed/cert.sha256", s.cert_sha256),
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

    fn setup<'a>(token: &'a str) -> Setup<'a> {
        Setup {
            agent_url: "https://s3.eu-west-3.amazonaws.com/b/k?X-Amz-Signature=ab",
            agent_sha256: "0123abcd",
            token,
            cert_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            cert_sha256: "abcd",
            key_pem: "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n",
            agent_port: 5050,
            peer_port: 51413,
        }
    }

    #[test]
    fn the_script_holds_everything_and_fits() {
        let s = script(&setup("0123456789abcdef0123")).unwrap();
        assert!(s.starts_with("#!/bin/bash\n"));
        for part in [
            "0123456789abcdef0123",
            "BEGIN CERTIFICATE",
            "BEGIN PRIVATE KEY",
            "enabled = true",
            "ProtectSystem=strict",
            "systemctl poweroff",
            "X-Amz-Signature=ab",
        ] {
            assert!(s.contains(part), "{part}");
        }
        assert!(s.len() <= MAX_BYTES);
        assert!(script(&setup("tok'en")).is_err());
        assert!(script(&setup("a\nODSEED_END\nrm -rf /")).is_err());
    }
}
