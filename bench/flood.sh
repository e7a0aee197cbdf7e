#!/usr/bin/env bash
# Flood of never-seen names through kdns (cache + forward) in front of a local upstream:
# reports QPS, lost queries, RSS sampled every second and the peak, and checks that a cached
# name is still answered from cache during the flood. Bounded: SECONDS of load.
# Usage: bench/flood.sh [SECONDS]      (installs dnsperf, dnsmasq-base)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
for t in dnsperf:dnsperf dnsmasq:dnsmasq-base dig:bind9-dnsutils; do
  command -v "${t%%:*}" >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q "${t#*:}" >/dev/null; }
done
cargo build --release --quiet
W=$(mktemp -d)
UP=11264 KP=11263
trap 'kill ${UPID:-0} ${KPID:-0} 2>/dev/null || true; rm -rf "$W"' EXIT
dnsmasq -k -p $UP --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
  --address=/flood.kdns/192.0.2.1 --local-ttl=300 --cache-size=0 --user=root >/dev/null 2>&1 & UPID=$!
printf '.:%s {\n    bind 127.0.0.1\n    cache\n    forward . 127.0.0.1:%s\n}\n' $KP $UP > "$W/Corefile"
./target/release/kdns -conf "$W/Corefile" -quiet >/dev/null 2>&1 & KPID=$!
sleep 0.7
dig @127.0.0.1 -p $KP +short hot.flood.kdns >/dev/null
awk 'BEGIN {srand(); for (i = 0; i < 2000000; i++) printf "u%d-%d.flood.kdns A\n", i, int(rand()*1e9)}' > "$W/names"
dnsperf -s 127.0.0.1 -p $KP -d "$W/names" -l "$SECS" -c 8 -q 500 -t 2 > "$W/perf" 2>&1 &
PERF=$!
peak=0; cached_ok=0; cached_total=0
for _ in $(seq 1 "$SECS"); do
  sleep 1
  rss=$(awk '/VmRSS/ {print $2}' /proc/$KPID/status)
  [ "$rss" -gt "$peak" ] && peak=$rss
  flags=$(dig @127.0.0.1 -p $KP hot.flood.kdns +tries=1 +time=1 2>/dev/null | awk '/flags:/ {print}')
  cached_total=$((cached_total + 1))
  case "$flags" in *" aa"*) cached_ok=$((cached_ok + 1));; esac
  printf 't=%2ss RSS %6d KiB\n' "$cached_total" "$rss"
done
wait $PERF || true
awk '/Queries sent|Queries completed|Queries lost|Queries per second/' "$W/perf"
echo "peak RSS ${peak} KiB; cached name answered from cache ${cached_ok}/${cached_total} times during the flood"
