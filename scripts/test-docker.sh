#!/usr/bin/env bash
# npm run test:docker: the image and the compose example run for real (test/docker/*.test.ts). Not part of
# `npm test`: it needs a Docker daemon, and it builds an image. Without a reachable daemon it skips in one line.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker >/dev/null 2>&1; then
  echo "test:docker: skipped: no docker command (install Docker to run it)"
  exit 0
fi
if ! docker info >/dev/null 2>&1; then
  echo "test:docker: skipped: no Docker daemon reachable (docker info failed)"
  exit 0
fi
bash scripts/ensure-test-deps.sh
npm run build
exec node --import tsx --test --test-concurrency=1 --test-timeout=1200000 test/docker/*.test.ts
