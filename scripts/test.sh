#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and end-to-end tests.
# Idempotent; installs what it needs (cargo-nextest if missing). Works without root.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it (once)"
  cargo install --locked cargo-nextest >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast "$@"
