//! The webhook source end to end: the binary (`cloudtrail-ingest webhook`) over real HTTP on
//! 127.0.0.1 in front of the search stand-in, with Konnect-shaped batches (gzip, text/plain).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::proxy::{Fault, FaultProxy};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_cloudtrail-ingest");
const AUTH: &str = "Bearer konnect-hook-7Hq2";

/// A running webhook worker.
struct Hook {
    child: Option<Child>,
    url: String,
    indices: Indices,
}

impl std::ops::Deref for Hook {
    type Target = Indices;
    fn deref(&self) -> &Indices {
        &self.indices
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Hook {
    async fn start(name: &str, extra: &[&str]) -> Hook {
        Self::start_with(name, &standins().search_url, extra).await
    }

    async fn start_with(name: &str, cluster: &str, extra: &[&str]) -> Hook {
        let prefix = format!("w-{name}-{}", std::process::id());
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "webhook",
            "--listen",
            &listen,
            "--webhook-authorization",
            AUTH,
            "--elasticsearch-url",
            cluster,
            "--index-prefix",
            &prefix,
            "--bulk-linger",
            "20ms",
        ];
        args.extend_from_slice(extra);
        let child = Command::new(BIN)
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the webhook");
        let tls = extra.contains(&"--tls-cert");
        let url = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
        let hook = Hook {
            child: Some(child),
            url,
            indices: Indices {
                index_prefix: prefix,
                http: client(),
            },
        };
        eventually("the webhook listening", Duration::from_secs(30), || async {
            hook.http
                .get(format!("{}/healthz", hook.url))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        hook
    }

    /// POSTs `body` gzipped as Konnect does; returns the status and the answer.
    async fn post(&self, body: &[u8], auth: Option<&str>) -> (u16, String) {
        let mut request = self
            .http
            .post(format!("{}/", self.url))
            .header("content-type", "text/plain")
            .header("content-encoding", "application/gzip")
            .body(gzip(body));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let output = child.wait_with_output().unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("konnect").join(name)).unwrap()
}

/// `n` distinct JSON entries (Konnect access events), one per line.
fn entries(tag: &str, n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..n {
        let entry = serde_json::json!({
            "act": "GET", "cef_version": 0, "event_class_id": "KongGateway", "event_product": "Konnect",
            "event_vendor": "KongInc", "event_version": "1.0", "name": "Ingress",
            "org_id": "5d1e8c3a-7b24-4f90-a6e2-0c9b71d4e8f3", "request": format!("/v2/{tag}/{i}"),
            "rt": 1773151514107u64 + i as u64, "severity": 1, "src": "203.0.113.47", "status": 200,
            "trace_id": 7093348152250862441u64 - i as u64, "user_agent": "kongctl/1.0",
        });
        body.extend(serde_json::to_vec(&entry).unwrap());
        body.push(b'\n');
    }
    body
}

async fn event_count(hook: &Hook) -> u64 {
    let pattern = format!("{}-2*", hook.index_prefix);
    hook.search(reqwest::Method::POST, &format!("{pattern}/_refresh"), None)
        .await;
    hook.search(reqwest::Method::GET, &format!("{pattern}/_count"), None)
        .await["count"]
        .as_u64()
        .unwrap_or(0)
}

async fn dead_letters(hook: &Hook) -> Vec<Value> {
    let pattern = format!("{}-dead-letter-*", hook.index_prefix);
    hook.search(reqwest::Method::POST, &format!("{pattern}/_refresh"), None)
        .await;
    let found = hook
        .search(reqwest::Method::GET, &format!("{pattern}/_search"), None)
        .await;
    found["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|h| h["_source"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn konnect_json_and_cef_batches_are_indexed_once_and_searchable() {
    let hook = Hook::start("formats", &[]).await;
    let json = fixture("entries.ndjson");
    let (status, answer) = hook.post(&json, Some(AUTH)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        serde_json::json!({"indexed": 20, "dead_lettered": 0})
    );
    assert_eq!(
        event_count(&hook).await,
        20,
        "answered only once searchable-indexed"
    );
    // The same batch again (Konnect retries, replays): no duplicates.
    assert_eq!(hook.post(&json, Some(AUTH)).await.0, 200);
    assert_eq!(event_count(&hook).await, 20);
    let (status, answer) = hook.post(&fixture("entries.cef"), Some(AUTH)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        event_count(&hook).await,
        40,
        "CEF lines are other bytes: other _ids"
    );

    // Searchable by the well-known fields; the 19-digit trace_id keeps its digits.
    let pattern = format!("{}-2*", hook.index_prefix);
    let found = hook
        .search(
            reqwest::Method::POST,
            &format!("{pattern}/_search"),
            Some(serde_json::json!({"query": {"term": {"trace_id": "4417309825161338012"}}})),
        )
        .await;
    assert_eq!(found["hits"]["total"]["value"], 2, "{found}");
    let (status, _) = hook.post(b"[]", Some(AUTH)).await;
    assert_eq!(status, 200, "an empty batch is fine");
    let (status, stderr) = hook.stop();
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ecs_schema_konnect_entries_get_an_ecs_core_and_keep_their_fields() {
    let hook = Hook::start("ecs", &["--schema", "ecs"]).await;
    let (status, answer) = hook.post(&fixture("entries.ndjson"), Some(AUTH)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(event_count(&hook).await, 20);
    let pattern = format!("{}-2*", hook.index_prefix);
    let found = hook
        .search(
            reqwest::Method::POST,
            &format!("{pattern}/_search"),
            Some(serde_json::json!({"query": {"term": {"source.ip": "203.0.113.47"}}, "size": 20})),
        )
        .await;
    let hits = found["hits"]["hits"].as_array().expect("hits");
    assert!(!hits.is_empty(), "source.ip is searchable: {found}");
    let source = &hits[0]["_source"];
    assert_eq!(source["event"]["dataset"], "kong.konnect", "{source}");
    assert!(
        source["kong"]["konnect"]["event_class_id"].is_string(),
        "{source}"
    );
    assert!(
        source.get("src").is_none(),
        "the entry's fields are under kong.konnect"
    );
    let (status, stderr) = hook.stop();
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_authorization_is_401_and_indexes_nothing() {
    let hook = Hook::start("auth", &[]).await;
    let body = entries("auth", 5);
    for auth in [None, Some("Bearer wrong"), Some("bearer konnect-hook-7Hq2")] {
        let (status, answer) = hook.post(&body, auth).await;
        assert_eq!(status, 401, "{auth:?}");
        assert!(!answer.contains("konnect-hook"), "{answer}");
    }
    let other = hook
        .http
        .get(format!("{}/", hook.url))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 405);
    let missing = hook
        .http
        .post(format!("{}/elsewhere", hook.url))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(event_count(&hook).await, 0);
    let (status, stderr) = hook.stop();
    assert!(status.success());
    assert_eq!(
        stderr.matches("wrong or missing Authorization").count(),
        3,
        "{stderr}"
    );
    assert!(
        !stderr.contains(AUTH.split(' ').nth(1).unwrap()),
        "the secret was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_bomb_bodies_are_413_and_garbage_is_dead_lettered_with_200() {
    let hook = Hook::start("limits", &["--webhook-max-body", "64KiB"]).await;
    // 200 KB as sent.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let response = hook
        .http
        .post(format!("{}/", hook.url))
        .header("authorization", AUTH)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    // 20 MB of zeros gzips to about 20 KB: it stops at the decompressed limit.
    let (status, _) = hook.post(&vec![b'0'; 20 << 20], Some(AUTH)).await;
    assert_eq!(status, 413);

    let (status, answer) = hook
        .post(b"\x00\x01 definitely not a log", Some(AUTH))
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut body = entries("limits", 3);
    body.extend(b"not json\n");
    let (status, answer) = hook.post(&body, Some(AUTH)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        serde_json::json!({"indexed": 3, "dead_lettered": 1})
    );
    assert_eq!(event_count(&hook).await, 3);
    let dead = dead_letters(&hook).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reasons: Vec<&str> = dead
        .iter()
        .map(|d| d["error"]["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("neither JSON nor CEF")),
        "{reasons:?}"
    );
    assert!(dead.iter().all(|d| d["webhook"]["remote"] == "127.0.0.1"));
    hook.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_outage_is_503_and_the_retried_batch_lands_exactly_once() {
    let proxy = FaultProxy::start(&standins().search_url).await;
    let hook = Hook::start_with("outage", &proxy.url(), &["--webhook-timeout", "3s"]).await;
    let body = entries("outage", 50);
    proxy.set(Fault::Status {
        status: 503,
        path_contains: "_bulk".into(),
    });
    let started = Instant::now();
    let (status, _) = hook.post(&body, Some(AUTH)).await;
    assert_eq!(status, 503, "not indexed in time");
    assert!(started.elapsed() < Duration::from_secs(10));
    // While the cluster is down, requests are refused at once.
    let (status, _) = hook.post(&body, Some(AUTH)).await;
    assert_eq!(status, 503);
    proxy.set(Fault::None);
    let accepted = eventually(
        "the retried batch accepted",
        Duration::from_secs(60),
        || async {
            let (status, _) = hook.post(&body, Some(AUTH)).await;
            (status == 200).then_some(())
        },
    )
    .await;
    let _: () = accepted;
    assert_eq!(event_count(&hook).await, 50, "exactly once");
    hook.stop();

    // For senders that retry only on 429 or 500 (Konnect): the retry answer is configurable.
    let hook = Hook::start_with(
        "retry429",
        &proxy.url(),
        &[
            "--webhook-timeout",
            "1s",
            "--webhook-retry-status",
            "429",
            "--shutdown-grace",
            "3s",
        ],
    )
    .await;
    proxy.set(Fault::Status {
        status: 503,
        path_contains: "_bulk".into(),
    });
    let response = hook
        .http
        .post(format!("{}/", hook.url))
        .header("authorization", AUTH)
        .body(entries("retry429", 5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "10");
    // SIGTERM while the sink still retries that batch: exit 0 within the grace period.
    let stopping = Instant::now();
    let (status, stderr) = hook.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "{:?}",
        stopping.elapsed()
    );
    proxy.set(Fault::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_senders_over_tls_every_entry_indexed_once() {
    let dir = std::env::temp_dir().join(format!("hook-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let (cert_path, key_path) = (
        dir.join("cert.pem").display().to_string(),
        dir.join("key.pem").display().to_string(),
    );
    let hook = Hook::start("tls", &["--tls-cert", &cert_path, "--tls-key", &key_path]).await;
    assert!(hook.url.starts_with("https://"));
    const SENDERS: usize = 16;
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 50;
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..SENDERS {
        let http = hook.http.clone();
        let url = hook.url.clone();
        tasks.spawn(async move {
            for batch in 0..BATCHES {
                let body = gzip(&entries(&format!("s{sender}b{batch}"), PER_BATCH));
                loop {
                    let response = http
                        .post(format!("{url}/"))
                        .header("authorization", AUTH)
                        .header("content-type", "text/plain")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("POST over TLS");
                    match response.status().as_u16() {
                        200 => break,
                        503 => tokio::time::sleep(Duration::from_millis(200)).await,
                        other => panic!("answered {other}"),
                    }
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(
        event_count(&hook).await,
        (SENDERS * BATCHES * PER_BATCH) as u64
    );
    let (status, stderr) = hook.stop();
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let proxy = FaultProxy::start(&standins().search_url).await;
    let hook = Hook::start_with("term", &proxy.url(), &["--shutdown-grace", "20s"]).await;
    // Hold bulk answers for 3 s: the request is in flight when SIGTERM comes.
    proxy.set(Fault::Delay {
        method: "POST".into(),
        path_contains: "_bulk".into(),
        delay: Duration::from_secs(3),
    });
    let http = hook.http.clone();
    let url = hook.url.clone();
    let request = tokio::spawn(async move {
        http.post(format!("{url}/"))
            .header("authorization", AUTH)
            .body(entries("term", 20))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    eventually("the bulk request held", Duration::from_secs(30), || async {
        (proxy.faulted() >= 1).then_some(())
    })
    .await;
    let pid = hook.child.as_ref().unwrap().id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert_eq!(request.await.unwrap().expect("answered"), 200);
    proxy.set(Fault::None);
    assert_eq!(event_count(&hook).await, 20);
    let mut hook = hook;
    let output = hook.child.take().unwrap().wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_400_and_a_slow_head_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hook = Hook::start("slow", &[]).await;
    let addr = hook.url.trim_start_matches("http://").to_string();
    let mut garbage = tokio::net::TcpStream::connect(&addr).await.unwrap();
    garbage.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    garbage.read_to_end(&mut answer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );
    // A head that never ends is dropped after the head timeout (10 s), not held forever.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was not closed");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    hook.stop();
}

#[test]
fn webhook_configuration_errors_are_one_line_and_exit_2() {
    for (args, needle) in [
        (
            vec!["webhook"],
            "--listen (CLOUDTRAIL_INGEST_LISTEN) is required",
        ),
        (
            vec![
                "webhook",
                "--listen",
                "127.0.0.1:1",
                "--elasticsearch-url",
                "http://127.0.0.1:9",
            ],
            "--webhook-authorization (CLOUDTRAIL_INGEST_WEBHOOK_AUTHORIZATION) is required",
        ),
        (
            vec![
                "webhook",
                "--listen",
                "127.0.0.1:1",
                "--webhook-no-auth",
                "--tls-cert",
                "/nonexistent",
                "--elasticsearch-url",
                "http://127.0.0.1:9",
            ],
            "--tls-cert and --tls-key must be given together",
        ),
    ] {
        let output = Command::new(BIN).args(&args).env_clear().output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = String::from_utf8_lossy(&output.stderr);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
}
