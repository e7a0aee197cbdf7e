#!/bin/sh
# The image's root filesystem, made from Debian's packages without a package manager in it:
#   rootfs.sh ROOT BINARY [PACKAGE=VERSION ...]
#   rootfs.sh --packages           (the PACKAGE=VERSION list it would unpack, one a line)
# iptables (legacy and nft) and nftables, which node-cache mode runs, with everything they depend
# on (pre-depends included, recommends not; computed with apt-cache unless given), are unpacked
# with `dpkg -x`: no maintainer scripts, no dpkg database, no shell. Then the kdns binary
# (stripped when `strip` is there) at /usr/local/bin/kdns with its entry points (layout.sh),
# Debian's CA bundle (for `forward tls://`), nsswitch/passwd/group, and placeholders for the
# files the container runtime mounts (/etc/resolv.conf, /etc/hosts). Used by scripts/image.sh
# (which keys its cache on the package list) and the Containerfile.
set -eu
packages() {
  for p in $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances iptables nftables libc6 libgcc-s1 2>/dev/null | grep -v '^ ' | grep -v '^<' | sort -u); do
    echo "$p=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')"
  done
}
if [ "${1:-}" = --packages ]; then
  packages
  exit 0
fi
root=$1
binary=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
  set -- $(packages)
fi
debs=$(mktemp -d)
(cd "$debs" && apt-get download "$@" >/dev/null 2>&1) || {
  echo "rootfs: apt-get download failed for: $*" >&2
  exit 1
}
mkdir -p "$root"
for deb in "$debs"/*.deb; do
  dpkg -x "$deb" "$root"
done
rm -rf "$debs"
# Documentation, manual pages and translations are not needed to run.
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian" \
  "$root/usr/share/locale" "$root/usr/share/bug"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/etc/coredns" "$root/tmp" "$root/proc" "$root/dev" \
  "$root/sys" "$root/run" "$root/var/run"
chmod 1777 "$root/tmp"
cp "$binary" "$root/usr/local/bin/kdns"
chmod 0755 "$root/usr/local/bin/kdns"
if command -v strip >/dev/null; then
  strip "$root/usr/local/bin/kdns"
fi
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
printf 'root:x:0:0:root:/:/usr/local/bin/kdns\nnobody:x:65534:65534:nobody:/:/usr/local/bin/kdns\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
: >"$root/etc/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
# The entry points, as absolute links so they resolve the same inside and outside the image.
sh "$here/layout.sh" "$root" /usr/local/bin/kdns
