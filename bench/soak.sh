#!/usr/bin/env bash
# Soak: kdns (cache + forward + reload + prometheus) under steady dnsperf load (a hot set and a
# stream of unique names) while faults come every 20 s in turn: a good Corefile edit with SIGUSR1,
# a broken Corefile (must keep serving, counted), the upstream killed and restarted, a burst of
# TCP connections. Prints lost queries, SERVFAILs, failed reloads and RSS over time.
# Bounded: SECONDS of load (default 180; e.g. `bench/soak.sh 3600` for an hour).
# Usage: bench/soak.sh [SECONDS]        (installs dnsperf; builds the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-180}
command -v dnsperf >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q dnsperf >/dev/null; }
cargo build --release --quiet -p kdns
BIN=$PWD/target/release/kdns
W=$(mktemp -d)
UP=12353 KP=12354 MP=12355
trap 'kill ${UPID:-0} ${KPID:-0} ${PERF:-0} 2>/dev/null || true; rm -rf "$W"' EXIT
start_upstream() {
  printf '.:%s {\n    bind 127.0.0.1\n    whoami\n}\n' $UP > "$W/up"
  "$BIN" -conf "$W/up" -quiet >/dev/null 2>&1 & UPID=$!
}
corefile() {
  printf '.:%s {\n    bind 127.0.0.1\n    errors\n    cache %s\n    forward . 127.0.0.1:%s\n    prometheus 127.0.0.1:%s\n    reload 2s\n}\n' $KP "$1" $UP $MP > "$W/Corefile.new"
  mv "$W/Corefile.new" "$W/Corefile"
}
start_upstream
corefile 30
"$BIN" -conf "$W/Corefile" -quiet > "$W/log" 2>&1 & KPID=$!
sleep 1
awk 'BEGIN {srand(); for (i = 0; i < 1000000; i++) { if (i % 2) printf "hot%d.soak.example. A\n", i % 500; else printf "u%d-%d.soak.example. A\n", i, int(rand()*1e9) } }' > "$W/names"
dnsperf -s 127.0.0.1 -p $KP -d "$W/names" -l "$SECS" -c 8 -Q 5000 -t 2 > "$W/perf" 2>&1 & PERF=$!
metric() { curl -s "127.0.0.1:$MP/metrics" | awk -v m="$1" '$1 ~ "^"m {s += $2} END {print s + 0}'; }
t=0; fault=0; peak=0; low=999999999
printf '%6s %10s %10s %8s  %s\n' t RSS_KiB SERVFAIL reloadsX fault
while kill -0 $PERF 2>/dev/null; do
  sleep 5; t=$((t + 5))
  rss=$(awk '/VmRSS/ {print $2}' /proc/$KPID/status)
  [ "$rss" -gt "$peak" ] && peak=$rss; [ "$rss" -lt "$low" ] && low=$rss
  what=""
  if [ $((t % 20)) -eq 0 ]; then
    case $((fault % 4)) in
      0) corefile $((20 + fault)); kill -USR1 $KPID; what="good edit + SIGUSR1" ;;
      1) printf '.:%s {\n    cache {\n' $KP > "$W/Corefile"; what="broken Corefile" ;;
      2) corefile 30; kill $UPID; sleep 1; start_upstream; what="upstream restarted" ;;
      3) for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$KP) 2>/dev/null & done; wait 2>/dev/null || true; what="200 TCP connections" ;;
    esac
    fault=$((fault + 1))
  fi
  printf '%6s %10s %10s %8s  %s\n' "$t" "$rss" "$(metric 'coredns_dns_responses_total{.*rcode="SERVFAIL"')" "$(metric coredns_reload_failed_total)" "$what"
done
wait $PERF || true
corefile 30
awk '/Queries sent|Queries completed|Queries lost|Queries per second/' "$W/perf"
kill -0 $KPID && echo "kdns alive after $fault faults; RSS ${low}..${peak} KiB; failed reloads counted: $(metric coredns_reload_failed_total)"
