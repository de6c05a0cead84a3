//! Detection end to end against the stand-ins: the shipped rules on a CloudTrail log that
//! the queue announces, alerts in `<prefix>-alerts-*` once however often the log is
//! redelivered, the message deleted only after its alerts are indexed, and rules that cannot
//! be used reported (or, with `--rules-strict`, stopping the start).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Parser;
use cloudtrail_ingest::config::Config;
use cloudtrail_ingest::detect::{load, Detector, Level};
use cloudtrail_ingest::format::cloudtrail::split::OwnedRecord;
use cloudtrail_ingest::format::cloudtrail::{event, FreeForm, Options};
use serde_json::{json, Value};
use support::*;

fn rules_dir() -> String {
    format!("{}/rules", env!("CARGO_MANIFEST_DIR"))
}

/// The `match` records of a rule's fixture file.
fn targets(stem: &str) -> Vec<Value> {
    let path = fixtures()
        .join("detect/cloudtrail")
        .join(format!("{stem}.json"));
    let cases: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    cases["match"].as_array().unwrap().clone()
}

/// A gzipped CloudTrail log of `records`.
fn log_of(records: &[Value]) -> Vec<u8> {
    gzip(&serde_json::to_vec(&json!({ "Records": records })).unwrap())
}

/// The (rule id, event id) pairs the shipped rules raise on `records`, computed here.
fn expected_alerts(records: &[Value]) -> BTreeSet<(String, String)> {
    let (loaded, _) = load::load(&[rules_dir().into()]).unwrap();
    let (detector, _) = Detector::new(loaded, Level::Informational);
    let mut out = BTreeSet::new();
    for record in records {
        let bytes = serde_json::to_vec(record).unwrap();
        let record = OwnedRecord::parse(&bytes).unwrap();
        let event = event::build(
            record.as_record(),
            &Options {
                free_form: FreeForm::Objects,
            },
            None,
        )
        .unwrap();
        for n in detector.examine(&event) {
            out.insert((detector.rules()[n].id.clone(), event.id.clone()));
        }
    }
    out
}

#[tokio::test]
async fn alerts_are_indexed_once_however_often_the_log_comes() {
    let env = TestEnv::new("alerts").await;
    let mut records = Vec::new();
    for stem in [
        "aws_cloudtrail_logging_stopped_or_trail_deleted",
        "aws_root_account_used",
        "aws_console_login_without_mfa",
    ] {
        records.extend(targets(stem));
    }
    let quiet = records.len();
    records.extend(records_of(&log_object(&[
        ("quiet-1", "2026-12-01T10:00:00Z"),
        ("quiet-2", "2026-12-01T10:00:01Z"),
    ])));
    let expected = expected_alerts(&records);
    assert!(
        expected.len() >= quiet,
        "every target raises an alert: {expected:?}"
    );

    let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/alerts.json.gz";
    env.put_object(key, log_of(&records)).await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    let rules = rules_dir();
    let args = ["--rules", rules.as_str()];
    let summary = env.run_until_idle(&args).await;
    assert_eq!(summary.messages_deleted, 2);
    // The worker exits only after every message was acknowledged, and a message is
    // acknowledged only once its alerts are indexed: they are all there now.
    let alerts_pattern = format!("{}-alerts-*", env.index_prefix);
    let counts = env.counts_matching(&alerts_pattern).await;
    assert_eq!(
        counts.values().sum::<u64>(),
        expected.len() as u64,
        "{counts:?}"
    );
    assert_eq!(
        summary.alerts_indexed + summary.alerts_existing,
        2 * expected.len() as u64
    );
    assert_eq!(
        summary.documents_indexed,
        records.len() as u64,
        "alerts are counted apart"
    );

    let found = env
        .search(
            reqwest::Method::POST,
            &format!("{alerts_pattern}/_search"),
            Some(json!({"size": 100})),
        )
        .await;
    let hits = found["hits"]["hits"].as_array().unwrap();
    let mut seen = BTreeSet::new();
    for hit in hits {
        let alert = &hit["_source"];
        let (rule, event) = (
            alert["rule"]["id"].as_str().unwrap().to_string(),
            alert["event"]["id"].as_str().unwrap().to_string(),
        );
        assert_eq!(hit["_id"], format!("{rule}:{event}"));
        assert_eq!(alert["kind"], "match");
        assert!(alert["text"].as_str().unwrap().starts_with('['), "{alert}");
        assert!(alert["detected_at"].is_string());
        let index = alert["event"]["index"].as_str().unwrap();
        assert!(
            index.starts_with(&format!("{}-20", env.index_prefix)),
            "{index}"
        );
        assert_eq!(
            alert["@timestamp"].as_str().unwrap()[..10],
            index[index.len() - 10..].replace('.', "-")
        );
        seen.insert((rule, event));
    }
    assert_eq!(seen, expected);

    // Once more, long after: every alert is already there.
    env.publish(&env.cloudtrail_message(&[key])).await;
    let again = env.run_until_idle(&args).await;
    assert_eq!(again.alerts_indexed, 0);
    assert_eq!(again.alerts_existing, expected.len() as u64);
    assert_eq!(
        env.counts_matching(&alerts_pattern)
            .await
            .values()
            .sum::<u64>(),
        expected.len() as u64
    );
}

#[tokio::test]
async fn a_rule_that_cannot_be_used_is_left_out_or_with_strict_stops_the_start() {
    let env = TestEnv::new("badrule").await;
    let dir = std::env::temp_dir().join(format!("ct-rules-{}", env.index_prefix));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("good.yml"),
        "title: any ListBuckets\nid: good-1\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n    s: {eventName: ListBuckets}\n    condition: s\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bad.yml"),
        "title: bad\ndetection:\n    s: {eventName|expand: '%x%'}\n    condition: s\n",
    )
    .unwrap();
    let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/one.json.gz";
    env.put_object(key, log_object(&[("only-1", "2026-12-01T10:00:00Z")]))
        .await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    let rules = dir.display().to_string();

    let strict = Config::try_parse_from(env.args(&["--rules", &rules, "--rules-strict"])).unwrap();
    let clients = cloudtrail_ingest::source::sqs::Clients::new(&aws_config(), &strict).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        cloudtrail_ingest::source::sqs::run(&strict, clients, stop),
    )
    .await
    .expect("the start fails at once")
    .unwrap_err()
    .to_string();
    assert!(err.contains("bad.yml") && err.contains("expand"), "{err}");
    assert_eq!(env.messages_left().await, 1, "nothing was received");

    let summary = env.run_until_idle(&["--rules", &rules]).await;
    assert_eq!(summary.messages_deleted, 1);
    assert_eq!(summary.alerts_indexed, 1, "the good rule still runs");
    std::fs::remove_dir_all(dir).unwrap();
}
