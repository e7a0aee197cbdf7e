#!/usr/bin/env bash
# Instructions per cache hit, counted by callgrind (deterministic: no timing, no noise), so a
# regression on the hit path shows up as a number that moved. Runs `kdns-bench hits N` twice
# and divides the difference in instructions by the difference in hits (startup cancels out).
# The chain is the node cache's (prometheus, errors, cache) in front of hosts; queries cycle
# through plain, RD-clear, EDNS and EDNS+cookie forms (all in the stored case). User-space instructions only: the
# kernel's receive and send are not in it (bench/peers.sh measures those).
# Usage: bench/callgrind.sh [HITS]        (installs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
command -v valgrind >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q valgrind >/dev/null; }
cargo build --release --quiet -p kdns-benchtools
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
count() {
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.$1" ./target/release/kdns-bench hits "$1" >/dev/null 2>"$W/log.$1"
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$W/log.$1"
}
small=$(count 1000)
large=$(count $((N + 1000)))
per=$(( (large - small) / N ))
echo "cache hit: $per instructions per query (callgrind, $N hits: $large - $small instructions)"
echo "top functions per hit:"
callgrind_annotate "$W/cg.$((N + 1000))" 2>/dev/null | awk -v n=$((N + 1000)) '/^ *[0-9,]+ .*\(/ && c < 12 {gsub(",", "", $1); printf "  %7.1f  %s\n", $1 / n, substr($0, index($0, $2)); c++}'
