#!/usr/bin/env bash
# The whole test suite: installs the stand-ins and the deploy/ linters, then runs unit and
# integration tests.
# Integration tests start their own moto and osmem-server on 127.0.0.1 with random ports.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
tests/setup-deploy.sh
# No incremental cache: a whole-suite run mostly builds from scratch, and the cache would take
# 0.8 GB more of the disk.
CARGO_INCREMENTAL=0 cargo test --locked --all-targets "$@"
