//! The deploy/ folder, checked against the linters users run and against the binary it deploys.
//!
//! - CloudFormation: `cfn-lint` is clean; `checkov` is clean for the template as written (an
//!   existing trail) and with `CreateTrail` defaulting to true (checkov resolves conditions with
//!   the parameters' defaults, so only then does it see the trail and its bucket), and every check
//!   it skips says why; the queue, topic, subscription and policies are wired as the worker needs.
//! - Docker: `checkov` and `hadolint` are clean; the health check script passes without a metrics
//!   listener and follows `/healthz` with one.
//! - The binary: every `CLOUDTRAIL_INGEST_*` variable the deploy files name is one that `--help`
//!   lists, the example settings are accepted, and every stop timeout is longer than the
//!   shutdown grace.
//! - IAM: the worker's policies grant exactly the actions it calls, none with a wildcard.
//! - Kibana: the saved objects reference each other and aggregate only on fields the index
//!   template maps as keyword, boolean or date.
//!
//! The linters come from ./.venv-deploy (tests/setup-deploy.sh) and run offline (no API key,
//! `--skip-download`, no update check). Where `strace` works, the checkov runs are traced and
//! must open no network connection other than loopback.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cloudtrail_ingest::format::cloudtrail::mapping::mappings as cloudtrail_mappings;
use cloudtrail_ingest::format::mapping::FreeFormMapping;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cloudtrail-ingest");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SCRATCH: &str = env!("CARGO_TARGET_TMPDIR");

const TEMPLATE: &str = "deploy/cloudformation/cloudtrail-ingest.yaml";
const SERVICES: &str = "deploy/cloudformation/services.yaml";
const DOCKERFILE: &str = "deploy/docker/Dockerfile";
const HEALTHCHECK: &str = "deploy/docker/healthcheck.sh";
const DOCKERIGNORE: &str = ".dockerignore";
const TASK_DEFINITION: &str = "deploy/ecs/task-definition.json";
const TASK_ROLE_POLICY: &str = "deploy/ecs/task-role-policy.json";
const EXECUTION_ROLE_POLICY: &str = "deploy/ecs/execution-role-policy.json";
const UNIT: &str = "deploy/systemd/cloudtrail-ingest.service";
const WEBHOOK_UNIT: &str = "deploy/systemd/cloudtrail-ingest-webhook.service";
const WEBHOOK_ENV_EXAMPLE: &str = "deploy/systemd/cloudtrail-ingest-webhook.env.example";
const KONNECT_OBJECTS: &str = "deploy/kibana/konnect-audit.ndjson";
const CONFLUENT_OBJECTS: &str = "deploy/kibana/confluent-audit.ndjson";
const NDJSON_OBJECTS: &str = "deploy/kibana/ndjson.ndjson";
const ENV_EXAMPLE: &str = "deploy/systemd/cloudtrail-ingest.env.example";
const KAFKA_UNIT: &str = "deploy/systemd/cloudtrail-ingest-kafka.service";
const KAFKA_ENV_EXAMPLE: &str = "deploy/systemd/cloudtrail-ingest-kafka.env.example";
const BACKFILL_UNIT: &str = "deploy/systemd/cloudtrail-ingest-backfill.service";
const BACKFILL_ENV_EXAMPLE: &str = "deploy/systemd/cloudtrail-ingest-backfill.env.example";
const SAVED_OBJECTS: &str = "deploy/kibana/cloudtrail-ingest.ndjson";

/// Where the image puts the health check script (Dockerfile `COPY`, `HEALTHCHECK`, ECS).
const IMAGE_HEALTHCHECK: &str = "/usr/local/bin/cloudtrail-ingest-healthcheck";

/// Every AWS action the worker calls, and nothing else (docs/sqs.md, "IAM permissions").
const WORKER_ACTIONS: [&str; 6] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "s3:GetObject",
    "kms:Decrypt",
];

/// What the worker calls on Amazon OpenSearch Service (domains, Serverless collections) with
/// `--elasticsearch-aws-sigv4`: granted by the template when its domain or collection is named.
const SIGV4_ACTIONS: [&str; 5] = [
    "es:ESHttpGet",
    "es:ESHttpHead",
    "es:ESHttpPost",
    "es:ESHttpPut",
    "aoss:APIAccessAll",
];

/// What ECS needs to start the task: pull the image, write its logs, read the cluster secret.
const EXECUTION_ACTIONS: [&str; 7] = [
    "ecr:GetAuthorizationToken",
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "secretsmanager:GetSecretValue",
];

/// A linter that waits on the network would hang rather than fail: this bounds it.
const LINTER_DEADLINE: Duration = Duration::from_secs(300);

fn path(relative: &str) -> PathBuf {
    Path::new(ROOT).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative)).unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

fn read_json(relative: &str) -> Value {
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// A file name in the scratch directory that no other test uses.
fn scratch_file(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Path::new(SCRATCH).join(format!("deploy-{}-{n}-{name}", std::process::id()))
}

fn deploy_venv() -> PathBuf {
    let venv = std::env::var_os("CLOUDTRAIL_INGEST_DEPLOY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| path(".venv-deploy"));
    assert!(
        venv.join("bin/python").exists(),
        "the deploy linters are not installed: run tests/setup-deploy.sh"
    );
    venv
}

/// `program` with an environment that keeps the linters offline: nothing of the caller's
/// (no platform API key), no policy download, no update check, no package scan.
fn offline(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(ROOT)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", SCRATCH)
        .env("LANG", "C.UTF-8")
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .stdin(Stdio::null());
    command
}

fn linter(name: &str) -> Command {
    offline(deploy_venv().join("bin").join(name))
}

/// Runs `command` to completion, killing it after `deadline`.
fn run(mut command: Command, deadline: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes)
                .expect("reading a child's output");
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break status;
        }
        if started.elapsed() > deadline {
            child.kill().expect("killing a child");
            child.wait().expect("reaping a child");
            panic!("{command:?} ran longer than {deadline:?}; is it waiting on the network?");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether `strace` can trace here (it is missing on some machines, and ptrace may be denied).
fn strace_works() -> bool {
    Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=connect",
            "-o",
            "/dev/null",
            "true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs checkov with `args`; where strace works, asserts that it connected to nothing but local
/// sockets and loopback addresses.
fn checkov(args: &[&str]) -> Output {
    let checkov = deploy_venv().join("bin/checkov");
    if !strace_works() {
        eprintln!("strace cannot trace here: checkov runs without the network check");
        let mut command = linter("checkov");
        command.args(args);
        return run(command, LINTER_DEADLINE);
    }
    let trace = scratch_file("checkov.strace");
    let mut command = offline("strace");
    command
        .args(["-f", "-qq", "-e", "trace=connect", "-o"])
        .arg(&trace)
        .arg(checkov)
        .args(args);
    let output = run(command, LINTER_DEADLINE);
    let calls = std::fs::read_to_string(&trace).expect("reading the strace log");
    std::fs::remove_file(&trace).expect("removing the strace log");
    let remote: Vec<&str> = calls
        .lines()
        .filter(|l| l.contains("connect("))
        .filter(|l| l.contains("sa_family=AF_INET"))
        .filter(|l| !l.contains("inet_addr(\"127.") && !l.contains("\"::1\""))
        .collect();
    assert!(
        remote.is_empty(),
        "checkov opened network connections: {remote:#?}"
    );
    output
}

/// `file` with these parameters' defaults replaced, so that checkov (which follows the
/// defaults through the conditions) sees the optional resources too.
fn template_variant(file: &str, defaults: &[(&str, &str)], name: &str) -> PathBuf {
    let mut template = read(file);
    for (parameter, value) in defaults {
        let block = template
            .find(&format!("\n  {parameter}:\n"))
            .unwrap_or_else(|| panic!("{file} has a {parameter} parameter"));
        let default = block
            + template[block..]
                .find("    Default: ")
                .unwrap_or_else(|| panic!("{parameter} has a default"));
        // The next line indented as a parameter name, not as one of this one's properties.
        let next_parameter = template[block + 1..]
            .match_indices("\n  ")
            .map(|(at, _)| block + 1 + at)
            .find(|&at| !template[at + 3..].starts_with(' '))
            .unwrap_or_else(|| panic!("more parameters follow {parameter}"));
        assert!(default < next_parameter, "{parameter}'s Default is its own");
        let line_end = default + template[default..].find('\n').unwrap() + 1;
        template = format!(
            "{}    Default: \"{value}\"\n{}",
            &template[..default],
            &template[line_end..]
        );
    }
    let variant = scratch_file(name);
    std::fs::write(&variant, template).expect("writing the template variant");
    variant
}

/// The services template with every part (and a cluster port beyond 443).
const EVERY_SERVICE: [(&str, &str); 11] = [
    (
        "WorkerQueueUrl",
        "https://sqs.us-east-1.amazonaws.com/123456789012/cloudtrail-ingest",
    ),
    (
        "WorkerPolicyArn",
        "arn:aws:iam::123456789012:policy/cloudtrail-ingest-worker",
    ),
    ("KafkaBrokers", "pkc-00000.us-east-1.aws.confluent.cloud:9092"),
    (
        "KafkaCredentialsSecretArn",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:kafka-AbCdEf",
    ),
    (
        "WebhookListenerArn",
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/alb/0123456789abcdef/0123456789abcdef",
    ),
    ("WebhookLoadBalancerSecurityGroupId", "sg-0123456789abcdef0"),
    ("WebhookHostName", "audit.example.com"),
    (
        "WebhookAuthorizationSecretArn",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:hook-AbCdEf",
    ),
    ("BackfillBucket", "my-trail-bucket"),
    (
        "BackfillKmsKeyArn",
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ),
    ("ElasticsearchPort", "9200"),
];

/// The queue stack's template as JSON.
fn template_json() -> Value {
    cloudformation_json(TEMPLATE)
}

/// A template as JSON, decoded by cfn-lint (which understands the `!Ref` short forms).
fn cloudformation_json(file: &str) -> Value {
    let mut command = linter("python");
    command.args([
        "-c",
        "import json, sys\n\
         from cfnlint.decode import decode\n\
         template, problems = decode(sys.argv[1])\n\
         assert not problems, problems\n\
         json.dump(template, sys.stdout)",
        file,
    ]);
    let output = run(command, LINTER_DEADLINE);
    assert_success(&output, "decoding the template");
    serde_json::from_slice(&output.stdout).expect("the decoded template is JSON")
}

/// `--help` of the default command and of every other source's command.
fn help() -> String {
    let mut text = String::new();
    for args in [
        &["--help"][..],
        &["kafka", "--help"],
        &["webhook", "--help"],
        &["backfill", "--help"],
    ] {
        let output = Command::new(BIN).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        text.push_str(&String::from_utf8(output.stdout).expect("--help is UTF-8"));
    }
    text
}

/// Every `CLOUDTRAIL_INGEST_*` name in `text`.
fn settings_named_in(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "CLOUDTRAIL_INGEST_";
    text.match_indices(PREFIX)
        .map(|(at, _)| {
            let rest = &text[at + PREFIX.len()..];
            let len = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            format!("{PREFIX}{}", &rest[..len])
        })
        // `CLOUDTRAIL_INGEST_*` in prose names them all, not one.
        .filter(|name| name.len() > PREFIX.len())
        .collect()
}

/// The `--shutdown-grace` default that `--help` shows.
fn default_shutdown_grace(help: &str) -> Duration {
    let flag = help
        .find("--shutdown-grace")
        .expect("--help lists --shutdown-grace");
    let after = &help[flag..];
    let end = after[2..].find("\n      --").map_or(after.len(), |i| i + 2);
    let default = after[..end]
        .split("[default: ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .expect("--shutdown-grace shows its default");
    humantime::parse_duration(default).expect("the default grace is a duration")
}

/// `KEY=value` lines of an environment file, comments left out.
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l.split_once('=').expect("an environment line is KEY=value");
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// The environment of the task definition's only container.
fn task_environment(task: &Value) -> BTreeMap<String, String> {
    task["containerDefinitions"][0]["environment"]
        .as_array()
        .expect("the container has an environment")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `Key=Value` settings of a systemd unit, in order.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (key, value) = l.split_once('=').expect("a unit line is Key=Value");
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// The statements of an IAM policy document, with CloudFormation's `Fn::If` alternatives
/// flattened (both branches count: either may be deployed).
fn statements(policy: &Value) -> Vec<&Value> {
    fn collect<'a>(statement: &'a Value, out: &mut Vec<&'a Value>) {
        if let Some(branches) = statement.get("Fn::If").and_then(Value::as_array) {
            for branch in &branches[1..] {
                collect(branch, out);
            }
        } else if statement.get("Effect").is_some() {
            out.push(statement);
        }
    }
    let mut out = Vec::new();
    for statement in policy["Statement"].as_array().expect("a Statement list") {
        collect(statement, &mut out);
    }
    out
}

fn actions(statement: &Value) -> Vec<&str> {
    match &statement["Action"] {
        Value::String(action) => vec![action.as_str()],
        Value::Array(actions) => actions.iter().map(|a| a.as_str().unwrap()).collect(),
        other => panic!("Action is neither a string nor a list: {other}"),
    }
}

/// Asserts that a worker policy allows exactly [`WORKER_ACTIONS`] and `extra`, with no
/// wildcard action, no negation and no `*` resource.
fn assert_worker_policy(policy: &Value, what: &str, extra: &[&str]) {
    let mut granted = BTreeSet::new();
    for statement in statements(policy) {
        assert_eq!(statement["Effect"], "Allow", "{what}: {statement}");
        for negation in ["NotAction", "NotResource", "NotPrincipal"] {
            assert!(statement.get(negation).is_none(), "{what}: {statement}");
        }
        assert_ne!(statement["Resource"], "*", "{what}: {statement}");
        for action in actions(statement) {
            assert!(!action.contains('*'), "{what}: wildcard action {action}");
            granted.insert(action);
        }
        if actions(statement).contains(&"kms:Decrypt") {
            let via = &statement["Condition"]["StringEquals"]["kms:ViaService"];
            let via = via.as_str().or_else(|| via["Fn::Sub"].as_str());
            assert!(
                via.is_some_and(|v| v.starts_with("s3.") && v.ends_with(".amazonaws.com")),
                "{what}: kms:Decrypt only through S3: {statement}"
            );
        }
        if actions(statement).contains(&"s3:GetObject") {
            let resource = statement["Resource"].to_string();
            assert!(resource.contains("/AWSLogs/*"), "{what}: {resource}");
        }
    }
    let expected: BTreeSet<&str> = WORKER_ACTIONS.iter().chain(extra).copied().collect();
    assert_eq!(granted, expected, "{what}");
}

/// The mapping of a dotted field in the index template's event mappings.
fn mapping<'a>(mappings: &'a Value, field: &str) -> Option<&'a Value> {
    let mut node = mappings;
    for part in field.split('.') {
        // A multi-field (`title.keyword`) is under `fields`.
        node = node["properties"]
            .get(part)
            .or_else(|| node["fields"].get(part))?;
    }
    Some(node)
}

/// Field names a KQL query compares (`field : value`, joined by and/or/not).
fn kql_fields(query: &str) -> Vec<String> {
    let parts: Vec<&str> = query.split(" : ").collect();
    parts[..parts.len() - 1]
        .iter()
        .filter_map(|left| left.split_whitespace().last())
        .map(|f| f.trim_start_matches('(').to_string())
        .collect()
}

#[test]
fn cloudformation_templates_pass_cfn_lint() {
    let every_service = template_variant(SERVICES, &EVERY_SERVICE, "services-every-part.yaml");
    for template in [Path::new(TEMPLATE), Path::new(SERVICES), &every_service] {
        let mut command = linter("cfn-lint");
        command.arg(template);
        assert_success(
            &run(command, LINTER_DEADLINE),
            &format!("cfn-lint {}", template.display()),
        );
    }
}

/// checkov's JSON report on `template` (not --quiet: it then lists the passed and skipped
/// checks too), asserted clean: nothing failed, everything parsed, every skip has its reason,
/// and each of `resources` was scanned.
fn assert_checkov_clean(template: &Path, resources: &[&str]) {
    let output = checkov(&[
        "-f",
        template.to_str().expect("a UTF-8 path"),
        "--framework",
        "cloudformation",
        "--compact",
        "--skip-download",
        "-o",
        "json",
    ]);
    let what = format!("checkov {}", template.display());
    assert_success(&output, &what);
    let report: Value = serde_json::from_slice(&output.stdout).expect("checkov's JSON report");
    assert_eq!(report["summary"]["failed"], 0, "{what}: {report:#}");
    assert_eq!(report["summary"]["parsing_errors"], 0, "{what}: {report:#}");
    let passed = report["summary"]["passed"].as_u64().unwrap();
    assert!(passed >= 10, "{what} ran only {passed} checks: {report:#}");
    for resource in resources {
        assert!(
            report["results"]["passed_checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["resource"] == *resource),
            "{what} did not scan {resource}"
        );
    }
    for skipped in report["results"]["skipped_checks"].as_array().unwrap() {
        let reason = skipped["check_result"]["suppress_comment"]
            .as_str()
            .unwrap_or_default();
        assert!(
            reason.len() > 40 && reason != "No comment provided",
            "{} on {} is skipped without a reason",
            skipped["check_id"],
            skipped["resource"]
        );
    }
}

#[test]
fn cloudformation_templates_pass_checkov_as_given_and_with_every_option() {
    let output = checkov(&[
        "-f",
        TEMPLATE,
        "--framework",
        "cloudformation",
        "--quiet",
        "--compact",
        "--skip-download",
    ]);
    assert_success(&output, "checkov (existing trail)");

    let everything = template_variant(
        TEMPLATE,
        &[("CreateTrail", "true"), ("CreateEventBridgeRule", "true")],
        "cloudtrail-ingest-with-everything.yaml",
    );
    assert_checkov_clean(
        &everything,
        &[
            "AWS::S3::Bucket.TrailBucket",
            "AWS::CloudTrail::Trail.Trail",
        ],
    );
    std::fs::remove_file(everything).expect("removing the template variant");

    let services = template_variant(SERVICES, &EVERY_SERVICE, "services-for-checkov.yaml");
    assert_checkov_clean(
        &services,
        &[
            "AWS::ECS::TaskDefinition.KafkaTaskDefinition",
            "AWS::IAM::Role.BackfillTaskRole",
            "AWS::ECS::TaskDefinition.BackfillTaskDefinition",
            "AWS::EC2::SecurityGroup.WebhookSecurityGroup",
        ],
    );
    std::fs::remove_file(services).expect("removing the template variant");
}

#[test]
fn dockerfile_passes_checkov_and_hadolint() {
    let output = checkov(&[
        "-f",
        DOCKERFILE,
        "--framework",
        "dockerfile",
        "--quiet",
        "--compact",
        "--skip-download",
    ]);
    assert_success(&output, "checkov (Dockerfile)");
    let mut command = linter("hadolint");
    command.arg(DOCKERFILE);
    assert_success(&run(command, LINTER_DEADLINE), "hadolint");
}

#[test]
fn dockerfile_is_multi_stage_locked_and_unprivileged() {
    let dockerfile = read(DOCKERFILE);
    let instructions: Vec<&str> = dockerfile
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    assert!(dockerfile.contains("cargo build --release --locked"));
    let user = instructions
        .iter()
        .rfind(|l| l.starts_with("USER "))
        .expect("the image sets a user");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    assert!(dockerfile.contains(&format!("deploy/docker/healthcheck.sh {IMAGE_HEALTHCHECK}")));
    assert!(dockerfile.contains(&format!("CMD [\"{IMAGE_HEALTHCHECK}\"]")));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/cloudtrail-ingest\"]"));

    // The build context keeps what `cargo build` and the image need, and drops the rest.
    let dockerignore = read(DOCKERIGNORE);
    let ignored: BTreeSet<&str> = dockerignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    for heavy in ["target", ".git", ".venv", ".venv-*"] {
        assert!(ignored.contains(heavy), ".dockerignore keeps {heavy}");
    }
    for needed in ["src", "Cargo.toml", "Cargo.lock", "deploy", "deploy/docker"] {
        assert!(!ignored.contains(needed), ".dockerignore drops {needed}");
    }
}

/// Answers one HTTP request with `status` and returns the request line it got.
fn answer_once(listener: TcpListener, status: &'static str) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("the health check connects");
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).expect("reading the request") == 0 {
                break;
            }
            request.push(byte[0]);
        }
        let response =
            format!("HTTP/1.1 {status}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
        stream.write_all(response.as_bytes()).expect("answering");
        let request = String::from_utf8_lossy(&request).to_string();
        request.lines().next().unwrap_or_default().to_string()
    })
}

fn healthcheck(listen: Option<&str>) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(path(HEALTHCHECK))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if let Some(listen) = listen {
        command.env("CLOUDTRAIL_INGEST_METRICS_LISTEN", listen);
    }
    run(command, Duration::from_secs(30))
}

#[test]
fn container_health_check_passes_without_listener_and_follows_healthz() {
    assert!(healthcheck(None).status.success(), "metrics off: healthy");

    for (status, healthy) in [("200 OK", true), ("503 Service Unavailable", false)] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = answer_once(listener, status);
        // A wildcard listener is checked through loopback.
        let output = healthcheck(Some(&format!("0.0.0.0:{port}")));
        assert_eq!(server.join().unwrap(), "GET /healthz HTTP/1.0");
        assert_eq!(output.status.success(), healthy, "{status}: {output:?}");
    }

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let output = healthcheck(Some(&format!("127.0.0.1:{port}")));
    assert!(!output.status.success(), "nothing listening: unhealthy");
}

#[test]
fn deploy_files_name_only_settings_the_binary_has() {
    let known = settings_named_in(&help());
    assert!(known.len() > 20, "--help lists the settings: {known:?}");
    let mut named = BTreeSet::new();
    for file in [
        DOCKERFILE,
        HEALTHCHECK,
        TASK_DEFINITION,
        UNIT,
        ENV_EXAMPLE,
        TEMPLATE,
        SERVICES,
        WEBHOOK_UNIT,
        WEBHOOK_ENV_EXAMPLE,
        KAFKA_UNIT,
        KAFKA_ENV_EXAMPLE,
        BACKFILL_UNIT,
        BACKFILL_ENV_EXAMPLE,
    ] {
        for setting in settings_named_in(&read(file)) {
            assert!(
                known.contains(&setting),
                "{file} names {setting}, which `cloudtrail-ingest --help` does not list"
            );
            named.insert(setting);
        }
    }
    let task = read_json(TASK_DEFINITION);
    let environment = task_environment(&task);
    let examples = env_file(&read(ENV_EXAMPLE));
    for required in [
        "CLOUDTRAIL_INGEST_QUEUE_URL",
        "CLOUDTRAIL_INGEST_ELASTICSEARCH_URL",
        "CLOUDTRAIL_INGEST_LOG_FORMAT",
        "CLOUDTRAIL_INGEST_METRICS_LISTEN",
        "AWS_REGION",
    ] {
        assert!(environment.contains_key(required), "ECS sets {required}");
        assert!(
            examples.contains_key(required),
            "the env example sets {required}"
        );
    }
    assert_eq!(environment["CLOUDTRAIL_INGEST_LOG_FORMAT"], "json");
    let secrets: Vec<&str> = task["containerDefinitions"][0]["secrets"]
        .as_array()
        .expect("ECS takes the cluster credentials from secrets")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        secrets.iter().all(|s| [
            "CLOUDTRAIL_INGEST_ELASTICSEARCH_API_KEY",
            "CLOUDTRAIL_INGEST_ELASTICSEARCH_PASSWORD"
        ]
        .contains(s)),
        "{secrets:?}"
    );
    assert!(!secrets.is_empty());
    for secret in &secrets {
        assert!(
            !environment.contains_key(*secret),
            "{secret} only as a secret"
        );
        assert!(known.contains(*secret));
    }
}

/// The binary started as `cloudtrail-ingest <command>` with `settings` against closed loopback
/// ports: it must get past configuration (exit 2 is a configuration error) and fail on the
/// unreachable cluster (exit 1).
fn assert_settings_accepted(command: &[&str], settings: &BTreeMap<String, String>, what: &str) {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut binary = Command::new(BIN);
    binary
        .args(command)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", &nowhere)
        .envs(settings)
        .env("CLOUDTRAIL_INGEST_QUEUE_URL", format!("{nowhere}/queue"))
        .env("CLOUDTRAIL_INGEST_ELASTICSEARCH_URL", &nowhere)
        .env("CLOUDTRAIL_INGEST_METRICS_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null());
    let output = run(binary, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
}

#[test]
fn example_settings_are_accepted_by_the_binary() {
    assert_settings_accepted(&[], &env_file(&read(ENV_EXAMPLE)), ENV_EXAMPLE);
    assert_settings_accepted(
        &["kafka"],
        &env_file(&read(KAFKA_ENV_EXAMPLE)),
        KAFKA_ENV_EXAMPLE,
    );
    let mut backfill = env_file(&read(BACKFILL_ENV_EXAMPLE));
    let checkpoint = scratch_file("backfill-example-checkpoint.json");
    backfill.insert(
        "CLOUDTRAIL_INGEST_CHECKPOINT".into(),
        checkpoint.display().to_string(),
    );
    assert_settings_accepted(&["backfill"], &backfill, BACKFILL_ENV_EXAMPLE);

    let task = read_json(TASK_DEFINITION);
    let mut settings = task_environment(&task);
    for value in settings.values_mut() {
        if value.contains("${") {
            // Filled in when the task definition is rendered; AWS_REGION is the only one the
            // binary reads itself.
            *value = "us-east-1".to_string();
        }
    }
    for secret in task["containerDefinitions"][0]["secrets"]
        .as_array()
        .unwrap()
    {
        settings.insert(
            secret["name"].as_str().unwrap().to_string(),
            "secret".into(),
        );
    }
    assert_settings_accepted(&[], &settings, TASK_DEFINITION);
}

#[test]
fn stop_timeouts_exceed_the_shutdown_grace() {
    let default_grace = default_shutdown_grace(&help());
    let grace_in = |settings: &BTreeMap<String, String>| {
        settings
            .get("CLOUDTRAIL_INGEST_SHUTDOWN_GRACE")
            .map_or(default_grace, |g| humantime::parse_duration(g).unwrap())
    };

    let task = read_json(TASK_DEFINITION);
    let container = &task["containerDefinitions"][0];
    let stop_timeout = Duration::from_secs(container["stopTimeout"].as_u64().expect("stopTimeout"));
    let grace = grace_in(&task_environment(&task));
    assert!(
        stop_timeout > grace,
        "ECS stopTimeout {stop_timeout:?} <= grace {grace:?}"
    );
    assert!(
        stop_timeout <= Duration::from_secs(120),
        "Fargate allows at most 120 s"
    );

    for (unit, env) in [
        (UNIT, ENV_EXAMPLE),
        (WEBHOOK_UNIT, WEBHOOK_ENV_EXAMPLE),
        (KAFKA_UNIT, KAFKA_ENV_EXAMPLE),
        (BACKFILL_UNIT, BACKFILL_ENV_EXAMPLE),
    ] {
        let settings = unit_settings(&read(unit));
        let timeout_stop = settings
            .iter()
            .find(|(k, _)| k == "TimeoutStopSec")
            .map(|(_, v)| humantime::parse_duration(v).expect("TimeoutStopSec is a duration"))
            .expect("the unit sets TimeoutStopSec");
        let grace = grace_in(&env_file(&read(env)));
        assert!(
            timeout_stop > grace,
            "{unit}: TimeoutStopSec {timeout_stop:?} <= grace {grace:?}"
        );
    }
}

#[test]
fn worker_policies_grant_exactly_the_worker_actions() {
    assert_worker_policy(&read_json(TASK_ROLE_POLICY), TASK_ROLE_POLICY, &[]);
    let template = template_json();
    let policy = &template["Resources"]["WorkerPolicy"];
    assert_eq!(policy["Type"], "AWS::IAM::ManagedPolicy");
    assert_worker_policy(
        &policy["Properties"]["PolicyDocument"],
        "the template's WorkerPolicy",
        &SIGV4_ACTIONS,
    );
    // The OpenSearch statements exist only when their domain or collection is named.
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
    {
        if statement.to_string().contains("ESHttp") || statement.to_string().contains("aoss:") {
            let condition = statement["Fn::If"][0].as_str();
            assert!(
                matches!(condition, Some("WritesToDomain" | "WritesToCollection")),
                "{statement}"
            );
        }
    }
    for (file, expected) in [
        (
            "deploy/iam/opensearch-domain-policy.json",
            &SIGV4_ACTIONS[..4],
        ),
        (
            "deploy/iam/opensearch-serverless-policy.json",
            &SIGV4_ACTIONS[4..],
        ),
    ] {
        let policy = read_json(file);
        let granted: BTreeSet<&str> = statements(&policy).into_iter().flat_map(actions).collect();
        assert_eq!(granted, expected.iter().copied().collect(), "{file}");
    }
    assert_eq!(
        template["Outputs"]["PolicyArn"]["Value"]["Ref"],
        "WorkerPolicy"
    );
}

#[test]
fn execution_role_policy_covers_image_logs_and_secret_only() {
    let policy = read_json(EXECUTION_ROLE_POLICY);
    let task = read_json(TASK_DEFINITION);
    let allowed: BTreeSet<&str> = EXECUTION_ACTIONS.into_iter().collect();
    for statement in statements(&policy) {
        assert_eq!(statement["Effect"], "Allow");
        for action in actions(statement) {
            assert!(allowed.contains(action), "unexpected {action}");
        }
        // GetAuthorizationToken has no resource-level permissions; nothing else may use "*".
        if statement["Resource"] == "*" {
            assert_eq!(actions(statement), ["ecr:GetAuthorizationToken"]);
        }
    }
    let secrets: BTreeSet<String> = task["containerDefinitions"][0]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["valueFrom"].to_string())
        .collect();
    let readable: BTreeSet<String> = statements(&policy)
        .into_iter()
        .filter(|s| actions(s).contains(&"secretsmanager:GetSecretValue"))
        .map(|s| s["Resource"].to_string())
        .collect();
    assert_eq!(
        secrets, readable,
        "the execution role reads exactly the task's secrets"
    );
}

#[test]
fn ecs_task_definition_is_a_valid_register_request() {
    // Validated against the ECS API model that botocore ships; no request is sent.
    let mut command = linter("python");
    command
        .args([
            "-c",
            "import json, sys, botocore.session\n\
             from botocore.validate import ParamValidator\n\
             model = botocore.session.get_session().get_service_model('ecs')\n\
             shape = model.operation_model('RegisterTaskDefinition').input_shape\n\
             report = ParamValidator().validate(json.load(open(sys.argv[1])), shape)\n\
             sys.exit(report.generate_report() or 0)",
        ])
        .arg(path(TASK_DEFINITION));
    assert_success(
        &run(command, LINTER_DEADLINE),
        "RegisterTaskDefinition validation",
    );

    let task = read_json(TASK_DEFINITION);
    assert_eq!(task["networkMode"], "awsvpc");
    assert!(task["requiresCompatibilities"]
        .as_array()
        .unwrap()
        .contains(&Value::from("FARGATE")));
    for role in ["taskRoleArn", "executionRoleArn"] {
        assert!(
            task[role].as_str().is_some_and(|r| r.starts_with("${")),
            "{role}"
        );
    }
    let container = &task["containerDefinitions"][0];
    assert_eq!(container["logConfiguration"]["logDriver"], "awslogs");
    assert_eq!(container["healthCheck"]["command"][1], IMAGE_HEALTHCHECK);
    let listen = &task_environment(&task)["CLOUDTRAIL_INGEST_METRICS_LISTEN"];
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(container["portMappings"][0]["containerPort"], port);
}

#[test]
fn cloudformation_resources_are_wired_as_the_worker_expects() {
    let template = template_json();
    let parameters = &template["Parameters"];
    assert_eq!(parameters["VisibilityTimeout"]["Default"], 300);
    assert_eq!(parameters["MaxReceiveCount"]["Default"], 5);
    let resources = &template["Resources"];
    let properties = |name: &str| &resources[name]["Properties"];

    let queue = properties("Queue");
    assert_eq!(queue["VisibilityTimeout"]["Ref"], "VisibilityTimeout");
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"],
        serde_json::json!(["DeadLetterQueue", "Arn"])
    );
    assert_eq!(
        queue["RedrivePolicy"]["maxReceiveCount"]["Ref"],
        "MaxReceiveCount"
    );
    for name in ["Queue", "DeadLetterQueue"] {
        assert_eq!(properties(name)["SqsManagedSseEnabled"], true, "{name}");
    }
    assert!(properties("Topic")["KmsMasterKeyId"].is_object());

    let subscription = properties("Subscription");
    assert_eq!(subscription["Protocol"], "sqs");
    assert_eq!(subscription["RawMessageDelivery"], false);
    assert_eq!(subscription["TopicArn"]["Ref"], "Topic");

    // Only the topic may send, and (with CreateEventBridgeRule) the one rule.
    let queue_policy = statements(&properties("QueuePolicy")["PolicyDocument"]);
    assert_eq!(queue_policy.len(), 2, "{queue_policy:?}");
    assert_eq!(queue_policy[0]["Principal"]["Service"], "sns.amazonaws.com");
    assert_eq!(queue_policy[0]["Action"], "sqs:SendMessage");
    assert_eq!(
        queue_policy[0]["Condition"]["ArnEquals"]["aws:SourceArn"]["Ref"],
        "Topic"
    );
    assert_eq!(
        queue_policy[1]["Principal"]["Service"],
        "events.amazonaws.com"
    );
    assert_eq!(queue_policy[1]["Action"], "sqs:SendMessage");
    assert_eq!(
        queue_policy[1]["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"],
        serde_json::json!(["CloudTrailEventsRule", "Arn"])
    );
    assert_eq!(parameters["CreateEventBridgeRule"]["Default"], "false");

    // The rule: CloudTrail's detail types from AWS sources only, to the queue, optionally
    // narrowed to some eventNames.
    let rule = &resources["CloudTrailEventsRule"];
    assert_eq!(rule["Condition"], "SendsThroughEventBridge");
    let patterns = rule["Properties"]["EventPattern"]["Fn::If"]
        .as_array()
        .expect("a pattern with and without eventNames");
    assert_eq!(patterns[0], "FiltersEventNames");
    for pattern in &patterns[1..] {
        assert_eq!(
            pattern["detail-type"],
            serde_json::json!([{"suffix": " via CloudTrail"}])
        );
        assert_eq!(pattern["source"], serde_json::json!([{"prefix": "aws."}]));
    }
    assert_eq!(
        patterns[1]["detail"]["eventName"]["Ref"],
        "EventBridgeEventNames"
    );
    let targets = rule["Properties"]["Targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(
        targets[0]["Arn"]["Fn::GetAtt"],
        serde_json::json!(["Queue", "Arn"])
    );

    let topic_policy = statements(&properties("TopicPolicy")["PolicyDocument"]);
    assert_eq!(topic_policy.len(), 1);
    assert_eq!(
        topic_policy[0]["Principal"]["Service"],
        "cloudtrail.amazonaws.com"
    );
    let conditions = &topic_policy[0]["Condition"]["StringEquals"];
    assert!(conditions["aws:SourceArn"].is_object() && conditions["aws:SourceAccount"].is_object());

    for optional in ["Trail", "TrailBucket", "TrailBucketPolicy"] {
        assert_eq!(
            resources[optional]["Condition"], "CreateTrailResources",
            "{optional}"
        );
    }
    assert_eq!(properties("Trail")["SnsTopicName"]["Ref"], "Topic");
    let bucket = properties("TrailBucket");
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    for (_, blocked) in bucket["PublicAccessBlockConfiguration"]
        .as_object()
        .unwrap()
    {
        assert_eq!(blocked, true);
    }
    let bucket_policy = statements(&properties("TrailBucketPolicy")["PolicyDocument"]);
    assert!(
        bucket_policy
            .iter()
            .any(|s| s["Effect"] == "Deny"
                && s["Condition"]["Bool"]["aws:SecureTransport"] == "false")
    );

    for output in ["QueueUrl", "QueueArn", "DlqArn", "TopicArn", "PolicyArn"] {
        assert!(template["Outputs"].get(output).is_some(), "output {output}");
    }
}

/// `key=value` lines that set up the sandbox of the SQS unit: everything from its resource
/// limits on.
fn sandbox(settings: &[(String, String)]) -> Vec<(String, String)> {
    let from = settings
        .iter()
        .position(|(k, _)| k == "MemoryMax")
        .expect("the unit limits its memory");
    settings[from..]
        .iter()
        .filter(|(k, _)| k != "WantedBy")
        .cloned()
        .collect()
}

#[test]
fn systemd_units_are_hardened_and_wait_for_the_grace_period() {
    let unit = read(UNIT);
    let settings = unit_settings(&unit);
    let has = |key: &str, value: &str| settings.iter().any(|(k, v)| k == key && v == value);
    for (key, value) in [
        ("ExecStart", "/usr/local/bin/cloudtrail-ingest"),
        (
            "EnvironmentFile",
            "/etc/cloudtrail-ingest/cloudtrail-ingest.env",
        ),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert!(has(key, value), "{UNIT} lacks {key}={value}");
    }
    assert!(settings.iter().any(|(k, _)| k == "MemoryMax"));

    // Every other source's unit: its own command and environment file, the same sandbox.
    for (other, own) in [
        (
            WEBHOOK_UNIT,
            &[
                ("ExecStart", "/usr/local/bin/cloudtrail-ingest webhook"),
                ("EnvironmentFile", "/etc/cloudtrail-ingest/webhook.env"),
                ("LoadCredential", "tls.key:/etc/cloudtrail-ingest/tls.key"),
                ("Restart", "on-failure"),
            ][..],
        ),
        (
            KAFKA_UNIT,
            &[
                ("ExecStart", "/usr/local/bin/cloudtrail-ingest kafka"),
                ("EnvironmentFile", "/etc/cloudtrail-ingest/kafka.env"),
                ("Restart", "on-failure"),
            ],
        ),
        (
            BACKFILL_UNIT,
            &[
                ("ExecStart", "/usr/local/bin/cloudtrail-ingest backfill"),
                ("EnvironmentFile", "/etc/cloudtrail-ingest/backfill.env"),
                ("Type", "oneshot"),
                ("TimeoutStartSec", "infinity"),
                ("StateDirectory", "cloudtrail-ingest-backfill"),
            ],
        ),
    ] {
        let other_settings = unit_settings(&read(other));
        for (key, value) in own {
            assert!(
                other_settings.iter().any(|(k, v)| k == key && v == value),
                "{other} lacks {key}={value}"
            );
        }
        assert_eq!(sandbox(&other_settings), sandbox(&settings), "{other}");
    }
    // The backfill keeps its checkpoint where the sandbox lets it write.
    assert!(read(BACKFILL_ENV_EXAMPLE)
        .contains("CLOUDTRAIL_INGEST_CHECKPOINT=/var/lib/cloudtrail-ingest-backfill/"));

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the units are not verified");
        return;
    }
    for (unit, env) in [
        (UNIT, ENV_EXAMPLE),
        (KAFKA_UNIT, KAFKA_ENV_EXAMPLE),
        (BACKFILL_UNIT, BACKFILL_ENV_EXAMPLE),
    ] {
        verify_unit(unit, env);
    }
}

/// `systemd-analyze verify` and `security` of `unit` as installed: the binary in place, the
/// environment file beside it.
fn verify_unit(unit: &str, env: &str) {
    let name = Path::new(unit).file_name().unwrap().to_str().unwrap();
    let copy = scratch_file(name);
    let text = read(unit);
    let environment_file = text
        .lines()
        .find_map(|l| l.strip_prefix("EnvironmentFile="))
        .expect("the unit has an environment file")
        .to_string();
    let text = text
        .replace(
            "ExecStart=/usr/local/bin/cloudtrail-ingest",
            &format!("ExecStart={BIN}"),
        )
        .replace(
            &format!("EnvironmentFile={environment_file}"),
            &format!("EnvironmentFile={}", path(env).display()),
        );
    std::fs::write(&copy, text).expect("writing the unit copy");
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify").arg(&copy);
    let output = run(verify, Duration::from_secs(60));
    assert_success(&output, &format!("systemd-analyze verify {unit}"));
    assert!(
        output.stderr.is_empty(),
        "{unit}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Exposure 2.0 or lower on systemd's 0 (locked down) to 10 (unprotected) scale.
    let mut security = Command::new("systemd-analyze");
    security
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&copy);
    assert_success(
        &run(security, Duration::from_secs(60)),
        &format!("systemd-analyze security {unit}"),
    );
    std::fs::remove_file(copy).expect("removing the unit copy");
}

/// The saved objects of one file of `deploy/kibana/`, one per line.
fn saved_objects(file: &str) -> Vec<Value> {
    read(file)
        .lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}:{}: {e}", n + 1))
        })
        .collect()
}

/// What a file of saved objects must be to import on its own: ids unique per type, every
/// reference resolving inside the file, one dashboard holding every visualization, each
/// visualization reading one of the file's data views.
fn assert_importable_alone(objects: &[Value], file: &str) {
    let ids: BTreeSet<(&str, &str)> = objects
        .iter()
        .map(|o| (o["type"].as_str().unwrap(), o["id"].as_str().unwrap()))
        .collect();
    assert_eq!(ids.len(), objects.len(), "{file}: ids are unique per type");
    for object in objects {
        for reference in object["references"].as_array().unwrap() {
            let target = (
                reference["type"].as_str().unwrap(),
                reference["id"].as_str().unwrap(),
            );
            assert!(
                ids.contains(&target),
                "{file}: {} refers to missing {target:?}",
                object["id"]
            );
        }
    }
    let reference_names = |object: &Value| -> BTreeSet<String> {
        object["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let dashboards: Vec<&Value> = objects
        .iter()
        .filter(|o| o["type"] == "dashboard")
        .collect();
    assert_eq!(dashboards.len(), 1, "{file}: one dashboard");
    let panels: Vec<Value> =
        serde_json::from_str(dashboards[0]["attributes"]["panelsJSON"].as_str().unwrap()).unwrap();
    let names = reference_names(dashboards[0]);
    for panel in &panels {
        assert!(
            names.contains(panel["panelRefName"].as_str().unwrap()),
            "{file}: {panel}"
        );
    }
    let visualizations = objects.iter().filter(|o| o["type"] == "visualization");
    assert_eq!(
        visualizations.clone().count(),
        panels.len(),
        "{file}: every visualization is on the dashboard"
    );
    for vis in visualizations {
        let source = search_source(vis);
        assert!(reference_names(vis).contains(source["indexRefName"].as_str().unwrap()));
    }
}

fn search_source(vis: &Value) -> Value {
    let text = vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
        .as_str()
        .unwrap();
    serde_json::from_str(text).unwrap()
}

/// The fields a visualization aggregates on (asserted mapped as keyword, boolean or date in
/// `mappings`), and the KQL queries it holds.
fn aggregations_and_queries(vis: &Value, mappings: &Value) -> (Vec<String>, Vec<String>) {
    let mut fields = Vec::new();
    let mut queries = Vec::new();
    let query = search_source(vis)["query"]["query"]
        .as_str()
        .unwrap()
        .to_string();
    if !query.is_empty() {
        queries.push(query);
    }
    let state: Value =
        serde_json::from_str(vis["attributes"]["visState"].as_str().unwrap()).unwrap();
    for agg in state["aggs"].as_array().unwrap() {
        if let Some(field) = agg["params"]["field"].as_str() {
            let mapped = mapping(mappings, field)
                .unwrap_or_else(|| panic!("{}: {field} is not in the index template", vis["id"]));
            let kind = mapped["type"].as_str().unwrap_or_default();
            assert!(
                ["keyword", "boolean", "date"].contains(&kind),
                "{}: aggregates on {field}, mapped {kind}",
                vis["id"]
            );
            fields.push(field.to_string());
        }
        for filter in agg["params"]["filters"].as_array().into_iter().flatten() {
            queries.push(filter["input"]["query"].as_str().unwrap().to_string());
        }
    }
    (fields, queries)
}

/// The title and time field of the data view `id`.
fn assert_data_view(objects: &[Value], id: &str, title: &str) {
    let view = objects
        .iter()
        .find(|o| o["type"] == "index-pattern" && o["id"] == id)
        .unwrap_or_else(|| panic!("the data view {id}"));
    assert_eq!(view["attributes"]["title"], title, "{id}");
    assert_eq!(view["attributes"]["timeFieldName"], "@timestamp", "{id}");
}

#[test]
fn kibana_saved_objects_are_importable_and_use_mapped_fields() {
    let objects = saved_objects(SAVED_OBJECTS);
    assert_importable_alone(&objects, SAVED_OBJECTS);
    // The daily indices, without the dead-letter entries and the alerts (they carry
    // `@timestamp` too); the alerts have their own.
    assert_data_view(
        &objects,
        "cloudtrail-ingest",
        "cloudtrail-*,-cloudtrail-dead-letter-*,-cloudtrail-alerts-*",
    );
    assert_data_view(&objects, "cloudtrail-ingest-alerts", "cloudtrail-alerts-*");

    let event_mappings = cloudtrail_mappings(FreeFormMapping::Flattened);
    let alert_mappings = cloudtrail_ingest::detect::alert::mappings(FreeFormMapping::Flattened);
    let mut aggregated = BTreeSet::new();
    let mut queries = Vec::new();
    for vis in objects.iter().filter(|o| o["type"] == "visualization") {
        let mappings = if vis["references"][0]["id"] == "cloudtrail-ingest-alerts" {
            &alert_mappings
        } else {
            &event_mappings
        };
        let (fields, more) = aggregations_and_queries(vis, mappings);
        aggregated.extend(fields);
        queries.extend(more);
    }
    for field in [
        "@timestamp",
        "eventName",
        "eventSource",
        "userIdentity.arn",
        "sourceIPAddress",
        "errorCode",
        "rule.level",
        "rule.title.keyword",
    ] {
        assert!(aggregated.contains(field), "no panel aggregates on {field}");
    }
    for query in &queries {
        for field in kql_fields(query) {
            let root = field.split('.').next().unwrap();
            let free_form =
                mapping(&event_mappings, root).is_some_and(|m| m["type"] == "flattened");
            assert!(
                free_form || mapping(&event_mappings, &field).is_some(),
                "query {query:?} uses {field}, which the index template does not map"
            );
        }
    }
    let all_queries = queries.join("\n");
    for needle in [
        "errorCode : *",
        "errorCode : \"AccessDenied\"",
        "*UnauthorizedOperation",
        "eventName : \"ConsoleLogin\"",
        "responseElements.ConsoleLogin : \"Failure\"",
        "userIdentity.type : \"Root\"",
    ] {
        assert!(all_queries.contains(needle), "no panel queries {needle}");
    }
}

/// Every other default index prefix has its data views (its daily indices without dead letters
/// and alerts; its alerts, where its command raises them) and a dashboard whose panels read
/// only fields its index template maps.
#[test]
fn kibana_objects_cover_every_default_index_prefix_and_its_alerts() {
    use cloudtrail_ingest::format::{confluent, json, konnect};
    let flattened = FreeFormMapping::Flattened;
    let alert_mappings = cloudtrail_ingest::detect::alert::mappings(flattened);
    let mut every_id = BTreeSet::new();
    for (file, prefix, view, mappings, alerts) in [
        (
            CONFLUENT_OBJECTS,
            "confluent-audit",
            "cloudtrail-ingest-confluent",
            confluent::mapping::mappings(flattened),
            true,
        ),
        (
            KONNECT_OBJECTS,
            "konnect-audit",
            "cloudtrail-ingest-konnect",
            konnect::mapping::mappings(flattened),
            true,
        ),
        (
            NDJSON_OBJECTS,
            "ndjson",
            "cloudtrail-ingest-ndjson",
            json::mappings(flattened),
            false,
        ),
    ] {
        let objects = saved_objects(file);
        assert_importable_alone(&objects, file);
        if alerts {
            let events = format!("{prefix}-*,-{prefix}-dead-letter-*,-{prefix}-alerts-*");
            assert_data_view(&objects, view, &events);
            assert_data_view(
                &objects,
                &format!("{view}-alerts"),
                &format!("{prefix}-alerts-*"),
            );
        } else {
            // JSON lines have no dead-letter or alerts indices of their own.
            assert_data_view(&objects, view, &format!("{prefix}-*"));
        }
        let mut aggregated = BTreeSet::new();
        for vis in objects.iter().filter(|o| o["type"] == "visualization") {
            let reads_alerts = vis["references"][0]["id"]
                .as_str()
                .unwrap()
                .ends_with("-alerts");
            let mappings = if reads_alerts {
                &alert_mappings
            } else {
                &mappings
            };
            let (fields, queries) = aggregations_and_queries(vis, mappings);
            aggregated.extend(fields);
            for query in &queries {
                for field in kql_fields(query) {
                    assert!(
                        mapping(mappings, &field).is_some(),
                        "{file}: query {query:?} uses {field}, which the index template does not map"
                    );
                }
            }
        }
        assert!(
            aggregated.contains("@timestamp"),
            "{file}: events over time"
        );
        if alerts {
            assert!(
                aggregated.contains("rule.title.keyword"),
                "{file}: alerts by rule"
            );
        }
        for object in &objects {
            let id = (object["type"].to_string(), object["id"].to_string());
            assert!(
                every_id.insert(id),
                "{file}: {} is also in another file",
                object["id"]
            );
        }
    }
    for object in saved_objects(SAVED_OBJECTS) {
        let id = (object["type"].to_string(), object["id"].to_string());
        assert!(every_id.insert(id), "{} is in two files", object["id"]);
    }
}

/// The parameters a policy resource or a secret's `ValueFrom` names (`Ref`, or `${...}` in a
/// `Sub`).
fn parameters_named(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Array(items) => items.iter().flat_map(parameters_named).collect(),
        Value::Object(object) => match (object.get("Ref"), object.get("Fn::Sub")) {
            (Some(Value::String(name)), _) => [name.clone()].into(),
            (_, Some(Value::String(text))) => text
                .split("${")
                .skip(1)
                .filter_map(|part| part.split('}').next())
                .map(str::to_string)
                .collect(),
            _ => BTreeSet::new(),
        },
        _ => BTreeSet::new(),
    }
}

/// Every task definition of the services template: it runs a command the binary has with
/// settings the binary takes (the binary is started with them), stops after the grace period,
/// keeps its root file system read-only, and its roles allow what it calls and nothing more.
#[test]
fn service_task_definitions_take_only_what_the_binary_has_and_need() {
    let template = cloudformation_json(SERVICES);
    let resources = template["Resources"].as_object().unwrap();
    let default_grace = default_shutdown_grace(&help());
    let mut commands = BTreeSet::new();
    for (name, resource) in resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::ECS::TaskDefinition")
    {
        let task = &resource["Properties"];
        let container = &task["ContainerDefinitions"][0];
        // No command: the default one, the SQS worker.
        let command: Vec<&str> = container["Command"]
            .as_array()
            .map(|c| c.iter().map(|c| c.as_str().unwrap()).collect())
            .unwrap_or_default();
        let source = command.first().copied().unwrap_or("sqs");
        assert!(
            ["sqs", "kafka", "webhook", "backfill"].contains(&source),
            "{name}: {command:?}"
        );
        commands.insert(source);
        // Values the stack fills in from its parameters take the test variant's.
        let mut settings: BTreeMap<String, String> = BTreeMap::new();
        for variable in container["Environment"].as_array().unwrap() {
            let value = match &variable["Value"] {
                Value::String(value) => value.clone(),
                other => {
                    let parameter = other["Ref"].as_str().unwrap_or_default();
                    EVERY_SERVICE
                        .iter()
                        .find(|(name, _)| *name == parameter)
                        .map_or("us-east-1", |(_, value)| value)
                        .to_string()
                }
            };
            settings.insert(variable["Name"].as_str().unwrap().into(), value);
        }
        let secrets = container["Secrets"].as_array().unwrap();
        for secret in secrets {
            settings.insert(secret["Name"].as_str().unwrap().into(), "secret".into());
        }
        assert_settings_accepted(&command, &settings, name);

        let grace = settings
            .get("CLOUDTRAIL_INGEST_SHUTDOWN_GRACE")
            .map_or(default_grace, |g| humantime::parse_duration(g).unwrap());
        let stop = Duration::from_secs(container["StopTimeout"].as_u64().expect("StopTimeout"));
        assert!(
            stop > grace,
            "{name}: StopTimeout {stop:?} <= grace {grace:?}"
        );
        assert_eq!(container["ReadonlyRootFilesystem"], true, "{name}");

        // The execution role reads exactly the task's secrets, and does what ECS needs.
        let role = task["ExecutionRoleArn"]["Fn::GetAtt"][0].as_str().unwrap();
        let policy = &resources[role]["Properties"]["Policies"][0]["PolicyDocument"];
        for statement in statements(policy) {
            for action in actions(statement) {
                assert!(EXECUTION_ACTIONS.contains(&action), "{role}: {action}");
                if action == "secretsmanager:GetSecretValue" {
                    let wanted: BTreeSet<String> = secrets
                        .iter()
                        .flat_map(|s| parameters_named(&s["ValueFrom"]))
                        .collect();
                    assert_eq!(parameters_named(&statement["Resource"]), wanted, "{role}");
                }
            }
        }
        // A task role only where the source calls AWS: the worker has the queue stack's policy,
        // backfill lists and reads the bucket.
        match source {
            "sqs" => {
                let role = task["TaskRoleArn"]["Fn::GetAtt"][0].as_str().unwrap();
                let properties = &resources[role]["Properties"];
                assert_eq!(
                    properties["ManagedPolicyArns"],
                    serde_json::json!([{"Ref": "WorkerPolicyArn"}])
                );
                assert!(properties.get("Policies").is_none(), "{role}");
            }
            "backfill" => {
                let role = task["TaskRoleArn"]["Fn::GetAtt"][0].as_str().unwrap();
                let policy = &resources[role]["Properties"]["Policies"][0]["PolicyDocument"];
                let granted: BTreeSet<&str> =
                    statements(policy).into_iter().flat_map(actions).collect();
                assert_eq!(
                    granted,
                    ["s3:ListBucket", "s3:GetObject", "kms:Decrypt"].into(),
                    "{role}"
                );
            }
            _ => assert!(task.get("TaskRoleArn").is_none(), "{name} has a task role"),
        }
    }
    assert_eq!(commands, ["sqs", "kafka", "webhook", "backfill"].into());

    // The worker scales on the backlog of its own queue per running task.
    let target = &resources["WorkerScalableTarget"]["Properties"];
    assert_eq!(target["ScalableDimension"], "ecs:service:DesiredCount");
    assert_eq!(target["MinCapacity"]["Ref"], "WorkerTasksMin");
    assert_eq!(target["MaxCapacity"]["Ref"], "WorkerTasksMax");
    let tracking =
        &resources["WorkerScalingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(tracking["TargetValue"]["Ref"], "WorkerBacklogPerTask");
    let metrics = tracking["CustomizedMetricSpecification"]["Metrics"]
        .as_array()
        .unwrap();
    let returned: Vec<&Value> = metrics.iter().filter(|m| m["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0]["Expression"], "backlog / tasks");
    let backlog = metrics.iter().find(|m| m["Id"] == "backlog").unwrap();
    assert_eq!(
        backlog["MetricStat"]["Metric"]["MetricName"],
        "ApproximateNumberOfMessagesVisible"
    );
    let queue_name = &backlog["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Fn::Select"];
    assert_eq!(queue_name[0], 4, "the queue name is the URL's last part");
    assert_eq!(queue_name[1]["Fn::Split"][1]["Ref"], "WorkerQueueUrl");

    // The webhook: the load balancer forwards to --listen, checks /healthz on the metrics port,
    // waits out --webhook-timeout before it deregisters a task, and alone reaches the tasks.
    let container = &resources["WebhookTaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    let env: BTreeMap<&str, &str> = container["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| Some((v["Name"].as_str()?, v["Value"].as_str()?)))
        .collect();
    let port = |listen: &str| listen.rsplit(':').next().unwrap().parse::<u64>().unwrap();
    let listen = port(env["CLOUDTRAIL_INGEST_LISTEN"]);
    let metrics = port(env["CLOUDTRAIL_INGEST_METRICS_LISTEN"]);
    let service = &resources["WebhookService"]["Properties"];
    assert_eq!(service["LoadBalancers"][0]["ContainerPort"], listen);
    let group = &resources["WebhookTargetGroup"]["Properties"];
    assert_eq!(group["HealthCheckPath"], "/healthz");
    assert_eq!(group["HealthCheckPort"], metrics.to_string());
    assert_eq!(group["Port"], listen);
    let delay = group["TargetGroupAttributes"][0]["Value"].as_str().unwrap();
    let timeout = humantime::parse_duration(env["CLOUDTRAIL_INGEST_WEBHOOK_TIMEOUT"]).unwrap();
    assert!(Duration::from_secs(delay.parse().unwrap()) > timeout);
    let ingress = resources["WebhookSecurityGroup"]["Properties"]["SecurityGroupIngress"]
        .as_array()
        .unwrap();
    let ports: BTreeSet<u64> = ingress
        .iter()
        .map(|rule| {
            assert_eq!(
                rule["SourceSecurityGroupId"]["Ref"],
                "WebhookLoadBalancerSecurityGroupId"
            );
            rule["FromPort"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(ports, [listen, metrics].into());
}
