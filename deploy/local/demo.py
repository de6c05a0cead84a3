"""End-to-end demo on local stand-ins.

Starts moto (SQS, SNS, S3) and osmem-server (OpenSearch-compatible) on 127.0.0.1, creates
the trail bucket, the SNS topic, the queue with a dead-letter queue and redrive policy, and
the subscription; uploads every CloudTrail log object of fixtures/conformance/objects and
announces each on the topic exactly as CloudTrail does; runs the worker until the queue is
idle; prints the indices, counts, one sample document, the run time and the worker's peak
memory.

Usage: demo.py PATH_TO_WORKER_BINARY [--synthetic-mb N]

--synthetic-mb N adds one generated log object of about N MB (uncompressed) made of the
corpus records with fresh eventIDs, to show that the worker's memory does not grow with
object size. The search stand-in indexes about 1-2.5k documents/s, so 100 MB (about 70k
events) takes a minute or two.
"""

import argparse
import uuid

import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
OBJECTS = ROOT / "fixtures" / "conformance" / "objects"
PREFIX = "cloudtrail"


def start(command):
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        try:
            ready = json.loads(line)
        except ValueError:
            continue
        if isinstance(ready, dict) and "url" in ready:
            return proc, ready["url"]
    raise SystemExit(f"stand-in {command[0]} exited before it was ready")


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def search(url, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}/{path}", data=data, method="POST" if data else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def log_records():
    """Every record of the corpus's log files (digests left out)."""
    return [record for path in sorted(OBJECTS.rglob("*.json.gz")) if "/CloudTrail-Digest/" not in str(path)
            for record in json.loads(gzip.decompress(path.read_bytes())).get("Records", [])]


def synthetic_log(corpus, megabytes=None, events=None, seed=0):
    """A gzipped log of about `megabytes` MB (or of `events` records): corpus records cycled,
    each with a fresh eventID and source address and an eventTime spread over one day."""
    target = (megabytes or 0) * 1_000_000
    parts, size, n = [], 0, 0
    while (n < events) if events is not None else (size < target):
        record = dict(corpus[(n + seed) % len(corpus)])
        record["eventID"] = str(uuid.UUID(int=seed * 10_000_000 + n + 1))
        record["eventTime"] = f"2025-06-01T{(n // 3600) % 24:02d}:{(n // 60) % 60:02d}:{n % 60:02d}Z"
        record["sourceIPAddress"] = f"198.51.{n % 256}.{(n // 256) % 256}"
        text = json.dumps(record, separators=(",", ":"))
        parts.append(text)
        size += len(text) + 1
        n += 1
    body = ('{"Records":[' + ",".join(parts) + "]}").encode()
    return gzip.compress(body, compresslevel=6), n, len(body)


def worker_env(aws_url, queue_url, search_url, prefix, receive_wait, log_level, passthrough=("MALLOC_",)):
    """The worker's environment on the stand-ins: nothing of the caller's but PATH, RUST_LOG
    and the variables starting with `passthrough`."""
    env = dict(
        PATH=os.environ.get("PATH", ""),
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL=aws_url,
        CLOUDTRAIL_INGEST_QUEUE_URL=queue_url,
        CLOUDTRAIL_INGEST_ELASTICSEARCH_URL=search_url,
        CLOUDTRAIL_INGEST_INDEX_PREFIX=prefix,
        CLOUDTRAIL_INGEST_S3_FORCE_PATH_STYLE="true",
        CLOUDTRAIL_INGEST_EXIT_WHEN_IDLE="true",
        CLOUDTRAIL_INGEST_RECEIVE_WAIT=receive_wait,
        RUST_LOG=os.environ.get("RUST_LOG", log_level),
    )
    env.update({k: v for k, v in os.environ.items() if k.startswith(passthrough)})
    return env


def run_worker(binary, env):
    """Runs the worker to its exit; returns its start and end (monotonic), its peak RSS in
    KiB and its CPU time (user + system, from wait4). VmHWM is the worker's own peak since exec
    (wait4's ru_maxrss would not do: Linux carries the forked parent's high-water mark across
    exec into it)."""
    started = time.monotonic()
    worker = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL)
    peak_kib = 0
    while True:
        peak_kib = max(peak_kib, vm_hwm_kib(worker.pid))
        done, status, usage = os.wait4(worker.pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    ended = time.monotonic()
    worker.returncode = os.waitstatus_to_exitcode(status)
    if worker.returncode != 0:
        raise SystemExit(f"worker exited with {worker.returncode}")
    return started, ended, peak_kib, usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--synthetic-mb", type=int, default=0)
    args = parser.parse_args()
    binary = args.binary
    python = sys.executable
    aws_proc, aws_url = start([python, str(ROOT / "tests/standins/aws_standin.py")])
    from osmem_server import resolve_binary

    search_proc, search_url = start([resolve_binary(), "-addr", "127.0.0.1:0"])
    print(f"stand-ins: AWS at {aws_url}, search cluster at {search_url}")

    session = boto3.session.Session(
        aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1"
    )
    s3 = session.client("s3", endpoint_url=aws_url)
    sqs = session.client("sqs", endpoint_url=aws_url)
    sns = session.client("sns", endpoint_url=aws_url)

    bucket = "demo-trail-bucket"
    s3.create_bucket(Bucket=bucket)
    dlq_url = sqs.create_queue(QueueName="cloudtrail-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName="cloudtrail",
        Attributes={
            "VisibilityTimeout": "120",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic_arn = sns.create_topic(Name="cloudtrail")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    keys = sorted(str(p.relative_to(OBJECTS)) for p in OBJECTS.rglob("*.json.gz"))
    records = 0
    for key in keys:
        body = (OBJECTS / key).read_bytes()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        log = json.loads(gzip.decompress(body))
        records += len(log.get("Records", []))
        # CloudTrail announces log files (not digests) on the trail's topic.
        if "/CloudTrail-Digest/" not in key:
            sns.publish(TopicArn=topic_arn, Message=json.dumps({"s3Bucket": bucket, "s3ObjectKey": [key]}))
    if args.synthetic_mb:
        corpus = log_records()
        body, count, raw_bytes = synthetic_log(corpus, megabytes=args.synthetic_mb)
        key = "AWSLogs/123456789012/CloudTrail/us-east-1/2025/06/01/123456789012_CloudTrail_us-east-1_20250601T0000Z_synthetic.json.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        sns.publish(TopicArn=topic_arn, Message=json.dumps({"s3Bucket": bucket, "s3ObjectKey": [key]}))
        keys.append(key)
        records += count
        print(f"generated {key}: {count} records, {raw_bytes / 1e6:.1f} MB uncompressed, {len(body) / 1e6:.1f} MB gzipped")
        del corpus, body
    print(f"uploaded {len(keys)} objects ({records} records) and announced the log files on SNS")

    env = worker_env(aws_url, queue_url, search_url, PREFIX, "2s", "info")
    print(f"running {binary} --exit-when-idle ...")
    started, ended, peak_kib, _ = run_worker(binary, env)
    elapsed = ended - started

    search(search_url, f"{PREFIX}-*/_refresh", {})
    rows = search(search_url, f"_cat/indices/{PREFIX}-*?format=json")
    counts = {row["index"]: search(search_url, f"{row['index']}/_count")["count"] for row in rows}
    total = sum(counts.values())
    print(f"\n{len(counts)} daily indices:")
    for index in sorted(counts):
        print(f"  {index:32} {counts[index]:6}")
    sample = search(search_url, f"{PREFIX}-*/_search", {"size": 1, "query": {"term": {"eventName": "ConsoleLogin"}}})
    hit = sample["hits"]["hits"][0] if sample["hits"]["hits"] else None
    if hit:
        print(f"\nsample document {hit['_index']}/{hit['_id']}:")
        print(json.dumps(hit["_source"], indent=2)[:1500])
    left = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    print(
        f"\n{total} documents from {records} records (records sharing an eventID collapse into one document)"
        f"\nqueue: {left['ApproximateNumberOfMessages']} visible, {left['ApproximateNumberOfMessagesNotVisible']} in flight; "
        f"dead-letter queue: {dlq['ApproximateNumberOfMessages']}"
        f"\nworker run: {elapsed:.2f} s, peak RSS (VmHWM) {peak_kib / 1024:.1f} MiB"
    )
    for proc in (aws_proc, search_proc):
        proc.stdin.close()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
