#!/usr/bin/env bash
# Builds the kdns image with podman or docker: deploy/image/build.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-kdns:dev}
engine=$(command -v podman || command -v docker || true)
if [ -z "$engine" ]; then
  echo "no container engine (podman or docker) found; the test suite checks the image layout instead" >&2
  exit 1
fi
exec "$engine" build -f deploy/image/Containerfile -t "$tag" .
