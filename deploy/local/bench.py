"""End-to-end benchmark on local stand-ins: events/s and peak RSS of the worker.

Starts moto (SQS, S3) and a bulk sink: a small HTTP server in this process that answers
like a cluster (GET /, index templates) and accepts every bulk item at once without
indexing (it counts the action lines and answers 201 for each). The search stand-in indexes
only about 1k documents/s, so the sink is what shows the worker's own throughput; run with
--osmem to also measure against osmem-server.

Scenarios (each a fresh queue, bucket and worker process):
  many  --objects N log objects of --events M events each (default 100 x 1000)
  large one log object of --large-mb MB uncompressed (default 100)

First an idle run (a worker on an empty queue, median of three) gives the CPU a worker costs
whatever it reads: start-up, one empty long poll, exit. For each scenario: events, wall time
from worker start to exit (it exits when the queue is idle; the final empty long poll of
--receive-wait 1s is included), events/s from worker start to the last bulk request the sink
saw, events/s over the ingest window (first to last bulk request), where the time went, the
worker's CPU time (user + system, from wait4) per 100k events, as measured and net of the idle
run's, and its peak RSS (VmHWM from /proc, sampled every 20 ms).

With --ecs, each scenario runs instead with the raw schema and with `--schema ecs` and
MaxMind's test City and ASN databases (from ../shared/geoip), alternately for --rounds rounds,
and prints the CPU per 100k events of both (net of the idle run, medians) and their ratio.

Usage: bench.py PATH_TO_WORKER_BINARY [--objects N] [--events M] [--large-mb X] [--osmem]
       [--ecs [--rounds R]]
"""

import argparse
import gzip
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import ROOT, log_records, run_worker, start, synthetic_log, worker_env  # noqa: E402


class Sink(BaseHTTPRequestHandler):
    """Accepts every bulk item; counts documents and bulk requests."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    documents = 0
    requests = 0
    first = None
    last = None

    def log_message(self, *args):
        pass

    def reply(self, body, status=200):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply('{"name":"sink","version":{"distribution":"opensearch","number":"2.11.0"},"tagline":"bulk sink"}')

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply('{"acknowledged":true}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        # Every document is two lines: the action and the source.
        items = body.count(b"\n") // 2
        now = time.monotonic()
        with Sink.lock:
            Sink.documents += items
            Sink.requests += 1
            Sink.first = Sink.first or now
            Sink.last = now
        self.reply('{"errors":false,"items":[' + ",".join(['{"create":{"status":201}}'] * items) + "]}")

    @classmethod
    def reset(cls):
        cls.documents, cls.requests, cls.first, cls.last = 0, 0, None, None


def run(binary, aws_url, cluster_url, objects, label, extra_env=None):
    """Uploads `objects` [(key, body)], announces them, runs the worker (with `extra_env`
    added to its environment), returns figures."""
    session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=aws_url)
    sqs = session.client("sqs", endpoint_url=aws_url)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "300", "RedrivePolicy": redrive})["QueueUrl"]
    for key, body in objects:
        s3.put_object(Bucket=name, Key=key, Body=body)
    for i in range(0, len(objects), 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(j), "MessageBody": json.dumps({"s3Bucket": name, "s3ObjectKey": [key]})}
            for j, (key, _) in enumerate(objects[i:i + 10])
        ])
    env = worker_env(aws_url, queue_url, cluster_url, name, "1s", "warn",
                     passthrough=("MALLOC_", "CLOUDTRAIL_INGEST_BULK", "CLOUDTRAIL_INGEST_MAX"))
    env.update(extra_env or {})
    Sink.reset()
    started, ended, peak_kib, cpu = run_worker(binary, env)
    left = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return dict(label=label, elapsed=ended - started, peak_mib=peak_kib / 1024, cpu=cpu, started=started, ended=ended,
                left=int(left["ApproximateNumberOfMessages"]) + int(left["ApproximateNumberOfMessagesNotVisible"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--large-mb", type=int, default=100)
    parser.add_argument("--osmem", action="store_true", help="also run against osmem-server (slow: about 1k docs/s)")
    parser.add_argument("--ecs", action="store_true",
                        help="also run each scenario with --schema ecs and MaxMind's test City and ASN databases, "
                             "alternating with the raw schema, and print the CPU ratio")
    parser.add_argument("--rounds", type=int, default=1, help="with --ecs: rounds of raw and ECS runs (medians)")
    args = parser.parse_args()

    aws_proc, aws_url = start([sys.executable, str(ROOT / "tests/standins/aws_standin.py")])
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    corpus = log_records()

    many = [(f"AWSLogs/123456789012/CloudTrail/us-east-1/2025/06/01/bench-{i}.json.gz",
             synthetic_log(corpus, events=args.events, seed=i)[0])
            for i in range(args.objects)]
    many_events = args.objects * args.events
    large_body, per_mb, raw = synthetic_log(corpus, megabytes=args.large_mb, seed=999)
    large = [("AWSLogs/123456789012/CloudTrail/us-east-1/2025/06/01/bench-large.json.gz", large_body)]
    print(f"corpus: {args.objects} objects x {args.events} events ({sum(len(b) for _, b in many) / 1e6:.1f} MB gzipped); "
          f"one large object of {per_mb} events ({raw / 1e6:.1f} MB uncompressed, {len(large_body) / 1e6:.1f} MB gzipped)")

    # What a worker costs whatever it reads: start-up (configuration, clients, templates), one
    # empty long poll and the exit. Subtracted to give the per-event cost.
    fixed = sorted(run(args.binary, aws_url, sink_url, [], "idle")["cpu"] for _ in range(3))[1]

    if args.ecs:
        geoip = ROOT.parent / "shared" / "geoip"
        ecs_env = {"CLOUDTRAIL_INGEST_SCHEMA": "ecs",
                   "CLOUDTRAIL_INGEST_GEOIP_DATABASE": f"{geoip}/GeoLite2-City-Test.mmdb,{geoip}/GeoLite2-ASN-Test.mmdb"}
        for label, objects, events in (("many objects", many, many_events), ("one large object", large, per_mb)):
            cpu = {"raw": [], "ecs": []}
            for _ in range(args.rounds):
                for schema, extra in (("raw", None), ("ecs", ecs_env)):
                    r = run(args.binary, aws_url, sink_url, objects, label, extra)
                    assert Sink.documents == events, f"{schema}: the sink saw {Sink.documents} of {events}"
                    cpu[schema].append(((r["cpu"] - fixed) * 100_000 / events, r["peak_mib"]))
            (raw, raw_rss), (ecs, ecs_rss) = (sorted(cpu[k])[len(cpu[k]) // 2] for k in ("raw", "ecs"))
            print(f"{label:18} CPU per 100k events net of the idle run: raw {raw:.2f} s, ECS + GeoIP + ASN {ecs:.2f} s "
                  f"= {ecs / raw:.2f}x (medians of {args.rounds}); peak RSS {raw_rss:.1f} / {ecs_rss:.1f} MiB")
        aws_proc.stdin.close()
        aws_proc.wait(timeout=10)
        return

    results = []
    for label, objects, events in (("many objects -> bulk sink", many, many_events), ("one large object -> bulk sink", large, per_mb)):
        r = run(args.binary, aws_url, sink_url, objects, label)
        r.update(events=events, indexed=Sink.documents, bulks=Sink.requests,
                 window=(Sink.last - Sink.first) if Sink.first else 0.0,
                 to_first=(Sink.first - r["started"]) if Sink.first else 0.0,
                 tail=(r["ended"] - Sink.last) if Sink.last else 0.0)
        results.append(r)
    if args.osmem:
        from osmem_server import resolve_binary
        search_proc, search_url = start([resolve_binary(), "-addr", "127.0.0.1:0"])
        small = many[:10]
        r = run(args.binary, aws_url, search_url, small, "10 objects -> osmem-server")
        r.update(events=10 * args.events, indexed=None, bulks=None, window=None, to_first=None, tail=None)
        results.append(r)
        search_proc.stdin.close()
        search_proc.wait(timeout=10)

    print()
    for r in results:
        line = f"{r['label']:32} {r['events']:>7} events in {r['elapsed']:6.2f} s = {r['events'] / r['elapsed']:>8.0f} events/s overall"
        if r["window"]:
            line += (f"; {r['indexed'] / (r['to_first'] + r['window']):>8.0f} events/s start->last bulk"
                     f"; {r['indexed'] / r['window']:>8.0f} events/s while ingesting ({r['bulks']} bulks); "
                     f"start->first bulk {r['to_first']:.2f} s, ingest {r['window']:.2f} s, last bulk->exit {r['tail']:.2f} s")
        line += (f"; CPU {r['cpu']:.2f} s ({r['cpu'] * 100_000 / r['events']:.2f} s per 100k events, "
                 f"{(r['cpu'] - fixed) * 100_000 / r['events']:.2f} s net of an idle run's {fixed:.2f} s)"
                 f"; peak RSS {r['peak_mib']:.1f} MiB; queue left {r['left']}")
        if r["indexed"] is not None and r["indexed"] != r["events"]:
            line += f"; SINK SAW {r['indexed']} DOCUMENTS"
        print(line)
    aws_proc.stdin.close()
    aws_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
