#!/usr/bin/env bash
# End-to-end benchmark of cloudtrail-ingest on local stand-ins (moto + a bulk sink that
# accepts every item without indexing; --osmem adds osmem-server). See deploy/local/bench.py.
# With --kafka: the Kafka source from the local tansu broker instead (deploy/local/kafka.py);
# with --webhook: the webhook source with concurrent senders (deploy/local/webhook.py);
# with --backfill: backfills of CloudTrail buckets, throughput and listing cost
# (deploy/local/backfill.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/setup.sh
cargo build --release --locked --quiet
binary="${CARGO_TARGET_DIR:-target}/release/cloudtrail-ingest"
if [ "${1:-}" = "--kafka" ]; then
    shift
    exec .venv/bin/python deploy/local/kafka.py "$binary" bench "$@"
fi
if [ "${1:-}" = "--webhook" ]; then
    shift
    exec .venv/bin/python deploy/local/webhook.py "$binary" "$@"
fi
if [ "${1:-}" = "--backfill" ]; then
    shift
    exec .venv/bin/python deploy/local/backfill.py "$binary" "$@"
fi
exec .venv/bin/python deploy/local/bench.py "$binary" "$@"
