//! Fault injection: a proxy the tests control sits in front of the search stand-in or the
//! S3 stand-in. Each scenario ends with exact counts: every expected event indexed once, the
//! queue drained, and exactly the poison messages in the dead-letter queue.

mod support;

use std::time::Duration;

use support::proxy::{Fault, FaultProxy};
use support::*;

/// Uploads `objects` log objects of `per_object` events on 2024-05-01 and announces each.
async fn publish_objects(env: &TestEnv, name: &str, objects: usize, per_object: usize) -> u64 {
    for n in 0..objects {
        let ids: Vec<String> = (0..per_object).map(|i| format!("{name}-{n}-{i}")).collect();
        let events: Vec<(&str, &str)> = ids
            .iter()
            .map(|id| (id.as_str(), "2024-05-01T12:00:00Z"))
            .collect();
        let key =
            format!("AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/{name}-{n}.json.gz");
        env.put_object(&key, log_object(&events)).await;
        env.publish(&env.cloudtrail_message(&[&key])).await;
    }
    (objects * per_object) as u64
}

/// Runs until the main queue is empty (a released poison message needs one more receive to
/// be moved to the DLQ); returns the summaries of all runs added up where it matters.
async fn drain(env: &TestEnv, cluster: Option<&str>) {
    eventually("the queue to drain", Duration::from_secs(60), || async {
        env.spawn_through(&[], cluster, None).await.unwrap();
        (env.messages_left().await == 0).then_some(())
    })
    .await;
}

/// One line for the record (events expected, indexed, duplicated, and what is left where),
/// then the exact end state: every expected event indexed once, the queue empty, and exactly
/// `dead_lettered` messages in the DLQ.
async fn settled_exactly_once(env: &TestEnv, scenario: &str, expected: u64, dead_lettered: u64) {
    let indexed = env.total_documents().await;
    let dlq = env.queue_depth(&env.dlq_url).await;
    let left = env.messages_left().await;
    eprintln!(
        "{scenario}: expected {expected}, indexed {indexed}, duplicated {}, queue {left}, dlq {}",
        indexed.saturating_sub(expected),
        dlq.0
    );
    assert_eq!(indexed, expected, "{scenario}: every event exactly once");
    assert_eq!(left, 0, "{scenario}: the queue is drained");
    assert_eq!(dlq, (dead_lettered, 0), "{scenario}: the DLQ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_429_on_every_other_request_loses_and_duplicates_nothing() {
    let env = TestEnv::with(
        "every-other-429",
        EnvOptions {
            max_receive_count: 1,
            ..EnvOptions::default()
        },
    )
    .await;
    let proxy = FaultProxy::start(&standins().search_url).await;
    proxy.set(Fault::EveryOther {
        status: 429,
        path_contains: "_bulk".into(),
    });
    let expected = publish_objects(&env, "alt", 4, 500).await;
    env.send_to_queue("This is a test message.").await;

    let summary = env
        .spawn_through(&["--bulk-max-bytes", "65536"], Some(&proxy.url()), None)
        .await
        .unwrap();
    drain(&env, Some(&proxy.url())).await;

    assert!(proxy.faulted() >= 2, "faults injected: {}", proxy.faulted());
    assert!(summary["bulk_retries"] >= 2, "{summary:?}");
    assert_eq!(summary["documents_indexed"], expected, "{summary:?}");
    assert_eq!(summary["documents_rejected"], 0);
    settled_exactly_once(&env, "bulk 429 on every other request", expected, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_six_second_cluster_outage_mid_run_loses_and_duplicates_nothing() {
    let env = TestEnv::with(
        "outage",
        EnvOptions {
            visibility_timeout: Duration::from_secs(4),
            max_receive_count: 2,
            ..EnvOptions::default()
        },
    )
    .await;
    let proxy = FaultProxy::start(&standins().search_url).await;
    let expected = publish_objects(&env, "outage", 6, 1000).await;

    let worker = env.spawn_through(
        &["--max-in-flight", "2", "--bulk-max-bytes", "131072"],
        Some(&proxy.url()),
        None,
    );
    let index = format!("{}-2024.05.01", env.index_prefix);
    eventually("the first documents", Duration::from_secs(60), || async {
        env.search(reqwest::Method::POST, &format!("{index}/_refresh"), None)
            .await;
        (env.count(&index).await > 0).then_some(())
    })
    .await;
    // Three seconds of 503s, then three seconds of connections closed without an answer.
    proxy.set(Fault::Status {
        status: 503,
        path_contains: String::new(),
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set(Fault::Drop);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let faulted = proxy.faulted();
    proxy.set(Fault::None);

    let summary = tokio::time::timeout(Duration::from_secs(120), worker)
        .await
        .expect("the worker recovers and finishes")
        .unwrap();
    drain(&env, Some(&proxy.url())).await;

    assert!(
        faulted >= 2,
        "the outage was hit: {faulted} faulted requests"
    );
    assert!(summary["bulk_retries"] >= 2, "{summary:?}");
    assert!(summary["visibility_extensions"] >= 1, "{summary:?}");
    assert_eq!(
        summary["messages_failed_transient"], 0,
        "held, not cycled: {summary:?}"
    );
    settled_exactly_once(
        &env,
        "6 s cluster outage (503, then dropped connections)",
        expected,
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_s3_read_longer_than_the_visibility_timeout_is_never_delivered_twice() {
    let env = TestEnv::with(
        "slow-s3",
        EnvOptions {
            visibility_timeout: Duration::from_secs(3),
            max_receive_count: 5,
            ..EnvOptions::default()
        },
    )
    .await;
    let proxy = FaultProxy::start(&standins().aws_url).await;
    proxy.set(Fault::Delay {
        method: "GET".into(),
        path_contains: "x-id=GetObject".into(),
        delay: Duration::from_secs(8),
    });
    let expected = publish_objects(&env, "slow", 1, 200).await;

    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        env.spawn_through(&[], None, Some(&proxy.url())),
    )
    .await
    .expect("the worker finishes")
    .unwrap();

    assert_eq!(proxy.faulted(), 1, "one delayed GetObject");
    // The worker kept polling with free slots all along: had the message reappeared, it
    // would have been received again.
    assert_eq!(summary["messages_received"], 1, "{summary:?}");
    assert!(summary["visibility_extensions"] >= 2, "{summary:?}");
    assert_eq!(summary["documents_indexed"], expected, "{summary:?}");
    assert_eq!(summary["documents_existing"], 0, "{summary:?}");
    assert_eq!(summary["messages_deleted"], 1);
    settled_exactly_once(&env, "slow S3 GET (8 s, visibility 3 s)", expected, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_bulk_response_fails_its_events_and_the_message_comes_back() {
    let env = TestEnv::with(
        "malformed-bulk",
        EnvOptions {
            visibility_timeout: Duration::from_secs(2),
            max_receive_count: 5,
            ..EnvOptions::default()
        },
    )
    .await;
    let proxy = FaultProxy::start(&standins().search_url).await;
    // A 200 whose one item names no action: it matches the request's count, but cannot be
    // read. It used to panic the bulk task and leave the message waiting forever.
    proxy.set(Fault::Body {
        status: 200,
        body: r#"{"errors":false,"items":[{}]}"#.into(),
        path_contains: "_bulk".into(),
    });
    let expected = publish_objects(&env, "malformed", 1, 1).await;

    let worker = env.spawn_through(&[], Some(&proxy.url()), None);
    eventually("the malformed answer", Duration::from_secs(30), || async {
        (proxy.faulted() >= 1).then_some(())
    })
    .await;
    proxy.set(Fault::None);
    let summary = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("the worker neither stalls nor dies: the message comes back and completes")
        .unwrap();

    assert!(summary["bulk_failures"] >= 1, "{summary:?}");
    assert!(summary["messages_failed_transient"] >= 1, "{summary:?}");
    assert_eq!(summary["messages_given_up"], 0, "{summary:?}");
    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    settled_exactly_once(
        &env,
        "malformed bulk response, then a healthy cluster",
        expected,
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_hold_the_batch_with_readiness_false_and_cycle_nothing() {
    let env = TestEnv::with(
        "auth-401",
        EnvOptions {
            visibility_timeout: Duration::from_secs(3),
            max_receive_count: 1,
            ..EnvOptions::default()
        },
    )
    .await;
    let proxy = FaultProxy::start(&standins().search_url).await;
    proxy.set(Fault::Status {
        status: 401,
        path_contains: "_bulk".into(),
    });
    let expected = publish_objects(&env, "auth", 3, 100).await;
    let listen = format!("127.0.0.1:{}", free_port());

    let worker = env.spawn_through(&["--metrics-listen", &listen], Some(&proxy.url()), None);
    let readyz = format!("http://{listen}/readyz");
    let not_ready = eventually("readiness to go false", Duration::from_secs(30), || async {
        let response = env.http.get(&readyz).send().await.ok()?;
        let status = response.status().as_u16();
        let body = response.text().await.ok()?;
        (status == 503 && body.contains("cluster_authorized=false")).then_some(body)
    })
    .await;
    // Held for longer than the visibility timeout: the heartbeat keeps the messages.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let metrics = env
        .http
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("cloudtrail_ingest_cluster_authorized 0"),
        "{metrics}"
    );
    proxy.set(Fault::None);
    let summary = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("ingestion resumes by itself")
        .unwrap();

    assert!(proxy.faulted() >= 2, "{not_ready}");
    assert_eq!(
        summary["messages_received"], 3,
        "nothing cycled: {summary:?}"
    );
    assert_eq!(summary["messages_failed_transient"], 0, "{summary:?}");
    assert_eq!(summary["messages_failed_permanent"], 0, "{summary:?}");
    assert!(summary["visibility_extensions"] >= 1, "{summary:?}");
    assert_eq!(summary["documents_indexed"], expected, "{summary:?}");
    settled_exactly_once(&env, "bulk answered 401 for about 6 s", expected, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_receive_count_never_deletes_a_message_that_failed_transiently() {
    // No redrive policy, and --max-receive-count 1: a permanent failure would be deleted on
    // its first receive. S3 answers 503 (throttling): transient, so the message must stay.
    let env = TestEnv::with(
        "transient-keep",
        EnvOptions {
            visibility_timeout: Duration::from_secs(2),
            max_receive_count: 0,
            ..EnvOptions::default()
        },
    )
    .await;
    let proxy = FaultProxy::start(&standins().aws_url).await;
    proxy.set(Fault::Status {
        status: 503,
        path_contains: "x-id=GetObject".into(),
    });
    let expected = publish_objects(&env, "keep", 1, 50).await;

    let worker = env.spawn_through(&["--max-receive-count", "1"], None, Some(&proxy.url()));
    eventually("a failed GetObject", Duration::from_secs(30), || async {
        (proxy.faulted() >= 1).then_some(())
    })
    .await;
    // Let it fail on more than one receive before S3 recovers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set(Fault::None);
    let summary = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("the worker finishes once S3 answers")
        .unwrap();

    assert!(summary["messages_failed_transient"] >= 1, "{summary:?}");
    assert_eq!(summary["messages_given_up"], 0, "{summary:?}");
    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    settled_exactly_once(&env, "S3 503 with --max-receive-count 1", expected, 0).await;
}
