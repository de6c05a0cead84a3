//! End to end against the local stand-ins: SNS -> SQS -> worker -> S3 -> search cluster.
//! Every test has its own bucket, topic, queue, dead-letter queue and index prefix.

mod support;

use std::time::Duration;

use cloudtrail_ingest::sink::elasticsearch::{client as cluster, product, Distribution};
use serde_json::json;
use support::*;

/// All 38 Elastic records in one object: two eventIDs are shared by different records.
const COMBINED: &str = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/10/30/123456789012_CloudTrail_us-east-1_20241030T2030Z_ySRwAYukLwiNORzN.json.gz";
const INSIGHT: &str = "AWSLogs/123456789012/CloudTrail-Insight/us-east-1/2020/09/09/123456789012_CloudTrail-Insight_us-east-1_20200909T2300Z_i7JyAaXAeAUMmr5d.json.gz";
/// Pretty-printed AWS documentation log file, records without eventID.
const DOC_LOG: &str = "AWSLogs/123456789012/CloudTrail/us-east-2/2014/03/06/123456789012_CloudTrail_us-east-2_20140306T1710Z_z3l1uDlGhEyg19kR.json.gz";
/// Key with a space, a plus and an equals sign.
const ODD_KEY: &str = "ct logs+archive=1/AWSLogs/111122223333/CloudTrail/us-east-2/2014/07/16/111122223333_CloudTrail_us-east-2_20140716T1545Z_j1AfAurCzOMhBbnp.json.gz";
/// Real gzipped log file from an organization trail.
const ORG_TRAIL: &str = "AWSLogs/o-1234abcde/222222222222/CloudTrail/us-east-1/2025/03/06/222222222222_CloudTrail_us-east-1_20250306T0230Z_QF6qcgyiaVnSueXa.json.gz";
const DIGEST: &str = "AWSLogs/123456789123/CloudTrail-Digest/us-west-2/2020/09/11/123456789123_CloudTrail-Digest_us-west-2_leh-ct-test_us-west-2_20200911T193649Z.json.gz";

fn ids(key: &str) -> u64 {
    distinct_ids(&[key])
}

fn first_record(key: &str) -> serde_json::Value {
    records_of(&fixture_object(key)).swap_remove(0)
}

fn records(key: &str) -> u64 {
    records_of(&fixture_object(key)).len() as u64
}

fn s3_event(bucket: &str, records: &[(&str, &str)]) -> String {
    let records: Vec<_> = records
        .iter()
        .map(|(event, key)| {
            let encoded: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
            json!({
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2024-10-30T20:31:00.000Z", "eventName": event,
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                       "object": {"key": encoded.replace("%2F", "/"), "size": 1024}}
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

fn eventbridge_created(bucket: &str, key: &str) -> String {
    json!({
        "version": "0", "id": "f5f1e65c-dc3a-93ca-6c1e-b1647eac7963", "detail-type": "Object Created",
        "source": "aws.s3", "account": "123456789012", "time": "2024-10-30T20:31:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": 1024},
                   "reason": "PutObject"}
    })
    .to_string()
}

#[tokio::test]
async fn cloudtrail_notification_through_sns_is_indexed_and_deleted() {
    let env = TestEnv::new("sns-cloudtrail").await;
    env.put_fixture(COMBINED).await;
    env.publish(&env.cloudtrail_message(&[COMBINED])).await;

    let summary = env.run_until_idle(&[]).await;

    assert_eq!(summary["messages_received"], 1);
    assert_eq!(summary["messages_deleted"], 1);
    assert_eq!(summary["objects_read"], 1);
    assert_eq!(
        summary["documents_indexed"] + summary["documents_existing"],
        records(COMBINED)
    );
    assert_eq!(summary["documents_indexed"], ids(COMBINED));
    assert_eq!(env.total_documents().await, ids(COMBINED));
    assert_eq!(env.messages_left().await, 0);

    // The document is the record as written, plus @timestamp = eventTime, _id = eventID.
    let first = first_record(COMBINED);
    let id = first["eventID"].as_str().unwrap();
    let day = first["eventTime"].as_str().unwrap()[..10].replace('-', ".");
    let hits = env
        .search(
            reqwest::Method::POST,
            &format!("{}-*/_search", env.index_prefix),
            Some(json!({"query": {"ids": {"values": [id]}}})),
        )
        .await;
    let hit = &hits["hits"]["hits"][0];
    assert_eq!(
        hit["_index"],
        format!("{}-{day}", env.index_prefix),
        "{hits}"
    );
    let mut expected = first.clone();
    expected["@timestamp"] = first["eventTime"].clone();
    assert_eq!(hit["_source"], expected);
}

#[tokio::test]
async fn every_notification_shape_is_understood() {
    let env = TestEnv::new("shapes").await;
    for key in [COMBINED, INSIGHT, DOC_LOG, ODD_KEY, ORG_TRAIL, DIGEST] {
        env.put_fixture(key).await;
    }
    // CloudTrail's own notification, SNS envelope, several keys.
    env.publish(&env.cloudtrail_message(&[COMBINED, DOC_LOG]))
        .await;
    // CloudTrail notification for Insights logs.
    env.publish(&env.cloudtrail_message(&[INSIGHT])).await;
    // S3 event notification through SNS: form-URL-encoded key, every record, a delete skipped.
    env.publish(&s3_event(
        &env.bucket,
        &[
            ("ObjectCreated:Put", ODD_KEY),
            ("ObjectRemoved:Delete", COMBINED),
        ],
    ))
    .await;
    // S3 event notification straight to SQS, for a digest (skipped) and a real log.
    env.send_to_queue(&s3_event(
        &env.bucket,
        &[
            ("ObjectCreated:Put", DIGEST),
            ("ObjectCreated:Put", ORG_TRAIL),
        ],
    ))
    .await;
    // EventBridge "Object Created" straight to SQS.
    env.send_to_queue(&eventbridge_created(&env.bucket, COMBINED))
        .await;
    // s3:TestEvent, bare and through SNS.
    let test_event = std::fs::read_to_string(
        fixtures().join("conformance/notifications/s3-testevent/awsdocs-s3-testevent.json"),
    )
    .unwrap();
    env.send_to_queue(&test_event).await;
    env.publish(&test_event).await;

    let summary = env.run_until_idle(&[]).await;

    let expected = distinct_ids(&[COMBINED, INSIGHT, DOC_LOG, ODD_KEY, ORG_TRAIL]);
    assert_eq!(summary["messages_received"], 7);
    assert_eq!(summary["messages_deleted"], 7, "{summary:?}");
    assert_eq!(summary["messages_kept"], 0);
    assert_eq!(summary["keys_skipped"], 2, "one delete, one digest");
    assert_eq!(summary["objects_read"], 6);
    assert_eq!(env.total_documents().await, expected);
    assert_eq!(env.messages_left().await, 0);
}

#[tokio::test]
async fn raw_message_delivery_is_understood() {
    let env = TestEnv::with(
        "raw",
        EnvOptions {
            delivery: Delivery::Raw,
            ..EnvOptions::default()
        },
    )
    .await;
    env.put_fixture(ORG_TRAIL).await;
    env.publish(&env.cloudtrail_message(&[ORG_TRAIL])).await;

    let summary = env.run_until_idle(&[]).await;

    assert_eq!(summary["messages_deleted"], 1);
    assert_eq!(env.total_documents().await, ids(ORG_TRAIL));
}

#[tokio::test]
async fn bucket_notifications_to_the_queue_are_followed() {
    let env = TestEnv::new("bucket-events").await;
    env.notify_queue_of_new_objects().await;
    // The stand-in encodes keys as S3 does (and '/' too): the worker must decode them.
    env.put_fixture(ODD_KEY).await;

    let summary = env.run_until_idle(&[]).await;

    assert_eq!(summary["objects_read"], 1, "{summary:?}");
    assert_eq!(summary["messages_kept"], 0);
    assert_eq!(env.total_documents().await, ids(ODD_KEY));
    assert_eq!(env.messages_left().await, 0);
}

#[tokio::test]
async fn the_same_notification_twice_makes_no_duplicates() {
    let env = TestEnv::new("twice").await;
    env.put_fixture(COMBINED).await;
    env.publish(&env.cloudtrail_message(&[COMBINED])).await;
    env.publish(&env.cloudtrail_message(&[COMBINED])).await;

    let summary = env.run_until_idle(&[]).await;
    assert_eq!(summary["messages_deleted"], 2);
    assert_eq!(env.total_documents().await, ids(COMBINED));

    // And once more after everything was indexed: all 409, all done.
    env.publish(&env.cloudtrail_message(&[COMBINED])).await;
    let again = env.run_until_idle(&[]).await;
    assert_eq!(again["messages_deleted"], 1);
    assert_eq!(again["documents_indexed"], 0);
    assert_eq!(again["documents_existing"], records(COMBINED));
    assert_eq!(env.total_documents().await, ids(COMBINED));
}

#[tokio::test]
async fn an_object_spanning_midnight_feeds_two_daily_indices() {
    let env = TestEnv::new("midnight").await;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/31/123456789012_CloudTrail_us-east-1_20241231T2355Z_midnight.json.gz";
    env.put_object(
        key,
        log_object(&[
            ("a", "2024-12-31T23:59:58Z"),
            ("b", "2024-12-31T23:59:59Z"),
            ("c", "2025-01-01T00:00:00Z"),
            ("d", "2025-01-01T00:00:01Z"),
            ("e", "2025-01-01T00:03:00Z"),
        ]),
    )
    .await;
    env.publish(&env.cloudtrail_message(&[key])).await;

    env.run_until_idle(&[]).await;

    let counts = env.index_counts().await;
    let expected: std::collections::BTreeMap<String, u64> = [
        (format!("{}-2024.12.31", env.index_prefix), 2),
        (format!("{}-2025.01.01", env.index_prefix), 3),
    ]
    .into();
    assert_eq!(counts, expected);
}

#[tokio::test]
async fn an_empty_log_file_is_acknowledged() {
    let env = TestEnv::new("empty").await;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/10/30/empty.json.gz";
    env.put_object(key, gzip(br#"{"Records":[]}"#)).await;
    env.publish(&env.cloudtrail_message(&[key])).await;

    let summary = env.run_until_idle(&[]).await;

    assert_eq!(summary["messages_deleted"], 1);
    assert_eq!(summary["objects_read"], 1);
    assert_eq!(env.total_documents().await, 0);
    assert_eq!(env.messages_left().await, 0);
}

#[tokio::test]
async fn poison_messages_are_released_at_once_and_parked_by_redrive() {
    let env = TestEnv::with(
        "poison",
        EnvOptions {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 1,
            ..EnvOptions::default()
        },
    )
    .await;
    let corrupt = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/10/30/corrupt.json.gz";
    // A gzip header followed by data that is not deflate: nothing decodes.
    let mut body = gzip(&gunzip(&fixture_object(COMBINED)));
    for b in &mut body[10..200] {
        *b = 0xff;
    }
    env.put_object(corrupt, body).await;
    env.put_fixture(ORG_TRAIL).await;
    let missing = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/10/30/missing.json.gz";

    env.publish(&env.cloudtrail_message(&[corrupt])).await;
    env.publish(&env.cloudtrail_message(&[missing])).await;
    env.send_to_queue("This is a test message.").await;
    env.publish(&env.cloudtrail_message(&[ORG_TRAIL])).await;

    let first = env.run_until_idle(&[]).await;

    // The worker kept going: the good message is done; the three bad ones failed for good
    // and were released at once (visibility 0), not left for the 30 s visibility timeout.
    assert_eq!(first["messages_deleted"], 1, "{first:?}");
    assert_eq!(first["messages_released"], 3, "{first:?}");
    assert_eq!(first["objects_failed"], 2);
    assert_eq!(env.total_documents().await, ids(ORG_TRAIL));

    // Released, their next receive moves them to the DLQ (maxReceiveCount 1) well before
    // their visibility timeout would have passed.
    eventually(
        "the poison messages to reach the DLQ",
        Duration::from_secs(20),
        || async {
            let (dlq, _) = env.queue_depth(&env.dlq_url).await;
            if dlq < 3 {
                env.run_until_idle(&[]).await;
            }
            (dlq == 3).then_some(())
        },
    )
    .await;
    assert_eq!(env.messages_left().await, 0);
    assert_eq!(env.total_documents().await, ids(ORG_TRAIL));
}

#[tokio::test]
async fn without_redrive_max_receive_count_gives_up_on_poison() {
    let env = TestEnv::with(
        "giveup",
        EnvOptions {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 0,
            ..EnvOptions::default()
        },
    )
    .await;
    env.send_to_queue("This is a test message.").await;
    env.put_fixture(ORG_TRAIL).await;
    env.publish(&env.cloudtrail_message(&[ORG_TRAIL])).await;

    // Received, released, received again (count 2), deleted with an error line; the
    // second receive may fall into the same run or the next one.
    let (mut released, mut given_up, mut deleted) = (0, 0, 0);
    for _ in 0..5 {
        let summary = env.run_until_idle(&["--max-receive-count", "2"]).await;
        released += summary["messages_released"];
        given_up += summary["messages_given_up"];
        deleted += summary["messages_deleted"];
        if env.messages_left().await == 0 {
            break;
        }
    }
    assert_eq!((released, given_up, deleted), (1, 1, 2));
    assert_eq!(env.messages_left().await, 0);
    assert_eq!(env.total_documents().await, ids(ORG_TRAIL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_one_missing_object_is_kept_and_completes_later() {
    // No redrive policy: the failed message is released with a growing delay (2 s, 4 s, ...)
    // and the worker, which exits only once the queue is drained, waits for it.
    let env = TestEnv::with(
        "partial",
        EnvOptions {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 0,
            ..EnvOptions::default()
        },
    )
    .await;
    env.put_fixture(COMBINED).await;
    env.publish(&env.cloudtrail_message(&[COMBINED, ORG_TRAIL]))
        .await;

    let worker = env.spawn_until_idle(&[]);
    eventually(
        "the good object to be indexed",
        Duration::from_secs(30),
        || async { (env.total_documents().await == ids(COMBINED)).then_some(()) },
    )
    .await;
    assert_eq!(env.messages_left().await, 1, "the message is not deleted");

    // The missing object appears; the redelivered message completes without duplicates.
    env.put_fixture(ORG_TRAIL).await;
    let summary = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("the worker exits once the queue is drained")
        .unwrap();
    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    assert!(summary["messages_received"] >= 2, "{summary:?}");
    assert_eq!(
        summary["messages_kept"],
        summary["messages_received"] - 1,
        "{summary:?}"
    );
    assert_eq!(
        summary["messages_released"], summary["messages_kept"],
        "{summary:?}"
    );
    assert!(summary["objects_failed"] >= 1, "{summary:?}");
    assert_eq!(env.total_documents().await, ids(COMBINED) + ids(ORG_TRAIL));
    assert_eq!(env.messages_left().await, 0);
}

#[tokio::test]
async fn the_search_stand_in_is_detected_as_opensearch() {
    let config = <cloudtrail_ingest::config::Config as clap::Parser>::try_parse_from([
        "cloudtrail-ingest",
        "--queue-url",
        "http://127.0.0.1:1/q",
        "--elasticsearch-url",
        &standins().search_url,
    ])
    .unwrap();
    let client = cluster::connect(&config.shared.cluster, None).unwrap();
    let info = product::detect(&client, &standins().search_url)
        .await
        .unwrap();
    assert_eq!(info.distribution, Distribution::OpenSearch);
    assert!(info.version.starts_with("3."), "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_answered_429_are_retried_until_accepted() {
    let env = TestEnv::new("item-429").await;
    let index = format!("{}-2024.05.01", env.index_prefix);
    // A read-only-allow-delete block makes the cluster answer every item 429.
    env.search(
        reqwest::Method::PUT,
        &index,
        Some(json!({"settings": {"index.blocks.read_only_allow_delete": true}})),
    )
    .await;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/blocked.json.gz";
    env.put_object(
        key,
        log_object(&[
            ("r1", "2024-05-01T10:00:00Z"),
            ("r2", "2024-05-01T10:00:01Z"),
        ]),
    )
    .await;
    env.publish(&env.cloudtrail_message(&[key])).await;

    let listen = format!("127.0.0.1:{}", free_port());
    let worker = env.spawn_until_idle(&["--bulk-max-attempts", "10", "--metrics-listen", &listen]);
    wait_for_metric(&env, &listen, "cloudtrail_ingest_bulk_retries_total", 1.0).await;
    env.search(
        reqwest::Method::PUT,
        &format!("{index}/_settings"),
        Some(json!({"index.blocks.read_only_allow_delete": null})),
    )
    .await;
    let summary = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .unwrap()
        .unwrap();

    assert!(summary["bulk_retries"] >= 1, "{summary:?}");
    assert_eq!(summary["documents_indexed"], 2);
    assert_eq!(summary["messages_deleted"], 1);
    assert_eq!(env.count(&index).await, 2);
    assert_eq!(env.messages_left().await, 0);
}

/// Pre-creates `index` with a strict mapping that knows only eventID, so that every
/// CloudTrail record sent to it is rejected with 400 `strict_dynamic_mapping_exception`.
async fn strict_index(env: &TestEnv, index: &str) {
    env.search(
        reqwest::Method::PUT,
        index,
        Some(json!({"mappings": {"dynamic": "strict", "properties": {"eventID": {"type": "keyword"}}}})),
    )
    .await;
}

/// One message naming one object with an event on 2024-05-01 and one on 2024-05-02.
async fn publish_two_day_object(env: &TestEnv) -> &'static str {
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/strict.json.gz";
    env.put_object(
        key,
        log_object(&[
            ("s1", "2024-05-01T10:00:00Z"),
            ("s2", "2024-05-02T10:00:00Z"),
        ]),
    )
    .await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    key
}

#[tokio::test]
async fn a_rejected_document_goes_to_the_dead_letter_index_with_its_reason() {
    let env = TestEnv::new("deadletter").await;
    strict_index(&env, &format!("{}-2024.05.01", env.index_prefix)).await;
    let key = publish_two_day_object(&env).await;

    let summary = env.run_until_idle(&[]).await;

    assert_eq!(summary["documents_rejected"], 1, "{summary:?}");
    assert_eq!(summary["documents_dead_lettered"], 1, "{summary:?}");
    assert_eq!(summary["documents_indexed"], 1, "{summary:?}");
    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    assert_eq!(env.messages_left().await, 0);
    let dead_letter = format!("{}-dead-letter-2024.05.01", env.index_prefix);
    assert_eq!(
        env.index_counts().await,
        [
            (format!("{}-2024.05.01", env.index_prefix), 0),
            (format!("{}-2024.05.02", env.index_prefix), 1),
            (dead_letter.clone(), 1),
        ]
        .into_iter()
        .collect()
    );
    let hits = env
        .search(
            reqwest::Method::GET,
            &format!("{dead_letter}/_search"),
            None,
        )
        .await;
    let entry = &hits["hits"]["hits"][0];
    assert_eq!(entry["_id"], "s1");
    let entry = &entry["_source"];
    assert_eq!(entry["error"]["status"], 400);
    assert!(
        entry["error"]["type"].as_str().unwrap().contains("strict"),
        "{entry}"
    );
    assert!(!entry["error"]["reason"].as_str().unwrap().is_empty());
    assert_eq!(
        entry["target"]["index"],
        format!("{}-2024.05.01", env.index_prefix)
    );
    assert_eq!(entry["s3"]["bucket"], env.bucket.as_str());
    assert_eq!(entry["s3"]["key"], key);
    assert_eq!(entry["@timestamp"], "2024-05-01T10:00:00Z");
    let record: serde_json::Value =
        serde_json::from_str(entry["record"].as_str().unwrap()).unwrap();
    assert_eq!(record["eventID"], "s1");
    assert_eq!(record["eventName"], "ListBuckets");
}

#[tokio::test]
async fn a_record_with_invalid_json_inside_is_dead_lettered_and_the_rest_indexed() {
    let env = TestEnv::new("badjson").await;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/badjson.json.gz";
    // The splitter needs only balanced brackets and closed strings; a leading zero and a raw
    // control character inside values are for the cluster to refuse, record by record.
    let log = concat!(
        r#"{"Records":["#,
        r#"{"eventID":"j1","eventTime":"2024-05-01T10:00:00Z","eventName":"A"},"#,
        r#"{"eventID":"j2","eventTime":"2024-05-01T10:00:01Z","requestParameters":{"n":01}},"#,
        "{\"eventID\":\"j3\",\"eventTime\":\"2024-05-01T10:00:02Z\",\"eventName\":\"B\u{1}\"},",
        r#"{"eventID":"j4","eventTime":"2024-05-01T10:00:03Z","eventName":"C"}"#,
        "]}"
    );
    env.put_object(key, gzip(log.as_bytes())).await;
    env.publish(&env.cloudtrail_message(&[key])).await;

    let summary = env.run_until_idle(&[]).await;

    assert_eq!(summary["documents_indexed"], 2, "{summary:?}");
    assert_eq!(summary["documents_dead_lettered"], 2, "{summary:?}");
    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    assert_eq!(env.messages_left().await, 0);
    let dead_letter = format!("{}-dead-letter-2024.05.01", env.index_prefix);
    assert_eq!(
        env.index_counts().await,
        [
            (format!("{}-2024.05.01", env.index_prefix), 2),
            (dead_letter.clone(), 2),
        ]
        .into_iter()
        .collect()
    );
    let hits = env
        .search(
            reqwest::Method::GET,
            &format!("{dead_letter}/_search?sort=_id"),
            None,
        )
        .await;
    for (hit, id) in hits["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["j2", "j3"])
    {
        assert_eq!(hit["_id"], id);
        assert_eq!(hit["_source"]["error"]["status"], 400, "{hit}");
        assert!(
            hit["_source"]["record"].as_str().unwrap().contains(id),
            "the record is kept as sent: {hit}"
        );
    }
}

#[tokio::test]
async fn with_dead_lettering_off_a_rejected_document_keeps_its_message() {
    let env = TestEnv::new("rejected").await;
    strict_index(&env, &format!("{}-2024.05.01", env.index_prefix)).await;
    publish_two_day_object(&env).await;

    let summary = env.run_until_idle(&["--no-dead-letter"]).await;

    // Received three times (the redrive policy's maxReceiveCount), refused each time, and
    // parked in the DLQ by redrive: kept, never deleted.
    assert_eq!(summary["messages_received"], 3, "{summary:?}");
    assert_eq!(summary["documents_rejected"], 3, "{summary:?}");
    assert_eq!(summary["documents_dead_lettered"], 0);
    assert_eq!(
        summary["documents_indexed"], 1,
        "the other day's index accepts its document"
    );
    assert_eq!(summary["messages_deleted"], 0);
    assert_eq!(summary["messages_kept"], 3);
    assert_eq!(env.messages_left().await, 0);
    assert_eq!(env.queue_depth(&env.dlq_url).await.0, 1);
}

#[tokio::test]
async fn a_failed_dead_letter_write_keeps_the_message() {
    let env = TestEnv::new("dlfail").await;
    strict_index(&env, &format!("{}-2024.05.01", env.index_prefix)).await;
    // The dead-letter index refuses its entry too: nothing may be acknowledged.
    env.search(
        reqwest::Method::PUT,
        &format!("{}-dead-letter-2024.05.01", env.index_prefix),
        Some(json!({"mappings": {"dynamic": "strict", "properties": {}}})),
    )
    .await;
    publish_two_day_object(&env).await;

    let summary = env.run_until_idle(&[]).await;

    // Refused on each of its three receives, then parked in the DLQ by redrive.
    assert_eq!(summary["messages_received"], 3, "{summary:?}");
    assert_eq!(summary["documents_rejected"], 3, "{summary:?}");
    assert_eq!(summary["dead_letter_failures"], 3, "{summary:?}");
    assert_eq!(summary["documents_dead_lettered"], 0);
    assert_eq!(summary["messages_deleted"], 0);
    assert_eq!(summary["messages_kept"], 3);
    assert_eq!(env.messages_left().await, 0);
    assert_eq!(env.queue_depth(&env.dlq_url).await.0, 1);
}

/// A metric's value in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_endpoint_reports_what_was_ingested() {
    let env = TestEnv::new("metrics").await;
    env.put_fixture(ORG_TRAIL).await;
    env.publish(&env.cloudtrail_message(&[ORG_TRAIL])).await;
    env.send_to_queue("This is a test message.").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let config = <cloudtrail_ingest::config::Config as clap::Parser>::try_parse_from(
        env.args(&["--metrics-listen", &listen]),
    )
    .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = {
        let stop = stop.clone();
        tokio::spawn(async move { support::run_config(&config, stop).await })
    };
    let base = format!("http://{listen}");
    let expected = ids(ORG_TRAIL) as f64;
    let text = eventually("the counters to settle", Duration::from_secs(30), || {
        let url = format!("{base}/metrics");
        let http = env.http.clone();
        async move {
            let text = http.get(url).send().await.ok()?.text().await.ok()?;
            (metric(&text, "cloudtrail_ingest_documents_indexed_total") == Some(expected)
                && metric(&text, "cloudtrail_ingest_messages_deleted_total") == Some(1.0)
                && metric(&text, "cloudtrail_ingest_messages_failed_permanent_total") >= Some(1.0))
            .then_some(text)
        }
    })
    .await;
    let size = fixture_object(ORG_TRAIL).len() as f64;
    assert_eq!(
        metric(&text, "cloudtrail_ingest_objects_read_total"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "cloudtrail_ingest_bytes_read_total"),
        Some(size)
    );
    assert_eq!(
        metric(&text, "cloudtrail_ingest_documents_rejected_total"),
        Some(0.0)
    );
    assert!(metric(&text, "cloudtrail_ingest_messages_received_total") >= Some(2.0));
    assert!(metric(&text, "cloudtrail_ingest_bulk_latency_seconds_count") >= Some(1.0));
    assert!(
        metric(&text, "cloudtrail_ingest_lag_seconds") > Some(0.0),
        "{text}"
    );
    assert_eq!(metric(&text, "cloudtrail_ingest_ready"), Some(1.0));
    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/nothing", 404)] {
        let response = env.http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
    }
    stop.cancel();
    let summary = worker.await.unwrap().unwrap().summary;
    assert_eq!(summary["documents_indexed"] as f64, expected);
}

#[tokio::test]
async fn gzipped_bulk_bodies_are_indexed() {
    let env = TestEnv::new("gzipbulk").await;
    env.put_fixture(COMBINED).await;
    env.publish(&env.cloudtrail_message(&[COMBINED])).await;

    let summary = env.run_until_idle(&["--bulk-compression", "gzip"]).await;

    assert_eq!(summary["documents_rejected"], 0, "{summary:?}");
    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    assert_eq!(env.total_documents().await, ids(COMBINED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redrive_a_poison_message_is_released_with_a_growing_delay() {
    let env = TestEnv::with(
        "backoff",
        EnvOptions {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 0,
            ..EnvOptions::default()
        },
    )
    .await;
    env.send_to_queue("This is a test message.").await;

    let stop = tokio_util::sync::CancellationToken::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let worker = env.spawn_until_stopped(&["--metrics-listen", &listen], stop.clone());
    wait_for_metric(
        &env,
        &listen,
        "cloudtrail_ingest_messages_released_total",
        2.0,
    )
    .await;
    stop.cancel();
    let summary = worker.await.unwrap();

    // Released after 2 s, then 4 s: received twice by the time of the second release (the
    // third receive waits 4 s more). Released at once, it would have been received many
    // times by then.
    assert_eq!(summary["messages_received"], 2, "{summary:?}");
    assert_eq!(
        summary["messages_released"], summary["messages_received"],
        "{summary:?}"
    );
    assert_eq!(summary["messages_deleted"], 0);
    let (visible, in_flight) = env.queue_depth(&env.queue_url).await;
    assert_eq!(
        (visible, in_flight),
        (0, 1),
        "waiting out its release delay"
    );
}

#[tokio::test]
async fn exit_when_idle_exits_soon_after_the_queue_drains() {
    let env = TestEnv::new("idle-exit").await;
    env.put_fixture(ORG_TRAIL).await;
    env.publish(&env.cloudtrail_message(&[ORG_TRAIL])).await;

    // The full 20 s long poll, as in production.
    let mut args = env.args(&["--exit-when-idle"]);
    set_arg(&mut args, "--receive-wait", "20s");
    let started = std::time::Instant::now();
    let summary = tokio::time::timeout(Duration::from_secs(60), spawn_with_args(args))
        .await
        .expect("the worker exits")
        .unwrap();
    let took = started.elapsed();

    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    assert_eq!(env.messages_left().await, 0);
    // Not a speed target: waiting out the 20 s poll would take more than 20 s.
    assert!(took < Duration::from_secs(12), "took {took:?}");
}

#[tokio::test]
async fn exit_when_idle_waits_for_messages_invisible_to_it() {
    let env = TestEnv::new("idle-wait").await;
    env.put_fixture(ORG_TRAIL).await;
    env.publish(&env.cloudtrail_message(&[ORG_TRAIL])).await;
    // Another consumer holds the message for 3 s without deleting it.
    let held = eventually(
        "the message to be held",
        Duration::from_secs(10),
        || async {
            let out = env
                .sqs
                .receive_message()
                .queue_url(&env.queue_url)
                .visibility_timeout(3)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            out.messages.filter(|m| !m.is_empty())
        },
    )
    .await;
    assert_eq!(held.len(), 1);

    let summary = env.run_until_idle(&[]).await;

    assert_eq!(summary["messages_received"], 1, "{summary:?}");
    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    assert_eq!(env.total_documents().await, ids(ORG_TRAIL));
    assert_eq!(env.messages_left().await, 0);
}

#[tokio::test]
async fn notifications_of_other_services_are_deleted_as_ignored_not_parked() {
    let env = TestEnv::with(
        "ignored",
        EnvOptions {
            max_receive_count: 1,
            ..EnvOptions::default()
        },
    )
    .await;
    // AWS Config shares the trail's topic: its delivery notification carries `s3Bucket` and a
    // single `s3ObjectKey` string (fields as in the AWS Config Developer Guide's "Example
    // Configuration Snapshot Delivery Notification").
    let config = json!({
        "configSnapshotId": "16da64e4-cb65-4846-b061-e6c3ba43cb96",
        "s3ObjectKey": "AWSLogs/123456789012/Config/us-east-2/2016/9/27/ConfigSnapshot/123456789012_Config_us-east-2_ConfigSnapshot_20160927T183939Z_16da64e4-cb65-4846-b061-e6c3ba43cb96.json.gz",
        "s3Bucket": "config-bucket-123456789012-ohio",
        "notificationCreationTime": "2016-09-27T18:39:39.853Z",
        "messageType": "ConfigurationSnapshotDeliveryCompleted",
        "recordVersion": "1.1"
    });
    env.publish(&config.to_string()).await;
    env.send_to_queue(
        &json!({"Type": "SubscriptionConfirmation", "TopicArn": env.topic_arn, "Token": "t",
                "Message": "You have chosen to subscribe to the topic"})
        .to_string(),
    )
    .await;
    env.put_fixture(ORG_TRAIL).await;
    env.publish(&env.cloudtrail_message(&[ORG_TRAIL])).await;

    let summary = env.run_until_idle(&[]).await;

    assert_eq!(summary["messages_ignored"], 2, "{summary:?}");
    assert_eq!(summary["messages_deleted"], 3, "{summary:?}");
    assert_eq!(summary["messages_failed_permanent"], 0, "{summary:?}");
    assert_eq!(env.total_documents().await, ids(ORG_TRAIL));
    assert_eq!(env.messages_left().await, 0);
    assert_eq!(
        env.queue_depth(&env.dlq_url).await,
        (0, 0),
        "nothing parked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_indexer_stops_the_worker_with_an_error_and_keeps_the_message() {
    use cloudtrail_ingest::runtime::{run_with_sink, RunError};
    use cloudtrail_ingest::source::sqs::{Clients, Sqs};
    let env = TestEnv::new("dead-indexer").await;
    env.put_fixture(ORG_TRAIL).await;
    env.publish(&env.cloudtrail_message(&[ORG_TRAIL])).await;
    let config = <cloudtrail_ingest::config::Config as clap::Parser>::try_parse_from(
        env.args(&["--exit-when-idle"]),
    )
    .unwrap();
    let aws = aws_config();
    let clients = Clients::new(&aws, &config);
    let cluster =
        cloudtrail_ingest::sink::elasticsearch::client::connect(&config.shared.cluster, Some(&aws))
            .unwrap();
    // A sink whose indexing task dies on its first event, holding it.
    let sink = |_stats, _: &[_]| {
        let (events, mut receiver) = cloudtrail_ingest::pipeline::channel(16, 1 << 20);
        let indexer = tokio::spawn(async move {
            let _held = receiver.recv().await;
            panic!("the indexer dies");
        });
        (events, indexer)
    };

    let result = tokio::time::timeout(
        Duration::from_secs(60),
        run_with_sink(
            &config.shared,
            Sqs::with_clients(&config, clients),
            cluster,
            tokio_util::sync::CancellationToken::new(),
            sink,
        ),
    )
    .await
    .expect("the worker stops instead of stalling");

    let err = result.expect_err("a dead indexer is an error");
    assert!(matches!(err, RunError::Indexer(_)), "{err}");
    assert_eq!(env.messages_left().await, 1, "the message is not deleted");
    assert_eq!(env.total_documents().await, 0);
}

/// A worker stopped while its long poll is open finishes that poll and makes what it
/// brings visible again at once: the next worker has the messages without waiting for their
/// visibility timeout (30 s here; minutes on a CloudTrail queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_strands_no_message_sent_while_it_stops() {
    let env = TestEnv::new("strand").await;
    let keys: Vec<String> = (0..3)
        .map(|n| format!("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/strand-{n}.json.gz"))
        .collect();
    for (n, key) in keys.iter().enumerate() {
        let id = format!("strand-{n}");
        env.put_object(key, log_object(&[(&id, "2026-12-01T10:00:00Z")]))
            .await;
    }
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = env.args(&["--metrics-listen", &listen]);
    set_arg(&mut args, "--receive-wait", "10s");
    let config = <cloudtrail_ingest::config::Config as clap::Parser>::try_parse_from(args).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = {
        let stop = stop.clone();
        tokio::spawn(async move { run_config(&config, stop).await })
    };
    eventually("the worker ready", Duration::from_secs(30), || async {
        let url = format!("http://{listen}/readyz");
        let ready = env.http.get(url).send().await.ok()?.status().is_success();
        ready.then_some(())
    })
    .await;

    // Stop while the (empty) long poll is open, then publish: that poll may get them.
    stop.cancel();
    for key in &keys {
        env.publish(&env.cloudtrail_message(&[key])).await;
    }
    let summary = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the worker stops within its poll")
        .unwrap()
        .expect("the worker runs")
        .summary;
    let returned = summary["messages_returned"];
    let (visible, in_flight) = env.queue_depth(&env.queue_url).await;
    assert_eq!((visible, in_flight), (3, 0), "{summary:?}");

    let next = std::time::Instant::now();
    let summary = env.run_until_idle(&[]).await;
    eprintln!(
        "the stopping worker returned {returned} message(s); the next worker had all 3 indexed {:?} after it stopped",
        next.elapsed()
    );
    assert_eq!(summary["messages_deleted"], 3);
    assert_eq!(env.total_documents().await, 3);
}

/// Waits (up to 60 s) until the worker's `/metrics` on `listen` shows `name` at `at_least`.
async fn wait_for_metric(env: &TestEnv, listen: &str, name: &str, at_least: f64) {
    eventually(name, Duration::from_secs(60), || async {
        let url = format!("http://{listen}/metrics");
        let text = env.http.get(url).send().await.ok()?.text().await.ok()?;
        (metric(&text, name) >= Some(at_least)).then_some(())
    })
    .await;
}

/// CloudTrail events that EventBridge puts in the queue itself, raw and through SNS, are
/// indexed as their copies from an S3 log are: one document per `eventID` whichever copy
/// arrives first, in the same daily index; a burst of them goes out in a few bulk requests,
/// not one per message.
#[tokio::test]
async fn eventbridge_cloudtrail_events_are_indexed_once_beside_their_s3_copy() {
    let env = TestEnv::new("eventbridge").await;
    let day = "2024-05-03T10:00:00Z";
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/03/123456789012_CloudTrail_us-east-1_20240503T1005Z_eventbridge.json.gz";
    env.put_object(key, log_object(&[("eb-s3-1", day), ("eb-s3-2", day)]))
        .await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    let api_call = "AWS API Call via CloudTrail";
    // The log's first record again, as EventBridge delivers it within seconds.
    env.send_to_queue(&eventbridge_event(&record("eb-s3-1", day), api_call))
        .await;
    // One through the SNS topic, and a burst straight to the queue.
    let sign_in = record("eb-sns", day);
    env.publish(&eventbridge_event(
        &sign_in,
        "AWS Console Sign In via CloudTrail",
    ))
    .await;
    for n in 0..10 {
        let event = eventbridge_event(&record(&format!("eb-{n}"), day), api_call);
        env.send_to_queue(&event).await;
    }

    let summary = env.run_until_idle(&[]).await;
    assert_eq!(summary["messages_inline"], 12);
    assert_eq!(summary["messages_deleted"], 13);
    assert_eq!(summary["objects_read"], 1);
    assert_eq!(summary["messages_ignored"], 0);
    assert_eq!(summary["documents_indexed"], 13);
    assert_eq!(
        summary["documents_existing"], 1,
        "the second copy of eb-s3-1"
    );
    assert!(
        summary["bulk_requests"] * 3 <= summary["messages_inline"],
        "{} bulk requests for {} inline events",
        summary["bulk_requests"],
        summary["messages_inline"]
    );
    let index = format!("{}-2024.05.03", env.index_prefix);
    assert_eq!(env.count(&index).await, 13);

    // The document is the record, with `@timestamp` from its `eventTime`.
    let stored = env
        .search(reqwest::Method::GET, &format!("{index}/_doc/eb-sns"), None)
        .await;
    let mut source = stored["_source"].clone();
    assert_eq!(source["@timestamp"], day);
    source.as_object_mut().unwrap().remove("@timestamp");
    assert_eq!(source, sign_in);
    assert_eq!(env.messages_left().await, 0);
}
