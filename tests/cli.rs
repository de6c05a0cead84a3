//! The binary as users run it: configuration errors, and SIGTERM with work in flight.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_cloudtrail-ingest");

/// A command with a clean environment that points only at the stand-ins.
fn command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", &standins().aws_url)
        .stdin(Stdio::null());
    command
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn missing_configuration_is_one_line_and_exit_2() {
    let output = Command::new(BIN)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let lines = stderr_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("--queue-url (CLOUDTRAIL_INGEST_QUEUE_URL) is required"));
    assert!(
        lines[0].contains("--elasticsearch-url (CLOUDTRAIL_INGEST_ELASTICSEARCH_URL) is required")
    );
}

#[test]
fn malformed_values_are_one_line_and_exit_2() {
    for args in [
        &[
            "--queue-url",
            "sqs",
            "--elasticsearch-url",
            "http://127.0.0.1:9200",
        ][..],
        &[
            "--queue-url",
            "http://127.0.0.1:1/q",
            "--elasticsearch-url",
            "http://127.0.0.1:9200",
            "--shutdown-grace",
            "soon",
        ],
    ] {
        let output = Command::new(BIN)
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let lines = stderr_lines(&output);
        assert_eq!(lines.len(), 1, "{lines:?}");
    }
}

#[test]
fn unreachable_cluster_is_one_error_line_and_exit_1() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let output = command()
        .args([
            "--queue-url",
            "http://127.0.0.1:1/q",
            "--elasticsearch-url",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let errors: Vec<_> = stderr_lines(&output)
        .into_iter()
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("is unreachable"), "{errors:?}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let cli = <cloudtrail_ingest::cli::Cli as clap::CommandFactory>::command();
    let sub = |name: &str| {
        cli.find_subcommand(name)
            .expect("the command exists")
            .clone()
    };
    for (args, command) in [
        (vec!["--help"], cli.clone()),
        (vec!["kafka", "--help"], sub("kafka")),
        (vec!["webhook", "--help"], sub("webhook")),
        (vec!["backfill", "--help"], sub("backfill")),
        (vec!["files", "--help"], sub("files")),
    ] {
        let output = Command::new(BIN).args(&args).output().unwrap();
        assert!(output.status.success());
        let help = String::from_utf8_lossy(&output.stdout);
        let mut flags = 0;
        for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
            let flag = line.trim_start().split(' ').next().unwrap();
            if matches!(flag, "--help" | "--version") {
                continue;
            }
            let env = format!(
                "CLOUDTRAIL_INGEST_{}",
                flag.trim_start_matches("--")
                    .replace('-', "_")
                    .to_uppercase()
            );
            flags += 1;
            assert!(
                help.contains(&format!("[env: {env}")),
                "{flag} lacks {env} in {args:?}"
            );
        }
        // Every configuration field was seen, so the loop above cannot pass vacuously.
        let fields = command
            .get_arguments()
            .filter(|a| {
                a.get_long().is_some()
                    && !a.is_hide_set()
                    && !matches!(a.get_id().as_str(), "help" | "version")
            })
            .count();
        assert_eq!(flags, fields, "{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_messages_in_flight_finishes_them_and_loses_nothing() {
    let env = TestEnv::with(
        "sigterm",
        EnvOptions {
            visibility_timeout: Duration::from_secs(5),
            ..EnvOptions::default()
        },
    )
    .await;
    // Four messages of 1,000 events are in flight at a time, indexed in bulk requests of
    // 256 KiB (about 370 events): when the first events are searchable, the first wave of
    // messages is certainly still in flight.
    const OBJECTS: usize = 8;
    const PER_OBJECT: usize = 1000;
    for n in 0..OBJECTS {
        let ids: Vec<String> = (0..PER_OBJECT)
            .map(|i| format!("sigterm-{n}-{i}"))
            .collect();
        let events: Vec<(&str, &str)> = ids
            .iter()
            .map(|id| (id.as_str(), "2024-05-01T12:00:00Z"))
            .collect();
        let key = format!("AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/obj-{n}.json.gz");
        env.put_object(&key, log_object(&events)).await;
        env.publish(&env.cloudtrail_message(&[&key])).await;
    }

    let args = env.args(&[
        "--max-in-flight",
        "4",
        "--bulk-max-bytes",
        "262144",
        "--shutdown-grace",
        "20s",
    ]);
    let mut child = command()
        .args(&args[1..])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let index = format!("{}-2024.05.01", env.index_prefix);
    eventually(
        "the first documents to be indexed",
        Duration::from_secs(60),
        || async {
            env.search(
                reqwest::Method::POST,
                &format!("{}-*/_refresh", env.index_prefix),
                None,
            )
            .await;
            (env.count(&index).await > 0).then_some(())
        },
    )
    .await;
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || {
        let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
        (child.wait().unwrap(), stderr)
    })
    .await
    .unwrap();
    let (status, stderr) = output;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        signalled.elapsed() < Duration::from_secs(25),
        "exited within the grace period"
    );
    assert!(stderr.contains("shutting down"), "{stderr}");
    let in_flight: u32 = stderr
        .lines()
        .find(|l| l.contains("shutting down"))
        .and_then(|l| l.split("in_flight=").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the shutdown line reports in-flight messages");
    assert!(
        in_flight > 0,
        "SIGTERM arrived with work in flight: {stderr}"
    );
    assert!(stderr.contains("messages_abandoned: 0"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Whatever the first run did not finish is still in the queue; a second run completes it
    // and the total is exact: nothing lost, nothing duplicated.
    let expected = (OBJECTS * PER_OBJECT) as u64;
    eventually(
        "every event to be indexed",
        Duration::from_secs(90),
        || async {
            env.run_until_idle(&[]).await;
            (env.messages_left().await == 0).then_some(())
        },
    )
    .await;
    assert_eq!(env.total_documents().await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_then_restart_indexes_every_event_exactly_once() {
    const OBJECTS: usize = 6;
    const PER_OBJECT: usize = 1000;
    let env = TestEnv::with(
        "kill9",
        EnvOptions {
            visibility_timeout: Duration::from_secs(3),
            max_receive_count: 10,
            ..EnvOptions::default()
        },
    )
    .await;
    for n in 0..OBJECTS {
        let ids: Vec<String> = (0..PER_OBJECT).map(|i| format!("kill-{n}-{i}")).collect();
        let events: Vec<(&str, &str)> = ids
            .iter()
            .map(|id| (id.as_str(), "2024-05-01T12:00:00Z"))
            .collect();
        let key = format!("AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/kill-{n}.json.gz");
        env.put_object(&key, log_object(&events)).await;
        env.publish(&env.cloudtrail_message(&[&key])).await;
    }
    let args = env.args(&["--max-in-flight", "3", "--bulk-max-bytes", "262144"]);
    let mut child = command()
        .args(&args[1..])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let index = format!("{}-2024.05.01", env.index_prefix);
    let before_kill = eventually(
        "the first documents to be indexed",
        Duration::from_secs(60),
        || async {
            env.search(reqwest::Method::POST, &format!("{index}/_refresh"), None)
                .await;
            let n = env.count(&index).await;
            (n > 0).then_some(n)
        },
    )
    .await;
    child.kill().unwrap(); // SIGKILL: no shutdown path runs at all.
    child.wait().unwrap();
    let expected = (OBJECTS * PER_OBJECT) as u64;
    assert!(before_kill < expected, "killed mid-run: {before_kill}");

    // The restarted worker gets back every message that was not deleted (after its
    // visibility timeout) and re-indexes them with the same ids.
    eventually("the queue to drain", Duration::from_secs(120), || async {
        env.run_until_idle(&[]).await;
        (env.messages_left().await == 0).then_some(())
    })
    .await;
    assert_eq!(
        env.total_documents().await,
        expected,
        "every event exactly once"
    );
    assert_eq!(env.queue_depth(&env.dlq_url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_dependency_and_fails_on_a_broken_one() {
    let env = TestEnv::new("check").await;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/check.json.gz";
    env.put_object(key, log_object(&[("c1", "2024-05-01T10:00:00Z")]))
        .await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    eventually(
        "the notification to arrive",
        Duration::from_secs(10),
        || async { (env.messages_left().await == 1).then_some(()) },
    )
    .await;

    // Runs `check` with this environment's arguments, the cluster URL replaced if given.
    let run = |cluster: Option<&str>| {
        let mut args = env.args(&[])[1..].to_vec();
        if let Some(url) = cluster {
            point_at_cluster(&mut args, url);
        }
        let output = command().arg("check").args(args).output().unwrap();
        (
            output.status.code(),
            format!(
                "{}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };

    let (code, stdout) = run(None);
    assert_eq!(code, Some(0), "{stdout}");
    for name in ["cluster", "templates", "bulk", "queue", "receive", "s3"] {
        assert!(
            stdout.contains(&format!("PASS {name}: ")),
            "{name}: {stdout}"
        );
    }
    assert!(stdout.contains("has a redrive policy"), "{stdout}");
    assert_eq!(env.messages_left().await, 1, "check ingests nothing");
    assert_eq!(
        env.count(&format!("{}-2024.05.01", env.index_prefix)).await,
        0
    );

    let (code, stdout) = run(Some("http://127.0.0.1:9"));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAIL cluster: "), "{stdout}");
    assert!(stdout.contains("PASS queue: "), "{stdout}");

    env.s3
        .delete_object()
        .bucket(&env.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let (code, stdout) = run(None);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAIL s3: "), "{stdout}");
}

/// Standard base64, to look for encoded credentials in the output too.
/// `HTTP_PROXY` carries every request of the worker: the cluster's (reqwest) and the AWS
/// SDK's (SQS and S3), as on a host whose only way out is a forward proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_and_aws_requests_go_through_http_proxy() {
    let env = TestEnv::new("http-proxy").await;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/02/proxied.json.gz";
    let events = [
        ("proxy-1", "2024-05-02T10:00:00Z"),
        ("proxy-2", "2024-05-02T10:00:01Z"),
    ];
    env.put_object(key, log_object(&events)).await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    let proxy = proxy::FaultProxy::start(&standins().search_url).await;
    let args = env.args(&["--exit-when-idle"]);
    let mut command = command();
    command.args(&args[1..]).env("HTTP_PROXY", proxy.url());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{:?}", stderr_lines(&output));
    assert_eq!(
        env.count(&format!("{}-2024.05.02", env.index_prefix)).await,
        2
    );
    let seen = proxy.take_seen();
    let through = |prefix: &str| seen.iter().any(|r| r.starts_with(prefix));
    let search = &standins().search_url;
    let aws = &standins().aws_url;
    assert!(through(&format!("GET {search}/")), "{seen:?}");
    assert!(through(&format!("POST {search}/_bulk")), "{seen:?}");
    assert!(through(&format!("POST {aws}/")), "SQS: {seen:?}");
    assert!(
        through(&format!("GET {aws}/{}/{key}", env.bucket)),
        "S3: {seen:?}"
    );
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_any_output() {
    const URL_USER: &str = "ingest-user";
    const URL_PASSWORD: &str = "url-pass-7Q2vXw";
    const PASSWORD: &str = "flag-pass-9Kp3Lm";
    const API_KEY: &str = "QXBpS2V5LXNlY3JldC00ZjJhOTk=";
    let env = TestEnv::new("secrets").await;
    env.put_fixture("AWSLogs/o-1234abcde/222222222222/CloudTrail/us-east-1/2025/03/06/222222222222_CloudTrail_us-east-1_20250306T0230Z_QF6qcgyiaVnSueXa.json.gz").await;
    env.publish(&env.cloudtrail_message(&["AWSLogs/o-1234abcde/222222222222/CloudTrail/us-east-1/2025/03/06/222222222222_CloudTrail_us-east-1_20250306T0230Z_QF6qcgyiaVnSueXa.json.gz"]))
        .await;
    let search = standins()
        .search_url
        .trim_start_matches("http://")
        .to_string();
    let with_credentials = format!("http://{URL_USER}:{URL_PASSWORD}@{search}");
    let args = |extra: &[&str]| {
        let mut args = env.args(extra)[1..].to_vec();
        point_at_cluster(&mut args, &with_credentials);
        args
    };
    let plain = |extra: &[&str]| env.args(extra)[1..].to_vec();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        format!("http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{port}")
    };

    // (what, arguments, environment, expected exit code)
    type Run<'a> = (&'a str, Vec<String>, Vec<(&'a str, String)>, i32);
    let runs: Vec<Run> = vec![
        (
            "--help with every secret in the environment",
            vec!["--help".into()],
            vec![
                (
                    "CLOUDTRAIL_INGEST_ELASTICSEARCH_URL",
                    with_credentials.clone(),
                ),
                ("CLOUDTRAIL_INGEST_ELASTICSEARCH_PASSWORD", PASSWORD.into()),
                ("CLOUDTRAIL_INGEST_ELASTICSEARCH_API_KEY", API_KEY.into()),
            ],
            0,
        ),
        (
            "conflicting credentials",
            args(&[
                "--elasticsearch-api-key",
                API_KEY,
                "--elasticsearch-username",
                "u",
                "--elasticsearch-password",
                PASSWORD,
            ]),
            vec![],
            2,
        ),
        (
            "an unparseable URL with credentials",
            vec![
                "--queue-url".into(),
                env.queue_url.clone(),
                "--elasticsearch-url".into(),
                format!("http//{URL_USER}:{URL_PASSWORD}@x"),
            ],
            vec![],
            2,
        ),
        (
            "an unreachable cluster, debug logs",
            {
                let mut a = args(&[]);
                point_at_cluster(&mut a, &closed);
                a
            },
            vec![("RUST_LOG", "debug".into())],
            1,
        ),
        (
            "an unusable queue, debug logs",
            {
                let mut a = plain(&[
                    "--elasticsearch-username",
                    "u",
                    "--elasticsearch-password",
                    PASSWORD,
                ]);
                set_arg(
                    &mut a,
                    "--queue-url",
                    &format!("{}/000000000000/missing", standins().aws_url),
                );
                a
            },
            vec![("RUST_LOG", "debug".into())],
            1,
        ),
        (
            "check, debug logs",
            [vec!["check".to_string()], args(&[])].concat(),
            vec![("RUST_LOG", "debug".into())],
            0,
        ),
        (
            "a run with URL credentials, JSON debug logs",
            args(&["--exit-when-idle", "--log-format", "json"]),
            vec![("RUST_LOG", "debug".into())],
            0,
        ),
        (
            "a run with a password, debug logs",
            plain(&[
                "--exit-when-idle",
                "--elasticsearch-username",
                "u",
                "--elasticsearch-password",
                PASSWORD,
            ]),
            vec![("RUST_LOG", "debug".into())],
            0,
        ),
        (
            "a run with an API key from the environment, trace logs",
            plain(&["--exit-when-idle"]),
            vec![
                ("RUST_LOG", "trace".into()),
                ("CLOUDTRAIL_INGEST_ELASTICSEARCH_API_KEY", API_KEY.into()),
            ],
            0,
        ),
    ];
    assert_eq!(
        base64(format!("{URL_USER}:{URL_PASSWORD}").as_bytes()),
        "aW5nZXN0LXVzZXI6dXJsLXBhc3MtN1Eydlh3"
    );
    assert_eq!(base64(b"u:ab"), "dTphYg==");
    let secrets = [
        URL_PASSWORD.to_string(),
        PASSWORD.to_string(),
        API_KEY.to_string(),
        base64(format!("{URL_USER}:{URL_PASSWORD}").as_bytes()),
        base64(format!("u:{PASSWORD}").as_bytes()),
    ];
    for (what, args, envs, code) in runs {
        let mut command = command();
        command.args(&args);
        for (name, value) in envs {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(code), "{what}: {text}");
        assert!(!text.is_empty(), "{what}: no output at all");
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} printed {secret}:\n{text}"
            );
        }
    }
    assert_eq!(
        env.messages_left().await,
        0,
        "the runs ingested the message"
    );
}

/// A TOML file for `--config` in the temporary folder.
fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("cli-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("a config file");
    path
}

#[test]
fn a_config_file_is_beaten_by_the_environment_which_is_beaten_by_a_flag() {
    let file = config_file(
        "precedence",
        r#"
queue-url = "https://sqs.us-east-1.amazonaws.com/123456789012/from-file"
elasticsearch-url = "https://elastic:file-secret-7Kq@es.example:9200"
bulk-max-bytes = 1048576
bulk-linger = "2s"
bulk-concurrency = 3
rules = ["a.yml", "b.yml"]
exit-when-idle = true
"#,
    );
    let output = command()
        .args(["--config", file.to_str().unwrap(), "--print-config"])
        .args(["--bulk-max-bytes", "2048"])
        .env("CLOUDTRAIL_INGEST_BULK_MAX_BYTES", "4096")
        .env("CLOUDTRAIL_INGEST_BULK_LINGER", "3s")
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", stderr_lines(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    for line in [
        "queue-url = \"https://sqs.us-east-1.amazonaws.com/123456789012/from-file\"",
        "bulk-max-bytes = 2048",
        "bulk-linger = \"3s\"",
        "bulk-concurrency = 3",
        "rules = [\"a.yml\", \"b.yml\"]",
        "exit-when-idle = true",
        "elasticsearch-url = \"https://es.example:9200/\"",
        "index-prefix = \"cloudtrail\"",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line} in:\n{printed}");
    }
    assert!(!printed.contains("file-secret-7Kq"), "{printed}");

    // What --print-config prints is a configuration file of its own.
    let again = config_file("printed", &printed);
    let output = command()
        .args(["--config", again.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", stderr_lines(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("bulk-max-bytes = 2048"));
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(again);
}

#[test]
fn a_bad_config_file_is_one_line_naming_the_file_and_the_key_and_exit_2() {
    for (name, text, expected) in [
        (
            "unknown",
            "kafka-brokers = \"b:9092\"\n",
            "unknown key \"kafka-brokers\"",
        ),
        (
            "type",
            "bulk-max-bytes = \"lots\"\n",
            "bulk-max-bytes: invalid value 'lots'",
        ),
        (
            "switch",
            "exit-when-idle = \"yes\"\n",
            "exit-when-idle: must be true or false",
        ),
        (
            "choice",
            "bulk-compression = \"zip\"\n",
            "[possible values: none, gzip]",
        ),
        ("toml", "bulk-max-bytes = \n", "string"),
    ] {
        let file = config_file(name, text);
        let output = command()
            .args(["--config", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        let lines = stderr_lines(&output);
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
        let path = file.display().to_string();
        assert!(lines[0].contains(&path), "{name}: {lines:?}");
        assert!(
            name == "toml" || lines[0].contains(expected),
            "{name}: {lines:?}"
        );
        let _ = std::fs::remove_file(file);
    }
    let output = command()
        .args(["kafka", "--config", "/no/such/file.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_lines(&output)[0].contains("/no/such/file.toml"));
}

#[test]
fn secrets_from_a_config_file_never_print() {
    let file = config_file(
        "secrets",
        r#"
kafka-brokers = "127.0.0.1:9092"
kafka-sasl-password = "sasl-secret-3Vn"
kafka-option = ["ssl.key.password=option-secret-8Lp"]
elasticsearch-api-key = "api-secret-2Wd"
alert-webhook = ["https://hooks.example/services/T0/B0/hook-secret-6Yt"]
"#,
    );
    let help = command()
        .args(["kafka", "--config", file.to_str().unwrap(), "--help"])
        .output()
        .unwrap();
    let printed = command()
        .args([
            "kafka",
            "--config",
            file.to_str().unwrap(),
            "--print-config",
        ])
        .output()
        .unwrap();
    assert!(printed.status.success(), "{:?}", stderr_lines(&printed));
    let text = format!(
        "{}{}{}",
        String::from_utf8_lossy(&help.stdout),
        String::from_utf8_lossy(&printed.stdout),
        String::from_utf8_lossy(&printed.stderr)
    );
    for secret in [
        "sasl-secret-3Vn",
        "option-secret-8Lp",
        "api-secret-2Wd",
        "hook-secret-6Yt",
    ] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    assert!(
        text.contains("kafka-option = [\"ssl.key.password=(redacted)\"]"),
        "{text}"
    );
    let _ = std::fs::remove_file(file);
}
