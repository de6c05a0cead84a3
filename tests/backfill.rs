//! JSON-lines objects and backfills against the stand-ins (moto for S3 and SQS, osmem for the
//! cluster): a Kafka Connect S3 sink layout announced by S3 event notifications and then
//! backfilled (each record indexed once), a CloudTrail bucket of several accounts, regions and
//! days backfilled for two days (only those days, listed only in those day folders), and a
//! backfill killed with SIGKILL (or stopped with SIGTERM) and resumed from its checkpoint.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use cloudtrail_ingest::format::confluent::Confluent;
use cloudtrail_ingest::format::{FreeForm, RecordContext, RecordFormat};
use cloudtrail_ingest::source::backfill::checkpoint::Checkpoint;
use serde_json::{json, Value};
use support::kafka::confluent_records;
use support::proxy::{Fault, FaultProxy};
use support::{eventually, gzip, log_object, point_at_cluster, standins, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_cloudtrail-ingest");
const TOPIC_DIR: &str = "topics/confluent-audit-log-events";

/// The key Kafka Connect's S3 sink (default partitioner) gives a partition's first object.
fn connect_key(partition: u32, gz: bool) -> String {
    format!(
        "{TOPIC_DIR}/partition={partition}/confluent-audit-log-events+{partition}+0000000000.json{}",
        if gz { ".gz" } else { "" }
    )
}

#[tokio::test]
async fn kafka_connect_json_lines_are_indexed_once_through_sqs_and_then_backfill() {
    let env = TestEnv::new("jsonl").await;
    env.notify_queue_of_new_objects().await;
    let records = confluent_records("jl", 30);

    // Partition 0, plain: one record per line, a blank line and a line that is not JSON.
    let mut plain = Vec::new();
    for (n, record) in records[..10].iter().enumerate() {
        plain.extend_from_slice(record);
        plain.push(b'\n');
        if n == 2 {
            plain.push(b'\n');
        }
        if n == 5 {
            plain.extend_from_slice(b"this line is not JSON\n");
        }
    }
    // Partition 1, gzipped: records glued together with no separator (Firehose-style).
    let glued: Vec<u8> = records[10..20].concat();
    // Partition 2, gzipped: CRLF line ends.
    let mut crlf = Vec::new();
    for record in &records[20..] {
        crlf.extend_from_slice(record);
        crlf.extend_from_slice(b"\r\n");
    }
    // Other JSON lines beside them (an application's log shipped by Vector).
    let app: Vec<u8> = (0..5)
        .map(|n| json!({"message": format!("request {n}"), "timestamp": format!("2025-03-14T10:00:0{n}Z"), "status": 200}).to_string() + "\n")
        .collect::<String>()
        .into_bytes();

    env.put_object(&connect_key(0, false), plain).await;
    env.put_object(&connect_key(1, true), gzip(&glued)).await;
    env.put_object(&connect_key(2, true), gzip(&crlf)).await;
    env.put_object("logs/app/2025-03-14.ndjson", app).await;

    let summary = env.run_until_idle(&[]).await;
    assert_eq!(summary["objects_read"], 4, "{summary:?}");
    assert_eq!(summary["records_unreadable"], 1, "{summary:?}");
    assert_eq!(
        summary["messages_deleted"], summary["messages_received"],
        "four notifications and the bucket's test event: {summary:?}"
    );

    let confluent = env
        .counts_matching(&format!("{}-*", env.confluent_prefix()))
        .await;
    assert_eq!(confluent.values().sum::<u64>(), 30, "{confluent:?}");
    let app_counts = env
        .counts_matching(&format!("{}-*", env.ndjson_prefix()))
        .await;
    assert_eq!(
        app_counts.into_iter().collect::<Vec<_>>(),
        [(format!("{}-2025.03.14", env.ndjson_prefix()), 5)]
    );

    // The same document as through the Kafka source: one format implementation.
    let index = format!("{}-2025.03.14", env.confluent_prefix());
    let stored = env
        .search(reqwest::Method::GET, &format!("{index}/_doc/jl-4"), None)
        .await;
    let context = RecordContext {
        position: "unused",
        fallback_time: None,
    };
    let event = Confluent {
        free_form: FreeForm::Objects,
    }
    .event(&records[4], &context)
    .expect("a sample record");
    let expected: Value = serde_json::from_slice(&event.source).unwrap();
    assert_eq!(stored["_source"], expected);

    // The line that is not JSON is in the dead-letter index with its key and line number.
    let dead = env
        .search(
            reqwest::Method::GET,
            &format!("{}-dead-letter-*/_search", env.index_prefix),
            None,
        )
        .await;
    let hits = dead["hits"]["hits"].as_array().cloned().unwrap_or_default();
    assert_eq!(hits.len(), 1, "{dead}");
    let entry = &hits[0]["_source"];
    assert_eq!(entry["record"], "this line is not JSON");
    assert_eq!(entry["s3"]["key"], connect_key(0, false));
    assert_eq!(
        entry["s3"]["line"], 8,
        "three records, a blank line, three more"
    );
    assert_eq!(entry["error"]["type"], "unreadable_record");

    // A backfill of the same bucket finds every record already there.
    let outcome = env.backfill(&[], None).await;
    assert_eq!(outcome.exit_code(), 0);
    assert_eq!(outcome.summary["objects_read"], 4);
    assert_eq!(
        outcome.summary["documents_indexed"], 0,
        "{:?}",
        outcome.summary
    );
    assert_eq!(
        outcome.summary["documents_existing"], 35,
        "{:?}",
        outcome.summary
    );
    let after = env
        .counts_matching(&format!("{}-*", env.confluent_prefix()))
        .await;
    assert_eq!(after, confluent, "no duplicates");
}

/// The `prefix` query parameter of a `ListObjectsV2` request target, and whether it is
/// delimited (a folder listing).
fn list_request(target: &str) -> Option<(String, bool)> {
    let url = reqwest::Url::parse(&format!("http://s3{target}")).ok()?;
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    query
        .iter()
        .any(|(k, v)| k == "list-type" && v == "2")
        .then(|| {
            let prefix = query
                .iter()
                .find(|(k, _)| k == "prefix")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (prefix, query.iter().any(|(k, _)| k == "delimiter"))
        })
}

#[tokio::test]
async fn a_two_day_backfill_lists_only_those_day_folders_of_every_account_and_region() {
    let env = TestEnv::new("days").await;
    let trails = [
        ("AWSLogs/111111111111/", "111111111111"),
        ("AWSLogs/o-abc123def4/222222222222/", "222222222222"),
    ];
    let regions = ["eu-west-1", "us-east-1"];
    for (base, account) in trails {
        for region in regions {
            for day in 1..=4 {
                let key = format!(
                    "{base}CloudTrail/{region}/2024/05/0{day}/{account}_CloudTrail_{region}_2024050{day}T1200Z_abc.json.gz"
                );
                let ids: Vec<String> = (0..2)
                    .map(|i| format!("{account}-{region}-{day}-{i}"))
                    .collect();
                let times: Vec<String> = (0..2)
                    .map(|i| format!("2024-05-0{day}T12:00:0{i}Z"))
                    .collect();
                let events: Vec<(&str, &str)> = ids
                    .iter()
                    .zip(&times)
                    .map(|(i, t)| (i.as_str(), t.as_str()))
                    .collect();
                env.put_object(&key, log_object(&events)).await;
            }
            let digest = format!(
                "{base}CloudTrail-Digest/{region}/2024/05/02/{account}_CloudTrail-Digest_{region}_x.json.gz"
            );
            env.put_object(&digest, gzip(b"{}")).await;
        }
    }
    env.put_object("other/data.json", b"{\"a\":1}\n".to_vec())
        .await;

    let proxy = FaultProxy::start(&standins().aws_url).await;
    let outcome = env
        .backfill(
            &["--since", "2024-05-02", "--until", "2024-05-03"],
            Some(&proxy.url()),
        )
        .await;
    assert_eq!(outcome.exit_code(), 0, "{outcome:?}");
    assert_eq!(outcome.summary["objects_read"], 8, "{:?}", outcome.summary);

    let counts = env.index_counts().await;
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [
            (format!("{}-2024.05.02", env.index_prefix), 8),
            (format!("{}-2024.05.03", env.index_prefix), 8),
        ]
    );

    let seen = proxy.take_seen();
    let lists: Vec<(String, bool)> = seen
        .iter()
        .filter_map(|request| request.strip_prefix("GET "))
        .filter_map(list_request)
        .collect();
    assert_eq!(lists.len() as u64, outcome.summary["list_requests"]);
    let expected_days: BTreeSet<String> = trails
        .iter()
        .flat_map(|(base, _)| {
            regions.iter().flat_map(move |region| {
                ["02", "03"].map(|day| format!("{base}CloudTrail/{region}/2024/05/{day}/"))
            })
        })
        .collect();
    let listed_days: BTreeSet<String> = lists
        .iter()
        .filter(|(_, delimited)| !delimited)
        .map(|(prefix, _)| prefix.clone())
        .collect();
    assert_eq!(
        listed_days, expected_days,
        "objects are listed only in the day folders"
    );
    assert_eq!(lists.iter().filter(|(_, d)| !d).count(), 8, "{lists:?}");
    for (prefix, _) in lists.iter().filter(|(_, delimited)| *delimited) {
        assert!(
            !prefix.contains("/2024/") && !prefix.contains("Digest"),
            "folder discovery stays above the day folders: {prefix}"
        );
    }
    assert!(
        !seen
            .iter()
            .any(|r| r.contains("Digest") && !r.contains("list-type")),
        "digests are never fetched"
    );
}

/// Runs the binary as a backfill with `args` (after the program name), S3 through `s3`.
fn backfill_process(args: &[String], s3: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(&args[1..])
        .env_clear()
        .env("AWS_ENDPOINT_URL", s3)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_with_sigkill_resumes_from_its_checkpoint() {
    interrupt_then_resume("KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_stopped_with_sigterm_exits_130_and_resumes_from_its_checkpoint() {
    interrupt_then_resume("TERM").await;
}

/// Backfills 200 objects with small, slow bulk requests, sends `signal` once 10 settled, and
/// runs again with the checkpoint: nothing that settled is fetched again, nothing is lost.
async fn interrupt_then_resume(signal: &str) {
    let env = TestEnv::new(&format!("resume-{}", signal.to_lowercase())).await;
    const OBJECTS: u64 = 200;
    let folder = "AWSLogs/333333333333/CloudTrail/us-east-1/2024/06/01/";
    for n in 0..OBJECTS {
        let ids: Vec<String> = (0..5).map(|i| format!("resume-{n}-{i}")).collect();
        let events: Vec<(&str, &str)> = ids
            .iter()
            .map(|id| (id.as_str(), "2024-06-01T08:00:00Z"))
            .collect();
        let key =
            format!("{folder}333333333333_CloudTrail_us-east-1_20240601T0800Z_{n:03}.json.gz");
        env.put_object(&key, log_object(&events)).await;
    }
    let s3 = FaultProxy::start(&standins().aws_url).await;
    let cluster = FaultProxy::start(&standins().search_url).await;
    // Small, slow bulk requests, so that the backfill is still going when it is killed.
    cluster.set(Fault::Delay {
        method: "POST".into(),
        path_contains: "_bulk".into(),
        delay: Duration::from_millis(300),
    });
    let path = std::env::temp_dir().join(format!("{}-checkpoint.json", env.bucket));
    let _ = std::fs::remove_file(&path);
    let path_text = path.display().to_string();
    let mut args = env.backfill_args(&[
        "--checkpoint",
        &path_text,
        "--concurrency",
        "2",
        "--bulk-max-bytes",
        "8192",
        "--shutdown-grace",
        "10s",
    ]);
    point_at_cluster(&mut args, &cluster.url());

    let mut child = backfill_process(&args, &s3.url())
        .spawn()
        .expect("backfill starts");
    let read = |path: &std::path::Path| -> Option<Checkpoint> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    };
    eventually("ten objects settled", Duration::from_secs(60), || async {
        read(&path).filter(|c| c.objects_done >= 10).map(|_| ())
    })
    .await;
    let signalled = std::time::Instant::now();
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = child.wait().expect("reaped");
    if signal == "TERM" {
        assert_eq!(status.code(), Some(130), "interrupted, to be resumed");
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "within the grace period"
        );
    }
    let at_kill = read(&path).expect("the checkpoint survives the kill");
    assert!(
        !at_kill.complete && at_kill.objects_done < OBJECTS,
        "{at_kill:?}"
    );
    assert!(at_kill.done_after.len() as u64 <= cloudtrail_ingest::source::backfill::window(2));

    s3.take_seen();
    cluster.set(Fault::None);
    let status = backfill_process(&args, &s3.url())
        .status()
        .expect("backfill resumes");
    assert_eq!(status.code(), Some(0));

    let fetched: Vec<String> = s3
        .take_seen()
        .iter()
        .filter(|r| r.starts_with("GET ") && !r.contains("list-type"))
        .filter_map(|r| {
            let path = r.trim_start_matches("GET ").split('?').next()?;
            path.strip_prefix(&format!("/{}/", env.bucket))
                .map(str::to_string)
        })
        .collect();
    for key in &fetched {
        assert!(
            Some(key.as_str()) > at_kill.done_through.as_deref()
                && !at_kill.done_after.contains(key),
            "{key} had settled before the kill and was fetched again"
        );
    }
    assert_eq!(fetched.len() as u64, OBJECTS - at_kill.objects_done);

    let done = read(&path).expect("the final checkpoint");
    assert!(done.complete, "{done:?}");
    assert_eq!((done.objects_done, done.failed_total), (OBJECTS, 0));
    assert_eq!(
        env.index_counts().await.into_iter().collect::<Vec<_>>(),
        [(format!("{}-2024.06.01", env.index_prefix), OBJECTS * 5)],
        "nothing lost, nothing twice"
    );
    let _ = std::fs::remove_file(&path);
}

/// `backfill --enqueue`: a bucket of two accounts (one behind an organization trail), two
/// regions and four days, enqueued for two of the days as CloudTrail notifications, then two
/// workers with one message in flight each drain the queue together: every event of the two
/// days is indexed once, nothing of the other days; a second run with the checkpoint sends
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueued_backfill_is_shared_by_the_workers_and_resumes_to_nothing() {
    const PER_DAY: usize = 40;
    let env = TestEnv::new("enqueue").await;
    let mut in_range = 0;
    for (base, account) in [
        ("AWSLogs/111111111111/", "111111111111"),
        ("AWSLogs/o-abc123def4/222222222222/", "222222222222"),
    ] {
        for region in ["eu-west-1", "us-east-1"] {
            for day in 1..=4 {
                // The two days asked for hold many objects, the others one each.
                let objects = if (2..=3).contains(&day) { PER_DAY } else { 1 };
                for n in 0..objects {
                    let key = format!(
                        "{base}CloudTrail/{region}/2024/05/0{day}/{account}_CloudTrail_{region}_2024050{day}T1200Z_{n:03}.json.gz"
                    );
                    let id = format!("{account}-{region}-{day}-{n}");
                    let time = format!("2024-05-0{day}T12:00:00Z");
                    env.put_object(&key, log_object(&[(&id, &time)])).await;
                    in_range += u64::from((2..=3).contains(&day));
                }
            }
        }
    }
    let checkpoint =
        std::env::temp_dir().join(format!("cloudtrail-ingest-{}.json", env.index_prefix));
    let checkpoint = checkpoint.to_str().unwrap();
    let range = [
        "--since",
        "2024-05-02",
        "--until",
        "2024-05-03",
        "--checkpoint",
        checkpoint,
    ];

    let outcome = env.enqueue(&range).await;
    assert_eq!(outcome.exit_code(), 0);
    assert_eq!(outcome.summary["objects_enqueued"], in_range);
    let messages = outcome.summary["messages_enqueued"];
    assert_eq!(messages, in_range.div_ceil(100), "100 keys a message");

    let workers = [
        env.spawn_until_idle(&["--max-in-flight", "1"]),
        env.spawn_until_idle(&["--max-in-flight", "1"]),
    ];
    let mut received = Vec::new();
    for worker in workers {
        let summary = tokio::time::timeout(Duration::from_secs(120), worker)
            .await
            .expect("the worker ends")
            .unwrap();
        assert_eq!(summary["documents_existing"], 0, "{summary:?}");
        received.push(summary["messages_received"]);
    }
    assert_eq!(received.iter().sum::<u64>(), messages, "{received:?}");
    assert!(
        received.iter().all(|&n| n > 0),
        "both workers shared: {received:?}"
    );
    let counts = env.index_counts().await;
    let expected: std::collections::BTreeMap<String, u64> = [
        (format!("{}-2024.05.02", env.index_prefix), in_range / 2),
        (format!("{}-2024.05.03", env.index_prefix), in_range / 2),
    ]
    .into();
    assert_eq!(
        counts, expected,
        "every event of the range once, nothing else"
    );

    // The checkpoint says the job is complete: a second run sends nothing.
    let again = env.enqueue(&range).await;
    assert_eq!(again.exit_code(), 0);
    assert_eq!(again.summary.get("objects_enqueued").unwrap_or(0), 0);
    assert_eq!(env.messages_left().await, 0);
    let _ = std::fs::remove_file(checkpoint);
}
