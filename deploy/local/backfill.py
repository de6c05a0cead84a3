"""Backfill benchmark on local stand-ins: objects/s, events/s, peak RSS, and listing cost.

Starts moto (S3) and the bulk sink of bench.py (answers every item 201 without indexing), fills
buckets with CloudTrail logs in the real key layout (`AWSLogs/<account>/CloudTrail/<region>/
YYYY/MM/DD/...json.gz`, one account behind an organization trail), and runs
`cloudtrail-ingest backfill`:

  throughput  one bucket of --accounts x --regions x --days x --per-day objects of --events
              events each, backfilled whole: objects/s and events/s from worker start to exit,
              the worker's CPU time and peak RSS (VmHWM, sampled every 20 ms), list requests.
  listing     buckets holding 4, 16 and 64 days of small logs, each backfilled for 2 days with
              --since/--until: list requests and objects listed per object ingested, to show
              that the cost follows the days asked for, not the size of the bucket.

Usage: backfill.py PATH_TO_WORKER_BINARY [--accounts N] [--regions N] [--days N] [--per-day N]
       [--events N] [--concurrency N]
"""

import argparse
import datetime
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Sink  # noqa: E402
from demo import ROOT, log_records, start, synthetic_log, vm_hwm_kib  # noqa: E402

REGIONS = ["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2", "sa-east-1", "ca-central-1"]
FIRST_DAY = datetime.date(2025, 5, 1)


def fill(s3, bucket, accounts, regions, days, per_day, body_of):
    """Uploads the CloudTrail layout; returns the number of objects."""
    keys = []
    for a in range(accounts):
        account = f"{111111111111 * (a + 1):012d}"
        base = f"AWSLogs/o-bench12345/{account}/" if a % 2 else f"AWSLogs/{account}/"
        for region in REGIONS[:regions]:
            for d in range(days):
                day = FIRST_DAY + datetime.timedelta(days=d)
                for n in range(per_day):
                    keys.append(f"{base}CloudTrail/{region}/{day:%Y/%m/%d}/{account}_CloudTrail_{region}_{day:%Y%m%d}T{n:02d}00Z_{uuid.uuid4().hex[:16]}.json.gz")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body_of(k)), keys))
    return len(keys)


def run(binary, aws_url, sink_url, bucket, extra):
    """Runs one backfill to its exit; returns wall time, CPU, peak RSS and the final counters."""
    env = dict(PATH=os.environ.get("PATH", ""), RUST_LOG="info", AWS_ENDPOINT_URL=aws_url,
               AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    command = [binary, "backfill", "--bucket", bucket, "--elasticsearch-url", sink_url,
               "--index-prefix", "bench", "--s3-force-path-style", "--log-format", "json", *extra]
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = []
    reader = threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True)
    reader.start()
    peak_kib = 0
    while True:
        done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        peak_kib = max(peak_kib, vm_hwm_kib(proc.pid))
        time.sleep(0.02)
    ended = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=5)
    if proc.returncode != 0:
        sys.stderr.write("".join(log[-20:]))
        raise SystemExit(f"backfill exited with {proc.returncode}")
    counters = {}
    for line in log:
        if "worker stopped" in line or "backfill stopped" in line:
            counters = {k: int(v) for k, v in re.findall(r"(\w+): (\d+)", line)}
    return dict(elapsed=ended - started, cpu=usage.ru_utime + usage.ru_stime, peak_mib=peak_kib / 1024, **counters)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--accounts", type=int, default=2)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--per-day", type=int, default=4)
    parser.add_argument("--events", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    aws_proc, aws_url = start([sys.executable, str(ROOT / "tests/standins/aws_standin.py")])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{server.server_address[1]}"
    session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=aws_url)
    corpus = log_records()

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    t0 = time.monotonic()
    bodies = [synthetic_log(corpus, events=args.events, seed=i)[0] for i in range(16)]
    counter = iter(range(1 << 30))
    lock = threading.Lock()

    def body_of(_key):
        with lock:
            return bodies[next(counter) % len(bodies)]

    objects = fill(s3, bucket, args.accounts, args.regions, args.days, args.per_day, body_of)
    events = objects * args.events
    size = sum(len(b) for b in bodies) / len(bodies)
    print(f"throughput bucket: {objects} objects ({args.accounts} accounts x {args.regions} regions x {args.days} days x {args.per_day}), "
          f"{args.events} events and {size / 1024:.0f} KiB gzipped each, uploaded in {time.monotonic() - t0:.1f} s")
    Sink.reset()
    r = run(args.binary, aws_url, sink_url, bucket, ["--concurrency", str(args.concurrency)])
    if Sink.documents != events:
        raise SystemExit(f"the sink saw {Sink.documents} documents, not {events}")
    print(f"  whole bucket, --concurrency {args.concurrency}: {r['elapsed']:.2f} s to exit = {objects / r['elapsed']:,.1f} objects/s, "
          f"{events / r['elapsed']:,.0f} events/s; {events / (Sink.last - Sink.first):,.0f} events/s while ingesting; "
          f"CPU {r['cpu']:.2f} s ({r['cpu'] / events * 100_000:.2f} s per 100k events); peak RSS {r['peak_mib']:.1f} MiB; "
          f"{r.get('list_requests', '?')} list requests for {r.get('objects_listed', '?')} objects")

    print("\nlisting cost of a 2-day backfill (--since 2025-05-02 --until 2025-05-03) by bucket size:")
    print(f"  {'days in bucket':>14} {'objects':>8} {'ingested':>8} {'list requests':>13} {'listed':>7} {'listed/ingested':>15} {'whole-bucket listing':>21}")
    small = synthetic_log(corpus, events=5, seed=1)[0]
    for days in (4, 16, 64):
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        objects = fill(s3, bucket, args.accounts, args.regions, days, 2, lambda _k: small)
        Sink.reset()
        r = run(args.binary, aws_url, sink_url, bucket, ["--since", "2025-05-02", "--until", "2025-05-03"])
        ingested = r.get("objects_read", 0)
        whole = -(-objects // 1000)
        print(f"  {days:>14} {objects:>8} {ingested:>8} {r.get('list_requests', 0):>13} {r.get('objects_listed', 0):>7} "
              f"{r.get('objects_listed', 0) / max(ingested, 1):>15.2f} {f'{whole} requests, {objects} listed':>21}")
    aws_proc.stdin.close()
    aws_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
