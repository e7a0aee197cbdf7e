#!/usr/bin/env bash
# kdns vs Unbound as the same caching forwarder in front of the same local upstream (dnsmasq
# answering *.bench.kdns (not .test: Unbound serves RFC 6761 names itself) from memory), measured with dnsperf on loopback in one run.
#   hot : 1,000 names, warmed up first, so every query is a cache hit
#   miss: never-seen names, so every query goes upstream
# Prints QPS, average latency, lost queries and peak RSS per peer, and kdns/Unbound ratios.
# Bounded: ROUNDS x 2 workloads x 2 peers runs of SECONDS each.
# Usage: bench/forward.sh [ROUNDS] [SECONDS]      (installs dnsperf, dnsmasq-base, unbound)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
APT_UPDATED=""
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  [ -n "$APT_UPDATED" ] || { apt-get update -q >/dev/null; APT_UPDATED=1; }
  apt-get install -y -q "$2" >/dev/null
}
need dnsperf dnsperf
need dnsmasq dnsmasq-base
need unbound unbound
cargo build --release --quiet
W=$(mktemp -d)
UP=11254 KP=11253 BP=11252
cleanup() { pkill -f "$W" 2>/dev/null || true; kill "${UPID:-0}" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

dnsmasq -k -p $UP --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
  --address=/bench.kdns/192.0.2.1 --local-ttl=300 --cache-size=0 --user=root --pid-file="$W/dnsmasq.pid" >/dev/null 2>&1 & UPID=$!

printf '.:%s {\n    bind 127.0.0.1\n    cache 3600\n    forward . 127.0.0.1:%s\n}\n' $KP $UP > "$W/Corefile"
cat > "$W/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $BP
  do-daemonize: no
  num-threads: 2
  so-reuseport: yes
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  chroot: ""
  username: ""
  directory: "$W"
  pidfile: ""
  use-syslog: no
  logfile: ""
  module-config: "iterator"
  qname-minimisation: no
  msg-cache-size: 64m
  rrset-cache-size: 128m
  verbosity: 0
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$UP
CONF

sleep 0.3
kill -0 $UPID 2>/dev/null || { echo "upstream dnsmasq did not start (port $UP busy?)" >&2; exit 1; }
dig_ok=$(dnsperf -s 127.0.0.1 -p $UP -d <(echo "check.bench.kdns A") -n 1 2>&1 | awk '/NOERROR/ {print "ok"}')
[ "$dig_ok" = ok ] || { echo "upstream does not answer NOERROR for bench.kdns" >&2; exit 1; }

for i in $(seq 1 1000); do echo "hot$i.bench.kdns A"; done > "$W/hot"

start_peer() {
  case $1 in
    kdns) ./target/release/kdns -conf "$W/Corefile" -quiet >/dev/null 2>&1 & ;;
    unbound) unbound -c "$W/unbound.conf" >/dev/null 2>&1 & ;;
  esac
  PID=$!
  sleep 0.7
}
port_of() { [ "$1" = kdns ] && echo $KP || echo $BP; }
perf() { # port file seconds -> "qps avg_ms lost"
  dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$3" -c 8 -q 200 -t 2 2>&1 | awk '
    /Queries lost/ {lost=$3} /Queries per second/ {qps=$4} /Average Latency/ {lat=$4*1000}
    END {printf "%d %.3f %s", qps, lat, lost}'
}

declare -A Q
for r in $(seq 1 "$ROUNDS"); do
  for peer in kdns unbound; do
    for load in hot miss; do
      start_peer $peer
      port=$(port_of $peer)
      if [ $load = hot ]; then
        dnsperf -s 127.0.0.1 -p "$port" -d "$W/hot" -n 1 -c 4 >/dev/null 2>&1  # warm-up
        file="$W/hot"
      else
        file="$W/miss-$peer-$r"
        awk -v p="$peer$r" 'BEGIN {for (i = 0; i < 600000; i++) printf "m%d-%s.bench.kdns A\n", i, p}' > "$file"
      fi
      read -r qps lat lost <<<"$(perf "$port" "$file" "$SECS")"
      rss=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
      kill $PID; wait $PID 2>/dev/null || true
      printf 'round %d %-7s %-4s %8d qps  avg %6.3f ms  lost %s  peak RSS %6d KiB\n' "$r" "$peer" "$load" "$qps" "$lat" "$lost" "$rss"
      Q[$peer-$load]+="$qps "
      Q[$peer-$load-rss]+="$rss "
    done
  done
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "--- medians of $ROUNDS rounds (dnsperf -c 8 -q 200, $SECS s, both peers on the same 2 cores as dnsperf)"
for load in hot miss; do
  k=$(median "${Q[kdns-$load]}"); u=$(median "${Q[unbound-$load]}")
  kr=$(median "${Q[kdns-$load-rss]}"); ur=$(median "${Q[unbound-$load-rss]}")
  printf '%-4s kdns %8d qps  unbound %8d qps  ratio %.2f   RSS kdns %d KiB unbound %d KiB (ratio %.2f)\n' \
    "$load" "$k" "$u" "$(awk -v a="$k" -v b="$u" 'BEGIN {print a/b}')" "$kr" "$ur" "$(awk -v a="$kr" -v b="$ur" 'BEGIN {print a/b}')"
done
