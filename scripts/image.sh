#!/usr/bin/env bash
# Builds the kdns runtime image without a registry or a daemon, from Debian's packages:
#
#   scripts/image.sh [BINARY]      (default target/release/kdns; prints the image directory)
#
# The root filesystem is made by deploy/image/rootfs.sh (the binary, stripped, with the entry
# points /coredns, /node-cache and /kdns, and iptables and nftables unpacked from Debian's
# packages: no package manager, no shell). umoci assembles it into an OCI image layout
# (entrypoint /coredns, the CoreDNS ports), exported as an OCI archive; `umoci unpack` of that
# archive gives the bundle the test suite runs (crates/kdns/tests/image.rs).
#
# The result is cached under target/kdns-image/<hash of the inputs>: the binary, this script,
# layout.sh and the package versions. A second run with the same inputs only prints the path.
# deploy/image/Containerfile builds the same layout for users with a registry.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/kdns}")
for tool in umoci dpkg apt-get; do
  command -v "$tool" >/dev/null || { echo "image: $tool is needed (apt-get install umoci)" >&2; exit 1; }
done

versions=$(sh deploy/image/rootfs.sh --packages)
if ! grep -q '^iptables=[0-9]' <<<"$versions"; then
  apt-get update -qq >/dev/null
  versions=$(sh deploy/image/rootfs.sh --packages)
fi
key=$( (sha256sum "$bin" scripts/image.sh deploy/image/rootfs.sh deploy/image/layout.sh | cut -d' ' -f1; echo "$versions") \
  | sha256sum | cut -c1-16)
out=$PWD/target/kdns-image/$key
if [ -f "$out/done" ]; then
  echo "$out"
  exit 0
fi
rm -rf "$out"
mkdir -p "$out"
root=$out/rootfs
# shellcheck disable=SC2086 # one PACKAGE=VERSION per word
sh deploy/image/rootfs.sh "$root" "$bin" $versions

layout=$out/oci
umoci init --layout "$layout"
umoci new --image "$layout:kdns"
umoci unpack --image "$layout:kdns" "$out/bundle" >/dev/null
cp -a "$root/." "$out/bundle/rootfs/"
umoci repack --image "$layout:kdns" "$out/bundle" >/dev/null
umoci config --image "$layout:kdns" --config.entrypoint /coredns --config.workingdir / \
  --config.exposedports 53/udp --config.exposedports 53/tcp --config.exposedports 8080/tcp \
  --config.exposedports 8181/tcp --config.exposedports 9153/tcp --config.exposedports 9253/tcp \
  --config.exposedports 9353/tcp >/dev/null
umoci gc --layout "$layout"
rm -rf "$out/bundle"
tar -C "$layout" -cf "$out/kdns.oci.tar" .
# What the test suite runs: the image itself, unpacked again from the archive.
mkdir -p "$out/check"
tar -C "$out/check" -xf "$out/kdns.oci.tar"
umoci unpack --image "$out/check:kdns" "$out/bundle" >/dev/null
rm -rf "$out/check"

compressed=$(find "$layout/blobs" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
unpacked=$(du -sb "$out/bundle/rootfs" | cut -f1)
files=$(find "$out/bundle/rootfs" -type f | wc -l)
binary=$(stat -c %s "$root/usr/local/bin/kdns")
shell=no
[ -e "$out/bundle/rootfs/bin/sh" ] || [ -e "$out/bundle/rootfs/usr/bin/sh" ] && shell=yes
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
{
  echo "image: $out/kdns.oci.tar"
  echo "compressed: $compressed bytes ($(mib "$compressed"))"
  echo "unpacked: $unpacked bytes ($(mib "$unpacked")), $files files, shell: $shell"
  echo "kdns binary: $binary bytes ($(mib "$binary"), stripped)"
  echo "packages: $(echo $versions)"
} >"$out/report.txt"
rm -rf "$root"
touch "$out/done"
echo "$out"
