#!/usr/bin/env bash
# Scale benchmark of the kubernetes plugin against the in-repo fake API server: a generated
# cluster (default 10,000 services, 100,000 endpoints), then time to /ready, kdns RSS after sync,
# dnsperf QPS for cluster names (A for ClusterIP and headless services, SRV, NXDOMAIN), and DNS
# programming latency of EndpointSlice changes (one every 200 ms) from kdns's own histogram.
# Bounded: one sync plus SECONDS of load. Numbers, not asserts; not part of the test suite.
# Usage: bench/kubernetes.sh [SERVICES] [ENDPOINTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES=${1:-10000}
ENDPOINTS=${2:-100000}
SECONDS_PER_RUN=${3:-10}
. bench/lib.sh
need dnsperf dnsperf
APORT=16480 DPORT=11180 RPORT=18180 MPORT=19180
kube_setup

t0=$(date +%s.%N)
start_fakeapi --services "$SERVICES" --endpoints "$ENDPOINTS" --namespaces 100 --churn-every-ms 200
t1=$(date +%s.%N)
echo "fake API server: $(cat "$work/api.log") — generated in $(echo "$t1 - $t0" | bc) s"

kube_corefile "        startup_timeout 60s
"
start_kdns
rss() { rss_of $kpid; }
echo "kdns: ready after $ready_after s, RSS $(rss) MiB after sync"

# Query mix: ClusterIP A (9 of 10 services), headless A (every 10th), SRV, and NXDOMAIN.
for i in $(seq 0 $((SERVICES - 1))); do
  echo "svc-$i.ns-$((i % 100)).svc.cluster.local A"
  if [ $((i % 4)) -eq 0 ]; then echo "_http._tcp.svc-$i.ns-$((i % 100)).svc.cluster.local SRV"; fi
  if [ $((i % 5)) -eq 0 ]; then echo "nope-$i.ns-$((i % 100)).svc.cluster.local A"; fi
done | shuf --random-source=<(yes) > "$work/queries"
dnsperf -s 127.0.0.1 -p $DPORT -d "$work/queries" -l "$SECONDS_PER_RUN" -c 8 -q 200 > "$work/perf.log" 2>&1 || true
qps=$(awk '/Queries per second/ {print $4}' "$work/perf.log")
lost=$(awk '/Queries lost/ {print $3}' "$work/perf.log")
lat=$(awk '/Average Latency/ {print $4}' "$work/perf.log")
echo "dnsperf: ${qps} qps, lost ${lost}, average latency ${lat} s; RSS $(rss) MiB after load"
curl -s "127.0.0.1:$MPORT/metrics" > "$work/metrics"
awk '/^coredns_kubernetes_dns_programming_duration_seconds_(sum|count)/ {v[$1]=$2}
     /^coredns_kubernetes_dns_programming_duration_seconds_bucket/ {print}
     END {for (k in v) if (k ~ /count/) c=v[k]; else s=v[k]; if (c>0) printf "programming latency: %d changes, mean %.3f ms\n", c, 1000*s/c}' \
  "$work/metrics" | awk '/^programming/ {print} /bucket/ && !/le="\+Inf"/ {split($0,a,"le=\""); split(a[2],b,"\""); n=$NF; if (!done && n>0) {first=b[1]; done=1}} END {if (first) print "programming latency: first non-empty bucket le=" first " s"}'
kill $kpid; wait $kpid 2>/dev/null || true
