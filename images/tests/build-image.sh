#!/usr/bin/env bash
# Tests images/build-image on synthetic base images (MBR, FAT boot partition, ext4 root) made here,
# checking the result from outside with the same user-space tools (debugfs, e2fsck, mtools).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build-image"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# make_base IMG ROOT_MIB [FILL_MIB] [--no-fat]: a 16 MiB FAT partition and an ext4 root.
make_base() {
  local img=$1 root_mib=$2 fill=${3:-0} fat=${4:-}
  local rootfs="$t/rootfs-$RANDOM"
  mkdir -p "$rootfs"/{etc/systemd/system,usr/local/bin,usr/lib,var/cache,boot/firmware,home/pi}
  echo "base image" > "$rootfs/etc/issue"
  [ "$fill" -eq 0 ] || head -c "${fill}M" /dev/urandom > "$rootfs/home/pi/filler"
  truncate -s $((18 + root_mib))M "$img"
  if [ "$fat" = --no-fat ]; then
    printf 'label: dos\nstart=34816, type=83\n' | sfdisk -q "$img"
  else
    printf 'label: dos\nstart=2048, size=32768, type=c\nstart=34816, type=83\n' | sfdisk -q "$img"
    rm -f "$t/boot.img"
    mkfs.vfat -n BOOTFS -C "$t/boot.img" 16384 >/dev/null
    dd if="$t/boot.img" of="$img" bs=512 seek=2048 conv=notrunc status=none
  fi
  rm -f "$t/root.img"
  mkfs.ext4 -q -d "$rootfs" "$t/root.img" "${root_mib}M" >/dev/null
  dd if="$t/root.img" of="$img" bs=512 seek=34816 conv=notrunc status=none
}

root_of() { dd if="$1" of="$t/out-root.img" bs=512 skip=34816 count=$(( $(stat -c %s "$t/root.img") / 512 )) status=none; }
dbg() { debugfs -R "$1" "$t/out-root.img" 2>/dev/null; }

printf '#!/bin/sh\necho odseed-agent\n' > "$t/agent"
printf 'listen = "0.0.0.0:5050"\ntoken_file = "/var/lib/odseed/token"\ndata_dir = "/var/lib/odseed/data"\nstate_dir = "/var/lib/odseed/state"\n' > "$t/agent.toml"
mkdir -p "$t/debs" && echo "not really a deb" > "$t/debs/transmission-daemon_3.00_armhf.deb"

# --- a good base image --------------------------------------------------------------------------
make_base "$t/base.img" 48
sum_before=$(sha256sum < "$t/base.img")
if "$build" --base "$t/base.img" --agent "$t/agent" --config "$t/agent.toml" --out "$t/out.img" --debs "$t/debs" > "$t/log" 2>&1; then
  pass "build-image succeeds"
else
  echo "FAIL: build-image failed: $(cat "$t/log")" >&2
  exit 1
fi
if [ "$(sha256sum < "$t/base.img")" = "$sum_before" ]; then pass "the base image is untouched"; else fail "the base image changed"; fi
root_of "$t/out.img"
if e2fsck -fn "$t/out-root.img" >/dev/null 2>&1; then pass "the root file system is clean (e2fsck)"; else fail "e2fsck finds errors"; fi
if dbg "stat /usr/local/bin/odseed-agent" | grep -q 'Mode:  0755'; then pass "agent at /usr/local/bin, mode 0755"; else fail "agent missing or wrong mode"; fi
if dbg "stat /usr/local/bin/odseed-agent" | grep -q 'User:     0   Group:     0'; then pass "agent owned by root"; else fail "agent not owned by root"; fi
if [ "$(dbg "cat /usr/local/bin/odseed-agent")" = "$(cat "$t/agent")" ]; then pass "agent bytes intact"; else fail "agent bytes differ"; fi
if [ "$(dbg "cat /etc/odseed/agent.toml")" = "$(cat "$t/agent.toml")" ]; then pass "config at /etc/odseed/agent.toml"; else fail "config differs"; fi
unit=$(dbg "cat /etc/systemd/system/odseed-agent.service")
for want in 'User=odseed' 'Restart=on-failure' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'StateDirectory=odseed' 'WantedBy=multi-user.target' 'LimitNOFILE=4096' 'MemoryMax=256M' 'TasksMax=128'; do
  if grep -qx "$want" <<<"$unit"; then pass "unit has $want"; else fail "unit lacks $want"; fi
done
for u in odseed-agent odseed-firstboot; do
  link=$(dbg "stat /etc/systemd/system/multi-user.target.wants/$u.service")
  if grep -q 'Type: symlink' <<<"$link" && grep -q "/etc/systemd/system/$u.service" <<<"$link"; then pass "$u enabled (multi-user.target.wants link)"; else fail "$u not enabled: $link"; fi
done
if dbg "stat /usr/local/lib/odseed/firstboot" | grep -q 'Mode:  0755'; then pass "first-boot script executable"; else fail "first-boot script missing"; fi
if dbg "cat /usr/lib/sysusers.d/odseed.conf" | grep -q '^u odseed '; then pass "odseed user declared (sysusers.d)"; else fail "no sysusers entry"; fi
if dbg "ls /var/cache/odseed/debs" | grep -q 'transmission-daemon_3.00_armhf.deb'; then pass ".deb files carried"; else fail ".deb not carried"; fi
if [ "$(dbg "cat /etc/issue")" = "base image" ]; then pass "the base's own files are kept"; else fail "base files lost"; fi
if mtype -i "$t/out.img@@$((2048 * 512))" ::/odseed/README.txt | grep -q 'token'; then pass "boot partition has odseed/README.txt"; else fail "no README on the boot partition"; fi

# --- the same from a .xz base ------------------------------------------------------------------------
xz -k -T1 -0 "$t/base.img"
if "$build" --base "$t/base.img.xz" --agent "$t/agent" --config "$t/agent.toml" --out "$t/out-xz.img" > "$t/log" 2>&1; then
  root_of "$t/out-xz.img"
  if dbg "stat /usr/local/bin/odseed-agent" | grep -q 'Mode:  0755'; then pass "a .img.xz base works"; else fail "agent missing from the .xz build"; fi
else
  fail ".xz base failed: $(cat "$t/log")"
fi

# --- bad inputs: a clear message, a non-zero exit, no output left behind ------------------------------
expect_failure() { # NAME CODE NEEDLE ARGS...
  local name=$1 code=$2 needle=$3; shift 3
  rm -f "$t/bad-out.img"
  set +e
  "$build" "$@" > "$t/log" 2>&1
  local rc=$?
  set -e
  if [ "$rc" -eq "$code" ] && grep -q "$needle" "$t/log" && [ ! -e "$t/bad-out.img" ]; then
    pass "$name: exit $rc, \"$(grep -m1 "$needle" "$t/log")\""
  else
    fail "$name: exit $rc (want $code), output: $(cat "$t/log")"
  fi
}
expect_failure "missing base" 2 "no such file" --base "$t/nope.img" --agent "$t/agent" --config "$t/agent.toml" --out "$t/bad-out.img"
expect_failure "missing agent" 2 "no such file" --base "$t/base.img" --agent "$t/nope" --config "$t/agent.toml" --out "$t/bad-out.img"
expect_failure "missing argument" 2 "are required" --base "$t/base.img" --out "$t/bad-out.img"
expect_failure "unknown argument" 2 "unknown argument --board" --base "$t/base.img" --agent "$t/agent" --config "$t/agent.toml" --out "$t/bad-out.img" --board rpi
echo "just text" > "$t/text.img"
expect_failure "not a disk image" 1 "no partition table" --base "$t/text.img" --agent "$t/agent" --config "$t/agent.toml" --out "$t/bad-out.img"
make_base "$t/nofat.img" 16 0 --no-fat
expect_failure "no FAT partition" 1 "no FAT boot partition" --base "$t/nofat.img" --agent "$t/agent" --config "$t/agent.toml" --out "$t/bad-out.img"
make_base "$t/full.img" 8 6
head -c 3M /dev/urandom > "$t/big-agent"
expect_failure "no free space" 1 "no free space" --base "$t/full.img" --agent "$t/big-agent" --config "$t/agent.toml" --out "$t/bad-out.img"
echo "not xz" > "$t/bad.img.xz"
expect_failure "broken .xz" 1 "not a valid .xz" --base "$t/bad.img.xz" --agent "$t/agent" --config "$t/agent.toml" --out "$t/bad-out.img"

if [ "$failures" -gt 0 ]; then
  echo "build-image tests: $failures failure(s)" >&2
  exit 1
fi
echo "build-image tests: all passed"
