"""Benchmark of the webhook source on 127.0.0.1: entries/s, response times and CPU.

Starts the bulk sink of bench.py (answers every item 201 without indexing; --osmem indexes into
osmem-server instead), runs `cloudtrail-ingest webhook` on a free port, and has --senders N
threads POST --batches M gzip batches of --entries K Konnect JSON entries each (as Konnect
sends them: text/plain, Content-Encoding application/gzip, one entry per line), every batch
distinct. A 503 is retried after 100 ms, as a sender would.

CLOUDTRAIL_INGEST_BULK_* variables are passed to the worker (e.g. CLOUDTRAIL_INGEST_BULK_LINGER).
Prints entries/s from the first request to the last answer, the response times of the 200s
(median, p99, max), the 503s seen, the worker's CPU time per 100k entries (user + system, from
wait4 after SIGTERM) and its peak RSS.

Usage: webhook.py PATH_TO_WORKER_BINARY [--senders N] [--batches M] [--entries K] [--osmem]
"""

import argparse
import gzip
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Sink  # noqa: E402
from demo import start, vm_hwm_kib  # noqa: E402

AUTH = "Bearer bench-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def batch(sender, number, entries):
    lines = []
    for i in range(entries):
        lines.append(json.dumps({
            "act": "GET", "cef_version": 0, "event_class_id": "KongGateway", "event_product": "Konnect",
            "event_ts": "2026-03-10T14:05:14Z", "event_vendor": "KongInc", "event_version": "1.0",
            "name": "Ingress", "org_id": "5d1e8c3a-7b24-4f90-a6e2-0c9b71d4e8f3",
            "principal_id": "2f6a9b41-c803-4e7d-9a15-6b0e3d72c4a8",
            "request": f"/v2/control-planes/{sender}/{number}/{i}", "rt": 1773151514107 + i, "severity": 1,
            "src": "203.0.113.47", "status": 200, "trace_id": 7093348152250862441 - i,
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:135.0) Gecko/20100101 Firefox/135.0",
        }, separators=(",", ":")))
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--osmem", action="store_true")
    args = parser.parse_args()
    if args.osmem:
        from osmem_server import resolve_binary

        search_proc, cluster_url = start([resolve_binary(), "-addr", "127.0.0.1:0"])
    else:
        search_proc = None
        server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        cluster_url = f"http://127.0.0.1:{server.server_address[1]}"
    port = free_port()
    env = dict(PATH=os.environ.get("PATH", ""), RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    env.update({k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "CLOUDTRAIL_INGEST_BULK"))})
    command = [args.binary, "webhook", "--listen", f"127.0.0.1:{port}", "--webhook-authorization", AUTH,
               "--elasticsearch-url", cluster_url, "--index-prefix", "hook-bench", "--webhook-max-in-flight", "64"]
    pid = os.posix_spawn(args.binary, command, env)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    bodies = [[batch(s, b, args.entries) for b in range(args.batches)] for s in range(args.senders)]
    times, retries, lock = [], [0], threading.Lock()

    def send(mine):
        for body in mine:
            while True:
                request = urllib.request.Request(url, data=body, method="POST", headers={
                    "Authorization": AUTH, "Content-Type": "text/plain", "Content-Encoding": "application/gzip"})
                began = time.monotonic()
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        response.read()
                    with lock:
                        times.append(time.monotonic() - began)
                    break
                except urllib.error.HTTPError as err:
                    if err.code != 503:
                        raise
                    with lock:
                        retries[0] += 1
                    time.sleep(0.1)

    Sink.reset()
    peak = [0]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], vm_hwm_kib(pid))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    began = time.monotonic()
    threads = [threading.Thread(target=send, args=(mine,)) for mine in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    os.kill(pid, signal.SIGTERM)
    _, status, usage = os.wait4(pid, 0)
    sampling.set()
    total = args.senders * args.batches * args.entries
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000  # noqa: E731
    cpu = usage.ru_utime + usage.ru_stime
    if not args.osmem and Sink.documents != total:
        raise SystemExit(f"the sink saw {Sink.documents} documents, not {total}")
    print(f"{total} entries in {args.senders * args.batches} batches of {args.entries} from {args.senders} senders: "
          f"{total / elapsed:,.0f} entries/s ({elapsed:.2f} s)")
    print(f"response time of the 200s: median {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {times[-1] * 1000:.1f} ms; "
          f"503s retried: {retries[0]}")
    print(f"worker: CPU {cpu:.2f} s ({cpu / total * 100_000:.2f} s per 100k entries), peak RSS {peak[0] / 1024:.1f} MiB, "
          f"exit {os.waitstatus_to_exitcode(status)}")
    if search_proc:
        search_proc.stdin.close()
        search_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
