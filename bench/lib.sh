# Sourced by the bench scripts.
# need CMD PACKAGE: installs the Debian PACKAGE when CMD is missing (apt-get update once per run).
need() {
  command -v "$1" >/dev/null 2>&1 && return
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -q >/dev/null; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}

# The kubernetes benches (kubernetes.sh, kubernetes-scale.sh) share what follows. They set
# APORT (fake API), DPORT (DNS), RPORT (ready) and MPORT (metrics) first.

# kube_setup: release builds of kdns and the fake API server, a work directory ($work) removed
# on exit, and every process the script started stopped on exit.
kube_setup() {
  cargo build --release --quiet -p kdns -p kdns-fakeapi
  work=$(mktemp -d)
  trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
}

# start_fakeapi ARGS...: kdns-fakeapi on $APORT with ARGS, logging to $work/api.log; returns
# once it serves, its pid in $apid.
start_fakeapi() {
  ./target/release/kdns-fakeapi --listen 127.0.0.1:$APORT "$@" > "$work/api.log" 2>&1 & apid=$!
  until grep -q "fake API server on" "$work/api.log"; do sleep 0.1; done
}

# kube_corefile EXTRA: $work/Corefile serving cluster.local and in-addr.arpa from the fake API,
# with EXTRA (whole lines) added to the kubernetes block.
kube_corefile() {
  cat > "$work/Corefile" <<CF
.:$DPORT {
    bind 127.0.0.1
    ready 127.0.0.1:$RPORT
    prometheus 127.0.0.1:$MPORT
    kubernetes cluster.local in-addr.arpa {
        endpoint http://127.0.0.1:$APORT
$1        ttl 30
    }
}
CF
}

# start_kdns: kdns on $work/Corefile, its pid in $kpid; returns once /ready says 200, the
# seconds it took in $ready_after.
start_kdns() {
  local s0 s1
  s0=$(date +%s.%N)
  ./target/release/kdns -conf "$work/Corefile" -quiet > "$work/kdns.log" 2>&1 & kpid=$!
  until curl -sf "127.0.0.1:$RPORT/ready" >/dev/null 2>&1; do sleep 0.02; done
  s1=$(date +%s.%N)
  ready_after=$(echo "$s1 - $s0" | bc)
}

# rss_of PID: resident memory in MiB.
rss_of() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
