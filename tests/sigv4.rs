//! SigV4-signed cluster requests against a verifying proxy (`tests/standins/sigv4_proxy.py`,
//! botocore's signer) in front of the search stand-in: ingestion end to end with plain and
//! gzipped bulk bodies, credentials that rotate on every request, credentials revoked mid-run
//! (batches held, nothing lost or cycled through the queue), and wrong credentials at start
//! (one clear error line).

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::sigv4::{aws_with, Rotating, SigV4Proxy, Switch};
use support::{eventually, log_object, point_at_cluster, spawn_with_aws, standins, TestEnv};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_cloudtrail-ingest");

/// Puts `objects` log objects of 50 events each and announces them; returns the event count.
async fn announce(env: &TestEnv, objects: usize) -> u64 {
    for n in 0..objects {
        let ids: Vec<String> = (0..50).map(|i| format!("sig-{n}-{i}")).collect();
        let events: Vec<(&str, &str)> = ids
            .iter()
            .map(|id| (id.as_str(), "2024-05-01T10:00:00Z"))
            .collect();
        let key = format!("AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/sig-{n}.json.gz");
        env.put_object(&key, log_object(&events)).await;
        env.publish(&env.cloudtrail_message(&[&key])).await;
    }
    objects as u64 * 50
}

/// Runs the binary with `args` and AWS settings (region, access key, secret), expects exit 1
/// with exactly one ERROR line, and returns it with the whole standard error.
fn the_one_start_error(
    args: &[&str],
    (region, key, secret): (&str, &str, &str),
) -> (String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("AWS_REGION", region)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_ENDPOINT_URL", &standins().aws_url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    (errors[0].to_string(), stderr)
}

fn signed_args(env: &TestEnv, proxy: &SigV4Proxy, extra: &[&str]) -> Vec<String> {
    let mut args = env.args(
        &[
            &[
                "--elasticsearch-aws-sigv4",
                "--elasticsearch-aws-region",
                "us-east-1",
            ][..],
            extra,
        ]
        .concat(),
    );
    point_at_cluster(&mut args, &proxy.url);
    args
}

#[tokio::test]
async fn signed_requests_are_verified_with_plain_and_gzipped_bodies() {
    for compression in ["none", "gzip"] {
        let env = TestEnv::new(&format!("sigv4-{compression}")).await;
        let proxy = SigV4Proxy::start(
            "us-east-1",
            "es",
            &json!({"testing": {"secret": "testing"}}),
        );
        let events = announce(&env, 3).await;
        let mut args = signed_args(&env, &proxy, &["--bulk-compression", compression]);
        args.push("--exit-when-idle".into());
        let summary =
            tokio::time::timeout(Duration::from_secs(120), support::spawn_with_args(args))
                .await
                .expect("the worker goes idle")
                .expect("the worker does not panic");

        assert_eq!(summary["documents_indexed"], events, "{summary:?}");
        assert_eq!(env.total_documents().await, events);
        let stats = proxy.stats().await;
        assert_eq!(stats["refused"], 0, "{stats}");
        // GET /, four templates (CloudTrail, JSON lines, Confluent, dead letter), the bulks.
        assert!(stats["verified"].as_u64().unwrap() >= 6, "{stats}");
        let gzipped = stats["gzip"].as_u64().unwrap();
        assert_eq!(gzipped > 0, compression == "gzip", "{stats}");
    }
}

#[tokio::test]
async fn credentials_that_rotate_on_every_request_are_picked_up() {
    let env = TestEnv::new("sigv4-rotate").await;
    let proxy = SigV4Proxy::start("us-east-1", "es", &Rotating::keys());
    let events = announce(&env, 4).await;
    let mut args = signed_args(&env, &proxy, &["--bulk-max-bytes", "20000"]);
    args.push("--exit-when-idle".into());
    let summary = tokio::time::timeout(
        Duration::from_secs(120),
        spawn_with_aws(
            args,
            aws_with(Rotating::default()),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("the worker goes idle")
    .expect("the worker does not panic");

    assert_eq!(summary["documents_indexed"], events, "{summary:?}");
    let stats = proxy.stats().await;
    assert_eq!(stats["refused"], 0, "{stats}");
    let keys = stats["keys"].as_object().unwrap();
    assert_eq!(keys.len(), 3, "every key was used: {stats}");
}

#[tokio::test]
async fn revoked_credentials_hold_the_batches_and_lose_nothing() {
    let env = TestEnv::new("sigv4-revoked").await;
    let proxy = SigV4Proxy::start("us-east-1", "es", &Rotating::keys());
    let valid = Arc::new(AtomicBool::new(true));
    let stop = CancellationToken::new();
    let worker = spawn_with_aws(
        signed_args(&env, &proxy, &[]),
        aws_with(Switch {
            valid: valid.clone(),
        }),
        stop.clone(),
    );
    // Started: GET / and the templates went through.
    eventually("the worker started", Duration::from_secs(30), || async {
        (proxy.stats().await["verified"].as_u64() >= Some(5)).then_some(())
    })
    .await;

    valid.store(false, Ordering::SeqCst);
    let events = announce(&env, 3).await;
    eventually("bulk requests refused", Duration::from_secs(30), || async {
        (proxy.stats().await["refused"].as_u64() >= Some(2)).then_some(())
    })
    .await;
    assert_eq!(env.total_documents().await, 0);

    valid.store(true, Ordering::SeqCst);
    eventually("every event indexed", Duration::from_secs(60), || async {
        (env.total_documents().await == events).then_some(())
    })
    .await;
    eventually("every message deleted", Duration::from_secs(30), || async {
        (env.messages_left().await == 0).then_some(())
    })
    .await;
    stop.cancel();
    let summary = worker.await.expect("the worker does not panic");
    assert_eq!(
        summary["messages_received"], 3,
        "not cycled through the queue: {summary:?}"
    );
    assert_eq!(summary["documents_indexed"], events);
    assert_eq!(env.queue_depth(&env.dlq_url).await, (0, 0));
    let stats = proxy.stats().await;
    let reasons = stats["reasons"].as_object().unwrap();
    assert!(
        reasons.keys().all(|r| r.contains("security token")),
        "refused only for the revoked key: {stats}"
    );
}

#[test]
fn wrong_credentials_at_start_are_one_error_line_naming_the_cause() {
    let proxy = SigV4Proxy::start(
        "us-east-1",
        "es",
        &json!({"testing": {"secret": "testing"}}),
    );
    let args = [
        "--queue-url",
        "http://127.0.0.1:1/q",
        "--elasticsearch-url",
        &proxy.url,
        "--elasticsearch-aws-sigv4",
    ];
    let (error, stderr) =
        the_one_start_error(&args, ("eu-west-1", "AKIDWRONG", "s3cr3t-never-printed"));
    assert!(
        error.contains("HTTP 403") && error.contains("AWS does not know these credentials"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cr3t-never-printed"),
        "the secret never prints: {stderr}"
    );
}

#[tokio::test]
async fn the_proxy_checks_what_was_signed_against_what_was_sent() {
    use cloudtrail_ingest::sink::elasticsearch::sigv4::{signed_headers, AwsService};
    let proxy = SigV4Proxy::start(
        "us-east-1",
        "es",
        &json!({"testing": {"secret": "testing"}}),
    );
    let credentials =
        aws_credential_types::Credentials::new("testing", "testing", None, None, "test");
    let url = format!("{}/_bulk?filter_path=errors", proxy.url);
    let body = b"{\"create\":{\"_index\":\"sig-check\",\"_id\":\"1\"}}\n{\"a\":1}\n".to_vec();
    let headers = signed_headers(
        &credentials,
        "us-east-1",
        AwsService::Es,
        std::time::SystemTime::now(),
        "POST",
        &url,
        &body,
    )
    .unwrap();
    let send = |body: Vec<u8>, url: &str| {
        let mut request = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-ndjson")
            .body(body);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value);
        }
        request.send()
    };
    let mut tampered = body.clone();
    tampered[body.len() - 3] = b'2';
    let other_query = format!("{}/_bulk?filter_path=items", proxy.url);
    for (body, url) in [
        (tampered, url.as_str()),
        (body.clone(), other_query.as_str()),
    ] {
        let refused = send(body, url).await.unwrap();
        assert_eq!(refused.status(), 403);
        assert!(refused
            .text()
            .await
            .unwrap()
            .contains("signature we calculated does not match"));
    }
    let accepted = send(body, &url).await.unwrap();
    assert_eq!(accepted.status(), 200, "{:?}", accepted.text().await);
}

#[tokio::test]
async fn a_serverless_search_collection_is_written_without_get_root() {
    let env = TestEnv::new("sigv4-aoss").await;
    let proxy = SigV4Proxy::start_as(
        "us-east-1",
        "aoss",
        &json!({"testing": {"secret": "testing"}}),
        Some("search"),
    );
    let events = announce(&env, 2).await;
    let mut args = signed_args(&env, &proxy, &["--elasticsearch-aws-service", "aoss"]);
    args.push("--exit-when-idle".into());
    let summary = tokio::time::timeout(Duration::from_secs(120), support::spawn_with_args(args))
        .await
        .expect("the worker goes idle")
        .expect("the worker does not panic");
    assert_eq!(summary["documents_indexed"], events, "{summary:?}");
    let stats = proxy.stats().await;
    assert_eq!(
        stats["root"], 0,
        "GET / is not asked of a collection: {stats}"
    );
    assert_eq!(stats["refused"], 0, "{stats}");
}

#[tokio::test]
async fn a_serverless_time_series_collection_is_refused_at_start() {
    let env = TestEnv::new("sigv4-aoss-ts").await;
    let proxy = SigV4Proxy::start_as(
        "us-east-1",
        "aoss",
        &json!({"testing": {"secret": "testing"}}),
        Some("timeseries"),
    );
    announce(&env, 1).await;
    let args = signed_args(&env, &proxy, &["--elasticsearch-aws-service", "aoss"]);
    let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let (error, stderr) = the_one_start_error(&args, ("us-east-1", "testing", "testing"));
    assert!(
        error.contains("time series or vector search collection")
            && error.contains("search collection (type SEARCH)"),
        "{stderr}"
    );
    assert_eq!(env.messages_left().await, 1, "nothing was received");
    assert_eq!(env.total_documents().await, 0);
}
