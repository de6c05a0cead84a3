#!/usr/bin/env bash
# Runs cloudtrail-ingest end to end on local stand-ins (moto for SQS/SNS/S3, osmem-server for
# the search cluster), all on 127.0.0.1 with random ports. See deploy/local/demo.py.
# With --kafka: the Kafka source instead, on the local tansu broker (deploy/local/kafka.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/setup.sh
cargo build --release --locked --quiet
binary="${CARGO_TARGET_DIR:-target}/release/cloudtrail-ingest"
if [ "${1:-}" = "--kafka" ]; then
    shift
    exec .venv/bin/python deploy/local/kafka.py "$binary" demo "$@"
fi
exec .venv/bin/python deploy/local/demo.py "$binary" "$@"
