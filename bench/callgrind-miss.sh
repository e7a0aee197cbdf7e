#!/usr/bin/env bash
# Instructions per forwarded cache miss, counted by callgrind over the whole kdns process (every
# thread, user space only): kdns runs `cache` + `forward` to `kdns-bench reflect` (which answers
# every query with one A record), and `kdns-bench load --once` sends unique names at a fixed
# rate. Counters are zeroed after a warm-up and dumped after the measured names, so start-up is
# not in the figure; the idle wake-ups of the measured seconds are (the same for every build).
# Not timing, so it moves only when the work per miss does — the way to compare two builds of
# the miss path on a noisy host.
# Usage: bench/callgrind-miss.sh [MISSES] [RATE]      KDNS_BIN=path for another build;
#        TOP=N functions listed, ANNOTATE_ARGS=--inclusive=yes, KEEP=file to keep the profile
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
RATE=${2:-4000}
command -v valgrind >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q valgrind >/dev/null; }
cargo build --release --quiet -p kdns -p kdns-benchtools
KDNS=${KDNS_BIN:-./target/release/kdns}
W=$(mktemp -d)
cleanup() { pkill -f "$W" 2>/dev/null || true; kill %1 %2 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
RPORT=$((20000 + RANDOM % 10000)); PORT=$((RPORT + 1))
cat > "$W/Corefile" <<COREFILE
.:$PORT {
    cache 300 {
        success 200000
        denial 200000
    }
    forward . 127.0.0.1:$RPORT
}
COREFILE
for i in $(seq 1 1000); do echo "warm-$i.miss.test A"; done > "$W/warm"
for i in $(seq 1 "$N"); do echo "name-$i.miss.test A"; done > "$W/measured"
./target/release/kdns-bench reflect "127.0.0.1:$RPORT" &
valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$KDNS" -conf "$W/Corefile" >/dev/null 2>"$W/log" &
VPID=$!
echo "up.test A" > "$W/probe"
for _ in $(seq 1 300); do
  ./target/release/kdns-bench load "127.0.0.1:$PORT" "$W/probe" --once --seconds 1 2>/dev/null | grep -q "answered=1" && break
  sleep 0.2
done
./target/release/kdns-bench load "127.0.0.1:$PORT" "$W/warm" --once --rate "$RATE" --inflight 64 >/dev/null
callgrind_control -z "$VPID" >/dev/null
./target/release/kdns-bench load "127.0.0.1:$PORT" "$W/measured" --once --rate "$RATE" --inflight 64 > "$W/load"
callgrind_control -d "$VPID" >/dev/null
sleep 1
total=0
for f in "$W"/cg.out*; do
  c=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$f" | tail -1)
  [ -n "$c" ] && [ "$f" != "$W/cg.out" ] && total=$((total + c))
done
echo "load: $(cat "$W/load")"
echo "cache miss: $((total / N)) instructions per query (callgrind, whole process, $N misses at $RATE q/s)"
best=$(ls -S "$W"/cg.out.* 2>/dev/null | head -1)
if [ -n "${KEEP:-}" ]; then cp "$best" "$KEEP"; fi
callgrind_annotate ${ANNOTATE_ARGS:-} "$best" 2>/dev/null | awk -v n="$N" -v top="${TOP:-15}" '/^ *[0-9,]+ .*\(/ && c < top {gsub(",", "", $1); printf "  %7.1f  %s\n", $1 / n, substr($0, index($0, $2)); c++}'
