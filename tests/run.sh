#!/usr/bin/env bash
# The whole test suite: installs the stand-ins and the deploy/ linters, then runs unit and
# integration tests.
# Integration tests start their own moto and osmem-server on 127.0.0.1 with random ports.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
tests/setup-deploy.sh
cargo test --locked --all-targets "$@"
