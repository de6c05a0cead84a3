//! Test support: the local stand-ins (moto for SQS/SNS/S3, osmem-server for the search
//! cluster), started once per test binary on 127.0.0.1 with random ports, and a per-test
//! [`TestEnv`] with its own bucket, topic, queue, dead-letter queue and index prefix.
#![allow(dead_code)]

pub mod kafka;
pub mod proxy;
pub mod sigv4;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_sqs::types::QueueAttributeName;
use clap::Parser;
use cloudtrail_ingest::cli::{self, Cli};
use cloudtrail_ingest::config::Config;
use cloudtrail_ingest::runtime::{self, Outcome, RunError};
use cloudtrail_ingest::sink::elasticsearch::client as cluster_client;
use cloudtrail_ingest::source::backfill::Backfill;
use cloudtrail_ingest::source::sqs::{Clients, Sqs};
use cloudtrail_ingest::telemetry::Summary;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

pub struct Standins {
    pub aws_url: String,
    pub search_url: String,
    /// Kept so their stdin stays open: both exit when it closes (when the tests exit).
    _children: Vec<Child>,
}

/// The stand-ins of this test binary, started on first use.
pub fn standins() -> &'static Standins {
    static STANDINS: OnceLock<Standins> = OnceLock::new();
    STANDINS.get_or_init(|| {
        let venv = venv();
        let (aws, aws_url) = start(
            Command::new(venv.join("bin/python"))
                .arg(Path::new(MANIFEST_DIR).join("tests/standins/aws_standin.py")),
        );
        let (search, search_url) = start(
            Command::new(osmem_binary(&venv))
                .arg("-addr")
                .arg("127.0.0.1:0"),
        );
        Standins {
            aws_url,
            search_url,
            _children: vec![aws, search],
        }
    })
}

pub(crate) fn venv() -> PathBuf {
    let venv = std::env::var_os("CLOUDTRAIL_INGEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(MANIFEST_DIR).join(".venv"));
    assert!(
        venv.join("bin/python").exists(),
        "the stand-ins are not installed: run tests/setup.sh (or tests/run.sh)"
    );
    venv
}

/// The osmem-server binary bundled in the PyPI package.
fn osmem_binary(venv: &Path) -> PathBuf {
    let output = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .output()
        .expect("asking osmem_server for its binary");
    assert!(
        output.status.success(),
        "osmem_server is not installed: run tests/setup.sh"
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Starts a stand-in that prints a JSON line with its `url` when ready. The child lives as
/// long as the test process and exits when its stdin closes, so it is never waited on.
#[allow(clippy::zombie_processes)]
pub(crate) fn start(command: &mut Command) -> (Child, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{command:?} exited before it was ready"))
            .expect("reading stand-in output");
        if let Ok(Value::Object(ready)) = serde_json::from_str::<Value>(&line) {
            if let Some(url) = ready.get("url").and_then(Value::as_str) {
                let url = url.to_string();
                // Keep draining stdout so the stand-in never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return (child, url);
            }
        }
    }
}

/// An AWS configuration for the moto stand-in; no other endpoint is ever contacted.
pub fn aws_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&standins().aws_url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "tests",
        )))
        .build()
}

fn unique(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}-{}",
        name,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// How the queue is subscribed to the topic.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// SNS envelope around the message (the default).
    Envelope,
    /// RawMessageDelivery=true: the bare message.
    Raw,
}

/// Resources of one test.
pub struct TestEnv {
    pub bucket: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub topic_arn: String,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub indices: Indices,
}

/// `env.index_prefix`, `env.search(...)`: the indices of the test, whatever its source.
impl std::ops::Deref for TestEnv {
    type Target = Indices;
    fn deref(&self) -> &Indices {
        &self.indices
    }
}

/// The indices of one test (`<index_prefix>-*`) in the search stand-in.
pub struct Indices {
    pub index_prefix: String,
    pub http: reqwest::Client,
}

pub struct EnvOptions {
    pub delivery: Delivery,
    pub visibility_timeout: Duration,
    /// The redrive policy's maxReceiveCount; 0 means no redrive policy.
    pub max_receive_count: u32,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            delivery: Delivery::Envelope,
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 3,
        }
    }
}

impl TestEnv {
    pub async fn new(name: &str) -> TestEnv {
        Self::with(name, EnvOptions::default()).await
    }

    pub async fn with(name: &str, options: EnvOptions) -> TestEnv {
        let aws = aws_config();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&aws)
                .force_path_style(true)
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let sns = aws_sdk_sns::Client::new(&aws);
        let id = unique(name);
        let bucket = format!("ct-{id}");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");

        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{id}-dlq"))
            .send()
            .await
            .expect("create dlq")
            .queue_url
            .expect("dlq url");
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let mut create = sqs.create_queue().queue_name(&id).attributes(
            QueueAttributeName::VisibilityTimeout,
            options.visibility_timeout.as_secs().to_string(),
        );
        if options.max_receive_count > 0 {
            create = create.attributes(
                QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": options.max_receive_count}).to_string(),
            );
        }
        let queue_url = create
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let queue_arn = queue_arn(&sqs, &queue_url).await;

        let topic_arn = sns
            .create_topic()
            .name(&id)
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn");
        let mut subscribe = sns
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn);
        if options.delivery == Delivery::Raw {
            subscribe = subscribe.attributes("RawMessageDelivery", "true");
        }
        subscribe.send().await.expect("subscribe");

        TestEnv {
            bucket,
            queue_url,
            queue_arn,
            dlq_url,
            topic_arn,
            indices: Indices {
                index_prefix: format!("t-{}", id.to_lowercase()),
                http: reqwest::Client::new(),
            },
            s3,
            sqs,
            sns,
        }
    }

    /// S3 event notifications of new objects in this test's bucket go to its queue.
    pub async fn notify_queue_of_new_objects(&self) {
        use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
        self.s3
            .put_bucket_notification_configuration()
            .bucket(&self.bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(
                        QueueConfiguration::builder()
                            .queue_arn(&self.queue_arn)
                            .events(Event::S3ObjectCreated)
                            .build()
                            .expect("a queue configuration"),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("bucket notification");
    }

    /// The index prefix of this test's JSON lines that are not Confluent records.
    pub fn ndjson_prefix(&self) -> String {
        format!("nd{}", self.index_prefix)
    }

    /// The index prefix of this test's Confluent audit records read from S3.
    pub fn confluent_prefix(&self) -> String {
        format!("cf{}", self.index_prefix)
    }

    pub async fn put_object(&self, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("put object");
    }

    /// Uploads a conformance object (path under fixtures/conformance/objects) at the same key.
    pub async fn put_fixture(&self, key: &str) {
        self.put_object(key, fixture_object(key)).await;
    }

    /// Publishes on the trail's topic, as CloudTrail does.
    pub async fn publish(&self, message: &str) {
        self.sns
            .publish()
            .topic_arn(&self.topic_arn)
            .message(message)
            .send()
            .await
            .expect("publish");
    }

    /// CloudTrail's own notification for `keys` in this test's bucket.
    pub fn cloudtrail_message(&self, keys: &[&str]) -> String {
        json!({"s3Bucket": self.bucket, "s3ObjectKey": keys}).to_string()
    }

    /// Sends a body straight to the queue (S3 or EventBridge delivering to SQS).
    pub async fn send_to_queue(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send message");
    }

    /// Worker arguments for this environment; `extra` are appended.
    pub fn args(&self, extra: &[&str]) -> Vec<String> {
        let queue = ["--queue-url", &self.queue_url, "--receive-wait", "1s"];
        self.arguments(&queue, extra)
    }

    /// `cloudtrail-ingest <source...>`, then this test's cluster, indices and S3 flags, then
    /// `extra`.
    fn arguments(&self, source: &[&str], extra: &[&str]) -> Vec<String> {
        let sink = [
            "--elasticsearch-url",
            &standins().search_url,
            "--index-prefix",
            &self.index_prefix,
            "--ndjson-index-prefix",
            &self.ndjson_prefix(),
            "--confluent-index-prefix",
            &self.confluent_prefix(),
            "--s3-force-path-style",
            "--bulk-linger",
            "50ms",
        ];
        std::iter::once("cloudtrail-ingest")
            .chain(source.iter().copied())
            .chain(sink)
            .chain(extra.iter().copied())
            .map(str::to_string)
            .collect()
    }

    /// Starts the worker in-process; it stops once the queue is idle.
    pub fn spawn_until_idle(&self, extra: &[&str]) -> tokio::task::JoinHandle<Summary> {
        let mut args = self.args(extra);
        args.push("--exit-when-idle".into());
        spawn_with_args(args)
    }
}

/// Starts the worker in-process with exactly these arguments (against the stand-ins).
pub fn spawn_with_args(args: Vec<String>) -> tokio::task::JoinHandle<Summary> {
    spawn_worker(args, None, CancellationToken::new())
}

/// Starts the worker in-process with these arguments and this AWS configuration (its
/// credentials sign the cluster's requests with SigV4), until `stop` or idle.
pub fn spawn_with_aws(
    args: Vec<String>,
    aws: aws_config::SdkConfig,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Summary> {
    let config = Config::try_parse_from(args).expect("test arguments parse");
    config.validate().expect("test configuration is valid");
    let clients = Clients::new(&aws, &config);
    let cluster = cluster_client::connect(&config.shared.cluster, Some(&aws)).expect("cluster");
    tokio::spawn(async move {
        run_sqs(&config, clients, cluster, stop)
            .await
            .expect("the worker runs")
            .summary
    })
}

/// Runs the SQS source of `config` in-process against the stand-ins until `stop` (or idle).
pub async fn run_config(config: &Config, stop: CancellationToken) -> Result<Outcome, RunError> {
    let aws = aws_config();
    let clients = Clients::new(&aws, config);
    let cluster = cluster_client::connect(&config.shared.cluster, Some(&aws)).expect("cluster");
    run_sqs(config, clients, cluster, stop).await
}

/// Runs the SQS source in-process through the runtime, as the binary does.
pub async fn run_sqs(
    config: &Config,
    clients: Clients,
    cluster: cloudtrail_ingest::sink::elasticsearch::Cluster,
    stop: CancellationToken,
) -> Result<Outcome, RunError> {
    let source = Sqs::with_clients(config, clients);
    runtime::run(&config.shared, source, cluster, stop).await
}

/// Starts the worker in-process until `stop` is cancelled (or it goes idle, when the
/// arguments say so), with S3 reached through `s3` when given (a fault proxy).
fn spawn_worker(
    args: Vec<String>,
    s3: Option<&str>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Summary> {
    let config = Config::try_parse_from(args).expect("test arguments parse");
    config.validate().expect("test configuration is valid");
    let aws = aws_config();
    let mut clients = Clients::new(&aws, &config);
    let cluster = cluster_client::connect(&config.shared.cluster, Some(&aws)).expect("cluster");
    if let Some(url) = s3 {
        clients.s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&aws)
                .endpoint_url(url)
                .force_path_style(true)
                .build(),
        );
    }
    tokio::spawn(async move {
        run_sqs(&config, clients, cluster, stop)
            .await
            .expect("the worker runs")
            .summary
    })
}

impl TestEnv {
    /// Starts the worker in-process until idle, talking to the cluster and/or S3 through
    /// other endpoints (a fault proxy) when given.
    pub fn spawn_through(
        &self,
        extra: &[&str],
        cluster: Option<&str>,
        s3: Option<&str>,
    ) -> tokio::task::JoinHandle<Summary> {
        let mut args = self.args(extra);
        args.push("--exit-when-idle".into());
        if let Some(url) = cluster {
            point_at_cluster(&mut args, url);
        }
        spawn_worker(args, s3, CancellationToken::new())
    }

    /// Starts the worker in-process, without `--exit-when-idle`, until `stop` is cancelled.
    pub fn spawn_until_stopped(
        &self,
        extra: &[&str],
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<Summary> {
        spawn_worker(self.args(extra), None, stop)
    }

    /// `cloudtrail-ingest backfill` arguments for this test's bucket and indices; `extra`
    /// are appended.
    pub fn backfill_args(&self, extra: &[&str]) -> Vec<String> {
        self.arguments(&["backfill", "--bucket", &self.bucket], extra)
    }

    /// `cloudtrail-ingest files` arguments for this test's indices; `extra` (the paths
    /// among them) are appended.
    pub fn files_args(&self, extra: &[&str]) -> Vec<String> {
        self.arguments(&["files"], extra)
    }

    /// Runs a backfill in-process to its end, with S3 reached through `s3` when given (a
    /// proxy that counts requests).
    pub async fn backfill(&self, extra: &[&str], s3: Option<&str>) -> Outcome {
        let command = match Cli::try_parse_from(self.backfill_args(extra))
            .expect("test arguments parse")
            .into_command()
        {
            cli::Command::Backfill(command) => command,
            other => panic!("not a backfill: {other:?}"),
        };
        command.validate().expect("test configuration is valid");
        let aws = aws_config();
        let mut s3_config = aws_sdk_s3::config::Builder::from(&aws).force_path_style(true);
        if let Some(url) = s3 {
            s3_config = s3_config.endpoint_url(url);
        }
        let s3_client = aws_sdk_s3::Client::from_conf(s3_config.build());
        let cluster =
            cluster_client::connect(&command.shared.cluster, None).expect("cluster client");
        let source = Backfill::with_client(&command, s3_client);
        tokio::time::timeout(
            Duration::from_secs(120),
            runtime::run(&command.shared, source, cluster, CancellationToken::new()),
        )
        .await
        .expect("the backfill ends")
        .expect("the backfill runs")
    }

    /// `cloudtrail-ingest backfill --enqueue <this test's queue>` in-process, to its end.
    pub async fn enqueue(&self, extra: &[&str]) -> Outcome {
        let mut args = self.backfill_args(extra);
        args.extend(["--enqueue".to_string(), self.queue_url.clone()]);
        let command = match Cli::try_parse_from(args)
            .expect("test arguments parse")
            .into_command()
        {
            cli::Command::Backfill(command) => command,
            other => panic!("not a backfill: {other:?}"),
        };
        command.validate().expect("test configuration is valid");
        tokio::time::timeout(
            Duration::from_secs(120),
            runtime::enqueue_with(&command, &aws_config(), CancellationToken::new()),
        )
        .await
        .expect("the backfill ends")
        .expect("the backfill runs")
    }

    /// Runs the worker in-process until the queue is idle.
    pub async fn run_until_idle(&self, extra: &[&str]) -> Summary {
        tokio::time::timeout(Duration::from_secs(120), self.spawn_until_idle(extra))
            .await
            .expect("the worker goes idle")
            .expect("the worker does not panic")
    }

    /// (visible, in flight) messages of a queue.
    pub async fn queue_depth(&self, queue_url: &str) -> (u64, u64) {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        let get = |name| attrs.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Messages in the main queue, visible or not.
    pub async fn messages_left(&self) -> u64 {
        let (visible, in_flight) = self.queue_depth(&self.queue_url).await;
        visible + in_flight
    }
}

impl Indices {
    pub async fn search(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/{}", standins().search_url, path.trim_start_matches('/'));
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("search request");
        let text = response.text().await.expect("search response");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("search answered non-JSON: {text}"))
    }

    /// Document counts per index of this test, after a refresh.
    pub async fn index_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.counts_matching(&format!("{}-*", self.index_prefix))
            .await
    }

    /// Document counts per index matching `pattern`, after a refresh.
    pub async fn counts_matching(&self, pattern: &str) -> std::collections::BTreeMap<String, u64> {
        self.search(reqwest::Method::POST, &format!("{pattern}/_refresh"), None)
            .await;
        let rows = self
            .search(
                reqwest::Method::GET,
                &format!("_cat/indices/{pattern}?format=json"),
                None,
            )
            .await;
        let mut counts = std::collections::BTreeMap::new();
        for row in rows.as_array().cloned().unwrap_or_default() {
            let index = row["index"].as_str().expect("index name").to_string();
            let count = self.count(&index).await;
            counts.insert(index, count);
        }
        counts
    }

    pub async fn count(&self, index: &str) -> u64 {
        self.search(reqwest::Method::GET, &format!("{index}/_count"), None)
            .await["count"]
            .as_u64()
            .unwrap_or(0)
    }

    pub async fn total_documents(&self) -> u64 {
        self.index_counts().await.values().sum()
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue arn")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue has an arn")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// Replaces the value of `--elasticsearch-url` in `args` (e.g. to go through a proxy).
pub fn point_at_cluster(args: &mut [String], url: &str) {
    set_arg(args, "--elasticsearch-url", url);
}

/// Replaces the value of `flag` in `args`.
pub fn set_arg(args: &mut [String], flag: &str, value: &str) {
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("the arguments hold {flag}"));
    args[at + 1] = value.to_string();
}

pub fn fixtures() -> PathBuf {
    Path::new(MANIFEST_DIR).join("fixtures")
}

/// `fixtures/conformance/INDEX.json`: what every corpus file is and how to read it.
pub fn conformance_index() -> Value {
    let path = fixtures().join("conformance/INDEX.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("conformance index"))
        .expect("conformance index is JSON")
}

/// Bytes of a conformance object, by its key.
pub fn fixture_object(key: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("conformance/objects").join(key))
        .unwrap_or_else(|e| panic!("fixture {key}: {e}"))
}

/// The records of a (gzipped) CloudTrail log.
pub fn records_of(body: &[u8]) -> Vec<Value> {
    let log: Value = serde_json::from_slice(&gunzip(body)).expect("json fixture");
    log["Records"].as_array().cloned().unwrap_or_default()
}

/// Distinct document ids over several conformance objects (objects may share records): their
/// distinct eventIDs plus one per distinct id-less record.
pub fn distinct_ids(keys: &[&str]) -> u64 {
    let mut ids = std::collections::HashSet::new();
    for key in keys {
        for record in records_of(&fixture_object(key)) {
            ids.insert(
                record["eventID"]
                    .as_str()
                    .map_or_else(|| record.to_string(), str::to_string),
            );
        }
    }
    ids.len() as u64
}

/// The JSON values of a corpus event file: a log's `Records`, one record, an array, or one
/// value per line (lines that are not JSON are skipped: the corpus holds a malformed file).
pub fn json_values(text: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut map)) => match map.remove("Records") {
            Some(Value::Array(list)) => list,
            _ => vec![Value::Object(map)],
        },
        Ok(Value::Array(list)) => list,
        Ok(_) => vec![],
        Err(_) => text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
    }
}

/// Gunzips bytes in memory.
pub fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(body);
    std::io::Read::read_to_end(&mut decoder, &mut text).expect("gzip fixture");
    text
}

/// Gzips bytes in memory.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

/// Polls `check` until it returns `Some` or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A CloudTrail log object with one record per (eventID, eventTime).
pub fn log_object(events: &[(&str, &str)]) -> Vec<u8> {
    let records: Vec<Value> = events.iter().map(|(id, time)| record(id, time)).collect();
    gzip(json!({"Records": records}).to_string().as_bytes())
}

/// A CloudTrail management event with this `eventID` and `eventTime`.
pub fn record(id: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::123456789012:user/alice", "accountId": "123456789012", "userName": "alice"},
        "eventTime": time,
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.1",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": null,
        "responseElements": null,
        "requestID": "req",
        "eventID": id,
        "readOnly": true,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "123456789012",
        "eventCategory": "Management"
    })
}

/// The EventBridge event that carries `record` ("AWS API Call via CloudTrail" and the rest),
/// as an EventBridge rule with an SQS target delivers it. The envelope's fields are those of
/// EventBridge's event structure reference; `id` is EventBridge's own, not the record's.
pub fn eventbridge_event(record: &Value, detail_type: &str) -> String {
    let source = record["eventSource"]
        .as_str()
        .and_then(|s| s.strip_suffix(".amazonaws.com"))
        .map_or_else(
            || "aws.cloudtrail".to_string(),
            |service| format!("aws.{service}"),
        );
    json!({
        "version": "0",
        "id": format!("eb-{}", record["eventID"].as_str().unwrap_or("none")),
        "detail-type": detail_type,
        "source": source,
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record,
    })
    .to_string()
}

/// The counter `name` of the summary line (`worker stopped`) a finished binary logged.
pub fn counter(output: &std::process::Output, name: &str) -> u64 {
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("worker stopped"))
        .unwrap_or_else(|| panic!("no summary in:\n{text}"));
    let at = line
        .find(&format!("{name}: "))
        .unwrap_or_else(|| panic!("{name} missing from {line}"));
    line[at + name.len() + 2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a number")
}
