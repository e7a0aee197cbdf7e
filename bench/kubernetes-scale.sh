#!/usr/bin/env bash
# Cluster DNS at scale (issue 19): for each cluster size, kdns against the in-repo fake API
# server prints
#   1. time from start to /ready 200, RSS after sync, bytes per endpoint above the idle process;
#   2. QPS on cluster names (dnsperf), and the fake API server's own load time and CPU;
#   3. a forced relist of every kind (history compacted, every watch cut): the answers during it
#      (rcodes of a dnsperf run of existing names) and peak RSS during it against steady state.
# Sizes: 10,000 services / 100,000 endpoints, then the 5,000-node cluster (50,000 services /
# 500,000 endpoints / 150,000 pods, `pods verified`). Bounded: one sync, SECONDS of load and a
# 6 s relist window per size. Numbers, not asserts; not part of the test suite.
# Usage: bench/kubernetes-scale.sh [SECONDS] [--small-only]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-5}
. bench/lib.sh
need dnsperf dnsperf
APORT=16490 DPORT=11190 RPORT=18190 MPORT=19190
kube_setup
cpu_of() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }

# The idle process: the same server blocks without the kubernetes plugin.
cat > "$work/idle" <<CF
.:$DPORT {
    bind 127.0.0.1
    ready 127.0.0.1:$RPORT
    prometheus 127.0.0.1:$MPORT
}
CF
./target/release/kdns -conf "$work/idle" -quiet > /dev/null 2>&1 & ipid=$!
sleep 1.5
IDLE=$(rss_of $ipid)
kill $ipid; wait $ipid 2>/dev/null || true
echo "idle kdns: RSS $IDLE MiB"

run() {
  local services=$1 endpoints=$2 pods=$3 podmode=$4
  echo
  echo "== $services services, $endpoints endpoints, $pods pods (pods $podmode)"
  start_fakeapi --services "$services" --endpoints "$endpoints" --pods "$pods" --namespaces 100
  local api_cpu0; api_cpu0=$(cpu_of $apid)
  echo "fake API server: $(sed 's/.* loaded in/loaded in/' "$work/api.log"), RSS $(rss_of $apid) MiB"
  kube_corefile "        pods $podmode
        startup_timeout 120s
"
  start_kdns
  sleep 1
  local rss; rss=$(rss_of $kpid)
  local api_cpu1; api_cpu1=$(cpu_of $apid)
  echo "1. ready after $ready_after s; RSS $rss MiB after sync; $(echo "($rss - $IDLE) * 1048576 / $endpoints" | bc) bytes per endpoint above idle"
  echo "   fake API server CPU for the sync: $(echo "$api_cpu1 - $api_cpu0" | bc) s"
  for i in $(seq 0 $((services - 1)) | shuf -n 20000 --random-source=<(yes)); do
    echo "svc-$i.ns-$((i % 100)).svc.cluster.local A"
  done > "$work/queries"
  dnsperf -s 127.0.0.1 -p $DPORT -d "$work/queries" -l "$SECONDS_PER_RUN" -c 8 -q 200 > "$work/perf.log" 2>&1 || true
  echo "2. dnsperf cluster names: $(awk '/Queries per second/ {print $4}' "$work/perf.log") qps, lost $(awk '/Queries lost/ {print $3}' "$work/perf.log"); RSS $(rss_of $kpid) MiB after load"
  local steady; steady=$(rss_of $kpid)
  # 3. Relist of every kind while dnsperf asks for existing names.
  dnsperf -s 127.0.0.1 -p $DPORT -d "$work/queries" -l 6 -c 4 -Q 2000 > "$work/relist.log" 2>&1 & dpid=$!
  sleep 0.5
  curl -sf -X POST "127.0.0.1:$APORT/fake/relist" > /dev/null
  local peak=0 r
  for _ in $(seq 1 250); do
    r=$(awk '/VmRSS/ {print $2}' "/proc/$kpid/status"); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.02
  done
  wait $dpid || true
  local relists; relists=$(curl -s "127.0.0.1:$MPORT/metrics" | awk '/^kdns_kubernetes_relists_total/ {s+=$2} END {print s+0}')
  echo "3. relist of every kind: $relists relists; answers during it: $(awk '/Response codes/ {$1=$2=""; print}' "$work/relist.log" | xargs)"
  echo "   peak RSS during the relist $(echo "scale=1; $peak / 1024" | bc) MiB = $(echo "scale=2; $peak / 1024 / $steady" | bc) x steady ($steady MiB)"
  kill $kpid $apid; wait $kpid $apid 2>/dev/null || true
}

run 10000 100000 0 insecure
if [ "${2:-}" != "--small-only" ]; then
  run 50000 500000 150000 verified
fi
