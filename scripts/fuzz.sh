#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target (fuzz/fuzz_targets): SECONDS each (default 20; the
# test command runs this with its default, a long run is e.g. `scripts/fuzz.sh 600`). Each
# target starts from the committed seeds (fuzz/seeds/<target>, real packets, Corefiles and
# Kubernetes objects; regenerate with fuzz/make-seeds.py) plus the local corpus. A crash, or an
# input that runs over 10 s (libFuzzer's own default is 20 minutes, past the time bound), fails
# the run; its input is in fuzz/artifacts/<target>/ and becomes a regression test.
# Installs cargo-fuzz once; builds on the stable toolchain with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${1:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (once)"
  cargo install --locked cargo-fuzz >/dev/null 2>&1
fi
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build -O >/dev/null 2>&1 || cargo fuzz build -O
total=0
for t in $targets; do
  mkdir -p "corpus/$t" "seeds/$t"
  out=$(cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$SECS" -timeout=10 -print_final_stats=1 2>&1) || {
    echo "$out" | tail -40
    echo "fuzz: $t crashed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  }
  runs=$(echo "$out" | awk '/stat::number_of_executed_units/ {print $2}' | tail -1)
  total=$((total + ${runs:-0}))
  printf 'fuzz: %-16s %10s executions in %ss, no crash\n' "$t" "${runs:-?}" "$SECS"
done
echo "fuzz: $(echo $targets | wc -w) targets, $total executions"
