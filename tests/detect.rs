//! Detection end to end against the stand-ins: the shipped rules on a CloudTrail log that
//! the queue announces, alerts in `<prefix>-alerts-*` once however often the log is
//! redelivered, the message deleted only after its alerts are indexed, rules that cannot be
//! used reported (or, with `--rules-strict`, stopping the start), new alerts delivered to a
//! local webhook receiver that fails at first, and the silence alarm and its resolve.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use cloudtrail_ingest::config::Config;
use cloudtrail_ingest::detect::{load, Detector, Level};
use cloudtrail_ingest::format::cloudtrail::{record_event, FreeForm, Options};
use serde_json::{json, Value};
use support::*;

fn rules_dir() -> String {
    format!("{}/rules/detection", env!("CARGO_MANIFEST_DIR"))
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
        let options = Options {
            free_form: FreeForm::Objects,
        };
        let event = record_event(&bytes, &options, None).unwrap();
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
    assert_eq!(summary["messages_deleted"], 2);
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
        summary["alerts_indexed"] + summary["alerts_existing"],
        2 * expected.len() as u64
    );
    assert_eq!(
        summary["documents_indexed"],
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
    assert_eq!(again["alerts_indexed"], 0);
    assert_eq!(again["alerts_existing"], expected.len() as u64);
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
    let stop = tokio_util::sync::CancellationToken::new();
    let err = tokio::time::timeout(Duration::from_secs(30), support::run_config(&strict, stop))
        .await
        .expect("the start fails at once")
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.yml") && err.contains("expand"), "{err}");
    assert_eq!(env.messages_left().await, 1, "nothing was received");

    let summary = env.run_until_idle(&["--rules", &rules]).await;
    assert_eq!(summary["messages_deleted"], 1);
    assert_eq!(summary["alerts_indexed"], 1, "the good rule still runs");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A webhook receiver on 127.0.0.1: answers 503 to its first `failures` requests, then 200,
/// and keeps the bodies it accepted.
struct Receiver {
    url: String,
    accepted: Arc<Mutex<Vec<Value>>>,
    requests: Arc<Mutex<u64>>,
}

impl Receiver {
    async fn start(failures: u64) -> Receiver {
        use http_body_util::{BodyExt, Full};
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hooks/T0001/B0002/s3cr3tt0ken",
            listener.local_addr().unwrap()
        );
        let accepted: Arc<Mutex<Vec<Value>>> = Arc::default();
        let requests: Arc<Mutex<u64>> = Arc::default();
        let (accepted_by, counted_by) = (accepted.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (accepted, requests) = (accepted_by.clone(), counted_by.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let (accepted, requests) = (accepted.clone(), requests.clone());
                            async move {
                                assert_eq!(request.method(), hyper::Method::POST);
                                assert_eq!(request.uri().path(), "/hooks/T0001/B0002/s3cr3tt0ken");
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let n = {
                                    let mut requests = requests.lock().unwrap();
                                    *requests += 1;
                                    *requests
                                };
                                let status = if n <= failures {
                                    503
                                } else {
                                    accepted
                                        .lock()
                                        .unwrap()
                                        .push(serde_json::from_slice(&body).unwrap());
                                    200
                                };
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .body(Full::new(bytes::Bytes::from_static(b"ok")))
                                        .unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            url,
            accepted,
            requests,
        }
    }

    fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn new_alerts_are_delivered_to_the_webhook_with_retries_and_only_once() {
    let env = TestEnv::new("hook").await;
    let mut records = targets("aws_cloudtrail_logging_stopped_or_trail_deleted");
    records.extend(targets("aws_guardduty_disabled"));
    let expected = expected_alerts(&records);
    let receiver = Receiver::start(2).await;
    let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/hook.json.gz";
    env.put_object(key, log_of(&records)).await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    let rules = rules_dir();
    let args = [
        "--rules",
        rules.as_str(),
        "--alert-webhook",
        receiver.url.as_str(),
    ];
    // Retries go on while the worker runs: it runs until the receiver has every alert.
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = env.spawn_until_stopped(&args, stop.clone());
    eventually("every alert delivered", Duration::from_secs(60), || async {
        (receiver.accepted().len() >= expected.len()).then_some(())
    })
    .await;
    stop.cancel();
    let summary = worker.await.unwrap();

    let accepted = receiver.accepted();
    let delivered: BTreeSet<(String, String)> = accepted
        .iter()
        .map(|alert| {
            assert!(alert["text"].as_str().unwrap().starts_with('['), "{alert}");
            assert_eq!(alert["kind"], "match");
            (
                alert["rule"]["id"].as_str().unwrap().to_string(),
                alert["event"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        delivered,
        expected,
        "every new alert, after the receiver's two failures ({} of {}; {summary:?})",
        delivered.len(),
        expected.len()
    );
    assert_eq!(accepted.len(), expected.len(), "each once");
    assert_eq!(summary["alert_webhook_delivered"], expected.len() as u64);
    assert_eq!(summary["alert_webhook_retried"], 2);
    assert_eq!(
        summary["alert_webhook_failed"] + summary["alert_webhook_dropped"],
        0
    );
    assert_eq!(
        *receiver.requests.lock().unwrap(),
        expected.len() as u64 + 2
    );

    // The log again: its alerts exist already, so nothing is delivered twice.
    env.publish(&env.cloudtrail_message(&[key])).await;
    let again = env.run_until_idle(&args).await;
    assert_eq!(again["alerts_existing"], expected.len() as u64);
    assert_eq!(again["alert_webhook_delivered"], 0);
    assert_eq!(receiver.accepted().len(), expected.len());
}

/// The `kind` of each alert in the test's alerts indices, oldest first.
async fn alert_kinds(env: &TestEnv) -> Vec<String> {
    let pattern = format!("{}-alerts-*", env.index_prefix);
    env.search(reqwest::Method::POST, &format!("{pattern}/_refresh"), None)
        .await;
    let found = env
        .search(
            reqwest::Method::POST,
            &format!("{pattern}/_search"),
            Some(json!({"size": 10, "sort": [{"@timestamp": "asc"}]})),
        )
        .await;
    found["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|hit| {
            hit["_source"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn silence_raises_one_alert_and_events_resolve_it() {
    let env = TestEnv::new("silence").await;
    let receiver = Receiver::start(0).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = env.spawn_until_stopped(
        &[
            "--alert-if-silent",
            "2s",
            "--alert-webhook",
            receiver.url.as_str(),
        ],
        stop.clone(),
    );
    eventually("the silence alert", Duration::from_secs(30), || async {
        let kinds = alert_kinds(&env).await;
        (kinds == ["silence"]).then_some(())
    })
    .await;
    // Still silent: no second alarm.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alert_kinds(&env).await, ["silence"]);

    let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/after.json.gz";
    env.put_object(key, log_object(&[("late-1", "2026-12-01T10:00:00Z")]))
        .await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    eventually("the resumed alert", Duration::from_secs(30), || async {
        let kinds = alert_kinds(&env).await;
        (kinds.len() == 2).then_some(kinds)
    })
    .await;
    stop.cancel();
    let summary = worker.await.unwrap();
    assert_eq!(summary["documents_indexed"], 1);
    assert_eq!(summary["alerts_indexed"], 2);
    let mut kinds = alert_kinds(&env).await;
    kinds.sort();
    assert_eq!(kinds, ["resumed", "silence"]);
    let delivered: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|alert| alert["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered, ["silence", "resumed"]);
    let silence = &receiver.accepted()[0];
    assert_eq!(silence["rule"]["level"], "high");
    assert!(
        silence["text"]
            .as_str()
            .unwrap()
            .contains("No events indexed for 2s"),
        "{silence}"
    );
}

/// The time from EventBridge putting a CloudTrail event in the queue to its alert being
/// searchable, with the worker running: reported, not asserted (the machine is shared). Each
/// event is sent alone and waited for, with the default `--bulk-linger` (200ms) and with
/// 20ms; what sets the figure is the long poll (it returns as the message arrives), the bulk
/// linger, and on a real cluster its refresh interval (this stand-in searches at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_event_to_searchable_alert_latency() {
    const EVENTS: usize = 5;
    let env = TestEnv::new("latency").await;
    let alerts = format!("{}-alerts-2024.05.04", env.index_prefix);
    for linger in ["200ms", "20ms"] {
        let stop = tokio_util::sync::CancellationToken::new();
        let rules = rules_dir();
        let mut args = env.args(&["--rules", &rules]);
        set_arg(&mut args, "--bulk-linger", linger);
        let worker = spawn_with_aws(args, aws_config(), stop.clone());
        let mut took = Vec::new();
        for n in 0..EVENTS {
            let mut root = record(&format!("root-{linger}-{n}"), "2024-05-04T08:00:00Z");
            root["userIdentity"] = json!({"type": "Root", "principalId": "123456789012", "arn": "arn:aws:iam::123456789012:root", "accountId": "123456789012"});
            root["eventName"] = json!("ConsoleLogin");
            root["eventSource"] = json!("signin.amazonaws.com");
            let expected = expected_alerts(std::slice::from_ref(&root));
            let (rule, id) = expected.first().expect("the root rule fires").clone();
            let sent = std::time::Instant::now();
            env.send_to_queue(&eventbridge_event(
                &root,
                "AWS Console Sign In via CloudTrail",
            ))
            .await;
            // Searched every 10 ms: `eventually`'s 100 ms would blur the figure.
            let query = json!({"query": {"ids": {"values": [format!("{rule}:{id}")]}}});
            loop {
                let found = env
                    .search(
                        reqwest::Method::POST,
                        &format!("{alerts}/_search"),
                        Some(query.clone()),
                    )
                    .await;
                if found["hits"]["hits"].as_array().map_or(0, Vec::len) == 1 {
                    break;
                }
                assert!(
                    sent.elapsed() < Duration::from_secs(30),
                    "no alert for {id}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            took.push(sent.elapsed());
        }
        stop.cancel();
        let summary = worker.await.unwrap();
        assert_eq!(summary["messages_inline"], EVENTS as u64);
        assert_eq!(summary["alerts_indexed"], EVENTS as u64);
        took.sort();
        println!(
            "EventBridge message sent -> alert searchable, --bulk-linger {linger}: median {} ms, min {} ms, max {} ms over {EVENTS} events",
            took[EVENTS / 2].as_millis(),
            took[0].as_millis(),
            took[EVENTS - 1].as_millis()
        );
    }
}

#[tokio::test]
async fn drop_rules_keep_events_out_of_the_index_but_not_out_of_detection() {
    let env = TestEnv::new("droprules").await;
    let dir = std::env::temp_dir().join(format!("ct-drop-{}", env.index_prefix));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("decrypt.yml"),
        "title: any KMS Decrypt\nid: decrypt-1\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n    s: {eventName: Decrypt}\n    condition: s\n",
    )
    .unwrap();
    let mut decrypt = record("drop-1", "2026-12-01T10:00:00Z");
    decrypt["eventSource"] = json!("kms.amazonaws.com");
    decrypt["eventName"] = json!("Decrypt");
    decrypt["userIdentity"] = json!({"type": "AWSService", "invokedBy": "s3.amazonaws.com"});
    let kept = record("keep-1", "2026-12-01T10:01:00Z");
    let body = gzip(json!({"Records": [decrypt, kept]}).to_string().as_bytes());
    let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/drop.json.gz";
    env.put_object(key, body).await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    let rules = dir.display().to_string();
    let drops = format!("{}/rules/drop", env!("CARGO_MANIFEST_DIR"));
    let summary = env
        .run_until_idle(&["--rules", &rules, "--drop-rules", &drops])
        .await;
    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    assert_eq!(summary["events_dropped"], 1, "{summary:?}");
    assert_eq!(summary["documents_indexed"], 1, "{summary:?}");
    assert_eq!(
        summary["alerts_indexed"], 1,
        "detection saw the dropped event"
    );
    let index = format!("{}-2026.12.01", env.index_prefix);
    assert_eq!(env.count(&index).await, 1, "only the kept event is indexed");
    std::fs::remove_dir_all(dir).unwrap();
}
