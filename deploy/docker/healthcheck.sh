#!/bin/bash
# Container health check: GET /healthz on the worker's metrics listener, exit 0 on HTTP 200.
#
# The listener is off unless CLOUDTRAIL_INGEST_METRICS_LISTEN is set; without it there is nothing
# to ask and the check passes, so the image works with metrics on or off. Plain bash (/dev/tcp),
# so the image needs no HTTP client.
set -euo pipefail

listen=${CLOUDTRAIL_INGEST_METRICS_LISTEN:-}
[ -n "$listen" ] || exit 0

port=${listen##*:}
host=${listen%:*}
host=${host#[}
host=${host%]}
# A wildcard listener is reached through loopback.
case "$host" in
    "" | 0.0.0.0 | ::) host=127.0.0.1 ;;
esac

exec 3<>"/dev/tcp/$host/$port"
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
status=""
read -r status <&3 || true
status=${status%$'\r'}
case "$status" in
    "HTTP/1."?" 200"*) exit 0 ;;
esac
echo "GET http://$host:$port/healthz: ${status:-no response}" >&2
exit 1
