#!/usr/bin/env bash
# Quick side-by-side: kdns vs dnsmasq answering the same hosts-file name from memory, with
# dnsperf on loopback, alternating runs. Prints each run, the medians and the ratio.
# Bounded: ROUNDS x 2 runs of SECONDS each. Not part of the test suite (numbers, not asserts).
# Usage: bench/quick.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
. bench/lib.sh
need dnsperf dnsperf
need dnsmasq dnsmasq-base
cargo build --release --quiet
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
KPORT=11153 DPORT=11154
printf '.:%s {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:19253\n    errors\n    loadbalance\n    hosts %s/hosts\n}\n' "$KPORT" "$work" > "$work/Corefile"
printf '10.0.0.1 web.example.org\n10.0.0.2 web.example.org\n' > "$work/hosts"
for _ in $(seq 1 200); do echo "web.example.org A"; done > "$work/queries"

run_perf() { dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries" -l "$SECONDS_PER_RUN" -c 8 -q 200 2>&1 | awk '/Queries per second/ {printf "%d", $4}'; }
k=(); d=()
for r in $(seq 1 "$ROUNDS"); do
  ./target/release/kdns -conf "$work/Corefile" -quiet >/dev/null 2>&1 & kpid=$!
  sleep 0.5; q=$(run_perf $KPORT); k+=("$q"); kill $kpid; wait $kpid 2>/dev/null || true
  dnsmasq -k -p $DPORT --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --addn-hosts="$work/hosts" --cache-size=10000 --user=root >/dev/null 2>&1 & dpid=$!
  sleep 0.5; q2=$(run_perf $DPORT); d+=("$q2"); kill $dpid; wait $dpid 2>/dev/null || true
  echo "round $r: kdns ${q} qps, dnsmasq ${q2} qps"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mk=$(median "${k[@]}"); md=$(median "${d[@]}")
echo "median: kdns ${mk} qps, dnsmasq ${md} qps, ratio kdns/dnsmasq = $(awk -v a="$mk" -v b="$md" 'BEGIN {printf "%.2f", a/b}')"
