#!/bin/sh
# The image's file layout: the names existing manifests call (`/coredns` for CoreDNS's
# Deployment, `/node-cache` for node-local-dns's DaemonSet) point at the one kdns binary, which
# picks its mode from the name it was started as. Used by the Containerfile and by the test
# suite (which runs the binary through these names in a scratch directory).
#   layout.sh ROOT BINARY
set -eu
root=$1
binary=$2
mkdir -p "$root"
for name in coredns node-cache kdns; do
  [ "$root/$name" -ef "$binary" ] && continue
  ln -sf "$binary" "$root/$name"
done
