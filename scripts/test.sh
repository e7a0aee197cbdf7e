#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and end-to-end tests.
# Idempotent; installs what it needs (cargo-nextest if missing; as root, the Debian packages the
# node-cache namespace tests use). Works without root: those tests then say they did not run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  need=()
  command -v ip >/dev/null || need+=(iproute2)
  command -v iptables-nft-restore >/dev/null || need+=(iptables)
  command -v nft >/dev/null || need+=(nftables)
  command -v dnsperf >/dev/null || need+=(dnsperf)
  command -v chromium >/dev/null || need+=(chromium)
  command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || need+=(etcd-server)
  command -v umoci >/dev/null || need+=(umoci)
  command -v strip >/dev/null || need+=(binutils)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} for the namespace, browser and etcd tests"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # As root the namespace, browser, etcd and image tests must run, never quietly skip.
  export KDNS_REQUIRE_NETNS=1 KDNS_REQUIRE_CHROMIUM=1 KDNS_REQUIRE_ETCD=1 KDNS_REQUIRE_IMAGE=1
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it (once)"
  cargo install --locked cargo-nextest >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if [ "$(id -u)" = 0 ]; then
  # The runtime image (scripts/image.sh; reused while its inputs are unchanged) around the
  # binary the tests build, for crates/kdns/tests/image.rs. The release image is
  # `cargo build --release -p kdns && scripts/image.sh`.
  cargo build --locked -p kdns
  KDNS_IMAGE=$(./scripts/image.sh target/debug/kdns)
  export KDNS_IMAGE
fi
cargo nextest run --workspace --locked --no-fail-fast "$@"
# deploy/: manifests and Helm chart against Kubernetes' schemas, their Corefiles through
# `kdns check`, the image layout, the dashboard's metric names.
./scripts/validate-deploy.sh
# Bounded fuzzing of every target from the committed seeds (20 s each; long runs:
# `scripts/fuzz.sh 600`).
./scripts/fuzz.sh "${KDNS_FUZZ_SECONDS:-20}"
