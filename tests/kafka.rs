//! The Kafka source end to end: the binary (`cloudtrail-ingest kafka`) against the tansu
//! broker and the search stand-in on 127.0.0.1, with realistic Confluent audit-log records.

mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::kafka::{confluent_records, KafkaEnv};
use support::proxy::{Fault, FaultProxy};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_cloudtrail-ingest");

fn command(args: &[String]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the worker with `--exit-when-idle` to completion (it must finish within `deadline`).
fn run_until_idle(args: &[String], deadline: Duration) -> Output {
    let mut args = args.to_vec();
    args.push("--exit-when-idle".into());
    let child = command(&args).spawn().expect("start the worker");
    wait(child, deadline)
}

fn wait(mut child: Child, deadline: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > deadline {
            child.kill().ok();
            let output = child.wait_with_output().expect("output");
            panic!(
                "the worker ran longer than {deadline:?}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The output of `child`, which must exit by itself within `deadline` (its pipes are read
/// meanwhile, so a chatty child cannot block on them).
fn output_within(child: Child, deadline: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().expect("output")));
    rx.recv_timeout(deadline).unwrap_or_else(|_| {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("the worker ran longer than {deadline:?}")
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}:\n{}",
        output.status,
        stderr(output)
    );
}

/// Every id of the indexed documents (events only, not dead letters), with repeats.
async fn indexed_ids(env: &KafkaEnv) -> Vec<String> {
    let pattern = format!("{}-2*", env.index_prefix);
    env.search(reqwest::Method::POST, &format!("{pattern}/_refresh"), None)
        .await;
    let found = env
        .search(
            reqwest::Method::POST,
            &format!("{pattern}/_search"),
            Some(serde_json::json!({"size": 10000, "_source": false, "query": {"match_all": {}}})),
        )
        .await;
    let mut ids: Vec<String> = found["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|hit| hit["_id"].as_str().expect("an _id").to_string())
        .collect();
    ids.sort();
    ids
}

/// `expected` ids (`<prefix>-0` ...), each exactly once.
async fn exactly_once(env: &KafkaEnv, prefix: &str, expected: usize) {
    let ids = indexed_ids(env).await;
    let mut want: Vec<String> = (0..expected).map(|i| format!("{prefix}-{i}")).collect();
    want.sort();
    assert_eq!(
        ids.len(),
        want.len(),
        "documents indexed (duplicates or losses)"
    );
    assert_eq!(ids, want);
}

/// Waits until more than `n` documents are searchable.
async fn indexed_more_than(env: &KafkaEnv, n: usize) {
    eventually("documents indexed", Duration::from_secs(60), || async {
        (indexed_ids(env).await.len() > n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_indexed_once_and_a_second_run_indexes_nothing_new() {
    let env = KafkaEnv::new("once", 3).await;
    let records = confluent_records("once", 300);
    let batch: Vec<(i32, Vec<u8>)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| ((i % 3) as i32, r.clone()))
        .collect();
    env.produce(&batch).await;

    let output = run_until_idle(&env.args(&[]), Duration::from_secs(90));
    assert_success(&output);
    assert_eq!(counter(&output, "records_consumed"), 300);
    assert_eq!(counter(&output, "documents_indexed"), 300);
    exactly_once(&env, "once", 300).await;

    // The documents are the records, with @timestamp = time and the principal kept searchable.
    let doc = env
        .search(
            reqwest::Method::GET,
            &format!("{}-2025.03.14/_doc/once-0", env.index_prefix),
            None,
        )
        .await;
    assert_eq!(
        doc["_source"]["@timestamp"],
        "2025-03-14T00:00:00.123456789Z"
    );
    assert_eq!(doc["_source"]["id"], "once-0");

    let again = run_until_idle(&env.args(&[]), Duration::from_secs(90));
    assert_success(&again);
    assert_eq!(counter(&again, "records_consumed"), 0, "{}", stderr(&again));
    exactly_once(&env, "once", 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_json_is_dead_lettered_and_the_partition_moves_on() {
    let env = KafkaEnv::new("notjson", 1).await;
    let mut records = confluent_records("nj", 10);
    records.insert(4, b"this is not JSON {".to_vec());
    env.produce_spread(records, 1).await;
    env.produce_tombstone(0).await; // offset 11: a record without a value

    let output = run_until_idle(&env.args(&[]), Duration::from_secs(90));
    assert_success(&output);
    assert_eq!(counter(&output, "records_unreadable"), 2);
    exactly_once(&env, "nj", 10).await;
    let dead = format!("{}-dead-letter-*", env.index_prefix);
    env.search(reqwest::Method::POST, &format!("{dead}/_refresh"), None)
        .await;
    let found = env
        .search(
            reqwest::Method::POST,
            &format!("{dead}/_search"),
            Some(serde_json::json!({"sort": [{"kafka.offset": "asc"}]})),
        )
        .await;
    let hits = found["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(hits.len(), 2, "{found}");
    assert_eq!(hits[1]["_source"]["kafka"]["offset"], 11);
    assert!(
        hits[1]["_source"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("no value"),
        "{found}"
    );
    let entry = &hits[0]["_source"];
    assert_eq!(entry["record"], "this is not JSON {");
    assert_eq!(entry["error"]["type"], "unreadable_record");
    assert_eq!(entry["kafka"]["topic"], Value::from(env.topic.clone()));
    assert_eq!(entry["kafka"]["partition"], 0);
    assert_eq!(entry["kafka"]["offset"], 4);

    // Its offset was committed with the rest: nothing is read again.
    let again = run_until_idle(&env.args(&[]), Duration::from_secs(90));
    assert_success(&again);
    assert_eq!(counter(&again, "records_consumed"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_loses_and_duplicates_nothing() {
    let env = KafkaEnv::new("kill", 2).await;
    const N: usize = 3000;
    env.produce_spread(confluent_records("kill", N), 2).await;

    // Small, slow bulk requests: the worker is certainly mid-run when it is killed.
    let args = env.args(&["--bulk-max-bytes", "16384", "--bulk-concurrency", "1"]);
    let mut child = command(&args).spawn().expect("start");
    indexed_more_than(&env, 100).await;
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let partial = indexed_ids(&env).await.len();
    assert!(partial < N, "killed before the end ({partial} of {N})");

    let output = run_until_idle(&env.args(&[]), Duration::from_secs(120));
    assert_success(&output);
    exactly_once(&env, "kill", N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_what_settled_and_exits_0_within_the_grace_period() {
    let env = KafkaEnv::new("term", 1).await;
    const N: usize = 2000;
    env.produce_spread(confluent_records("term", N), 1).await;
    let args = env.args(&[
        "--bulk-max-bytes",
        "16384",
        "--bulk-concurrency",
        "1",
        "--shutdown-grace",
        "10s",
    ]);
    let child = command(&args).spawn().expect("start");
    indexed_more_than(&env, 100).await;
    let sent = Instant::now();
    sigterm(&child);
    let output = wait(child, Duration::from_secs(30));
    assert!(
        sent.elapsed() < Duration::from_secs(12),
        "exits within the grace period"
    );
    assert_success(&output);
    assert!(
        stderr(&output).contains("offsets committed"),
        "{}",
        stderr(&output)
    );
    let consumed = counter(&output, "records_consumed");

    // The next run starts after what was committed, and together they index all, once.
    let rest = run_until_idle(&env.args(&[]), Duration::from_secs(120));
    assert_success(&rest);
    let reread = counter(&rest, "records_consumed");
    assert!(
        consumed + reread >= N as u64 && reread < N as u64,
        "consumed {consumed}, then {reread} of {N}: the committed offset was kept"
    );
    exactly_once(&env, "term", N).await;
}

/// Sends SIGTERM, as ECS and systemd do.
fn sigterm(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_outage_mid_run_loses_nothing_and_commits_nothing_unindexed() {
    let env = KafkaEnv::new("outage", 2).await;
    const N: usize = 1500;
    env.produce_spread(confluent_records("outage", N), 2).await;
    let proxy = FaultProxy::start(&standins().search_url).await;
    let mut args = env.args(&["--bulk-max-bytes", "16384", "--bulk-concurrency", "1"]);
    point_at_cluster(&mut args, &proxy.url());
    let mut child = command(&args).spawn().expect("start");
    indexed_more_than(&env, 100).await;
    proxy.set(Fault::Status {
        status: 503,
        path_contains: "_bulk".into(),
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Killed during the outage: whatever was committed must have been indexed.
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let indexed = indexed_ids(&env).await.len();
    assert!(indexed < N);
    proxy.set(Fault::None);

    let output = run_until_idle(&args, Duration::from_secs(120));
    assert_success(&output);
    // The second run read at least everything the first did not index.
    assert!(
        counter(&output, "records_consumed") >= (N - indexed) as u64,
        "offsets were committed past what was indexed"
    );
    exactly_once(&env, "outage", N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_in_one_group_split_the_partitions_and_index_everything_once() {
    let env = KafkaEnv::new("group", 4).await;
    const N: usize = 4000;
    let records = confluent_records("group", N);
    env.produce_spread(records[..N / 2].to_vec(), 4).await;
    let args = env.args(&["--bulk-max-bytes", "65536"]);
    let first = command(&args).spawn().expect("first worker");
    // The second joins while the first is consuming: a rebalance moves partitions to it.
    indexed_more_than(&env, 0).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut second_args = args.clone();
    second_args.extend(["--metrics-listen".to_string(), listen.clone()]);
    let second = command(&second_args).spawn().expect("second worker");
    let http = reqwest::Client::new();
    eventually("partitions of its own", Duration::from_secs(60), || async {
        let url = format!("http://{listen}/metrics");
        let text = http.get(url).send().await.ok()?.text().await.ok()?;
        text.contains("kafka_consumer_lag{").then_some(())
    })
    .await;
    // The rest lands on every partition, the second worker's among them.
    env.produce_spread(records[N / 2..].to_vec(), 4).await;
    eventually("everything indexed", Duration::from_secs(120), || async {
        (indexed_ids(&env).await.len() >= N).then_some(())
    })
    .await;
    for child in [&first, &second] {
        sigterm(child);
    }
    let a = wait(first, Duration::from_secs(40));
    let b = wait(second, Duration::from_secs(40));
    assert_success(&a);
    assert_success(&b);
    let (ta, tb) = (stderr(&a), stderr(&b));
    assert!(ta.contains("partitions assigned") && tb.contains("partitions assigned"));
    assert!(
        counter(&b, "records_consumed") > 0,
        "the second worker got partitions of its own:\n{tb}"
    );
    exactly_once(&env, "group", N).await;
}

#[test]
fn kafka_configuration_errors_are_one_line_and_exit_2() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["kafka"],
            "--kafka-brokers (CLOUDTRAIL_INGEST_KAFKA_BROKERS) is required",
        ),
        (
            &[
                "kafka",
                "--kafka-brokers",
                "b:9092",
                "--elasticsearch-url",
                "http://127.0.0.1:9",
            ],
            "needs --kafka-sasl-username and --kafka-sasl-password",
        ),
        (
            &[
                "kafka",
                "--kafka-brokers",
                "nohost",
                "--kafka-security-protocol",
                "plaintext",
                "--elasticsearch-url",
                "http://127.0.0.1:9",
            ],
            "\"nohost\" is not HOST:PORT",
        ),
        (
            &[
                "kafka",
                "--kafka-brokers",
                "b:9092",
                "--kafka-security-protocol",
                "plaintext",
                "--kafka-option",
                "enable.auto.commit=true",
                "--elasticsearch-url",
                "http://127.0.0.1:9",
            ],
            "--kafka-option enable.auto.commit: set by its own flag",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let output = command(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = stderr(&output);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_describes_the_group_without_joining_and_the_password_never_prints() {
    let env = KafkaEnv::new("check", 2).await;
    env.produce(&[(0, confluent_records("check", 1).remove(0))])
        .await;
    let output = command(&[env.args(&[]), vec!["check".into()]].concat())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(output.status.success(), "{text}");
    for line in [
        "PASS cluster",
        "PASS templates",
        "PASS bulk",
        "PASS brokers",
        "PASS topics",
        "PASS group",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert!(text.contains("(2 partitions)"), "{text}");

    let mut missing = env.args(&["check"]);
    set_arg(&mut missing, "--kafka-topic", "no-such-topic");
    let output = command(&missing).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAIL topics"));

    // SASL against a broker without it: the start fails, and the secret is never printed.
    const SECRET: &str = "kafka-secret-9QzX";
    const OPTION_SECRET: &str = "key-password-5Rt";
    let option = format!("ssl.key.password={OPTION_SECRET}");
    let mut sasl = env.args(&[
        "--kafka-sasl-username",
        "key",
        "--kafka-sasl-password",
        SECRET,
        "--kafka-option",
        &option,
        "--log-format",
        "json",
    ]);
    set_arg(&mut sasl, "--kafka-security-protocol", "sasl_plaintext");
    let child = command(&sasl).env("RUST_LOG", "debug").spawn().unwrap();
    let output = output_within(child, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(text.contains("kafka_sasl_password=redacted"), "{text}");
    assert!(!text.contains(SECRET), "the password was printed:\n{text}");
    assert!(
        !text.contains(OPTION_SECRET),
        "a --kafka-option value was printed:\n{text}"
    );
    assert!(text.contains("kafka_option=ssl.key.password"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_pauses_the_partitions_and_keeps_the_group_membership() {
    let env = KafkaEnv::new("pause", 2).await;
    // 800 records of 60 KB: more than the sink's 32 MiB budget, so records must wait.
    const N: usize = 800;
    let padding = "x".repeat(60_000);
    let batch: Vec<(i32, Vec<u8>)> = confluent_records("pause", N)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let mut record: Value = serde_json::from_slice(&r).unwrap();
            record["padding"] = padding.clone().into();
            ((i % 2) as i32, serde_json::to_vec(&record).unwrap())
        })
        .collect();
    env.produce(&batch).await;
    let proxy = FaultProxy::start(&standins().search_url).await;
    // A member that stops polling for 6 s is put out of the group: the 10 s outage would
    // cost a rebalance if the worker stopped polling while it waits for the cluster.
    let mut args = env.args(&[
        "--bulk-max-bytes",
        "16384",
        "--bulk-concurrency",
        "1",
        "--kafka-option",
        "max.poll.interval.ms=6000",
        "--exit-when-idle",
    ]);
    point_at_cluster(&mut args, &proxy.url());
    let child = command(&args).spawn().expect("start");
    indexed_more_than(&env, 100).await;
    proxy.set(Fault::Status {
        status: 503,
        path_contains: "_bulk".into(),
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.set(Fault::None);
    let output = wait(child, Duration::from_secs(120));
    assert_success(&output);
    let text = stderr(&output);
    assert!(text.contains("partitions paused"), "{text}");
    assert!(text.contains("partitions resumed"), "{text}");
    assert_eq!(
        counter(&output, "rebalances"),
        1,
        "only the revocation at exit: the membership was kept through the outage\n{text}"
    );
    exactly_once(&env, "pause", N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_json_topic_with_configured_id_and_time_fields_and_lag_in_metrics() {
    let env = KafkaEnv::new("json", 1).await;
    let records: Vec<(i32, Vec<u8>)> = (0..50)
        .map(|i| {
            let value = serde_json::json!({
                "event": {"uid": format!("json-{i}")},
                "at": format!("2024-07-0{}T10:00:00Z", 1 + i % 2),
                "n": i,
            });
            (0, serde_json::to_vec(&value).unwrap())
        })
        .collect();
    env.produce(&records).await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = env.args(&[
        "--kafka-format",
        "json",
        "--kafka-id-field",
        "event.uid",
        "--kafka-time-field",
        "at",
        "--metrics-listen",
        &listen,
    ]);
    let child = command(&args).spawn().expect("start");
    exactly_once_eventually(&env, "json", 50).await;
    let counts = env.index_counts().await;
    assert_eq!(
        counts.get(&format!("{}-2024.07.01", env.index_prefix)),
        Some(&25)
    );
    assert_eq!(
        counts.get(&format!("{}-2024.07.02", env.index_prefix)),
        Some(&25)
    );
    // librdkafka's statistics come every 5 s; the lag of the partition is 0 once committed.
    let metrics = eventually(
        "the consumer lag in /metrics",
        Duration::from_secs(20),
        || async {
            let text = reqwest::get(format!("http://{listen}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let line = format!(
                "cloudtrail_ingest_kafka_consumer_lag{{topic=\"{}\",partition=\"0\"}} 0",
                env.topic
            );
            text.contains(&line).then_some(text)
        },
    )
    .await;
    assert!(
        metrics.contains("cloudtrail_ingest_records_consumed_total 50"),
        "{metrics}"
    );
    sigterm(&child);
    assert_success(&wait(child, Duration::from_secs(30)));
}

/// [`exactly_once`], once the documents are all there.
async fn exactly_once_eventually(env: &KafkaEnv, prefix: &str, expected: usize) {
    eventually(
        "every document indexed",
        Duration::from_secs(60),
        || async { (indexed_ids(env).await.len() >= expected).then_some(()) },
    )
    .await;
    exactly_once(env, prefix, expected).await;
}
