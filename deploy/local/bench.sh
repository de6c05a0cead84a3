#!/usr/bin/env bash
# End-to-end benchmark of cloudtrail-ingest on local stand-ins (moto + a bulk sink that
# accepts every item without indexing; --osmem adds osmem-server). See deploy/local/bench.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/setup.sh
cargo build --release --locked --quiet
exec .venv/bin/python deploy/local/bench.py "${CARGO_TARGET_DIR:-target}/release/cloudtrail-ingest" "$@"
