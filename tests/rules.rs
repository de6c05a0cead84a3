//! The shipped rule pack (`rules/detection/`) against realistic events, through the formats that make
//! the documents the rules see:
//! - every rule loads (nothing left out even with `--rules-strict`);
//! - each rule fires on every event of its `fixtures/detect/<source>/<rule>.json` `match` list
//!   and on none of its `near_miss` list, with free-form parts stored either way
//!   (objects or strings);
//! - across the whole conformance corpus and the Confluent samples, each rule fires on exactly
//!   the records `fixtures/detect/corpus-expected.json` lists for it, and on no other;
//! - the drop pack (`rules/drop/`) drops what AWS services do on their own and keeps what
//!   people and applications do; `rules test` runs both packs over log files.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cloudtrail_ingest::detect::{load, Detector, Level};
use cloudtrail_ingest::format::cloudtrail::{record_event, FreeForm, Options};
use cloudtrail_ingest::format::confluent::Confluent;
use cloudtrail_ingest::format::{RecordContext, RecordFormat};
use cloudtrail_ingest::pipeline::Event;
use serde_json::Value;
use time::OffsetDateTime;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn detector() -> Detector {
    let (loaded, failed) = load::load(&[root().join("rules/detection")]).unwrap();
    assert!(failed.is_empty(), "rules that cannot be used: {failed:?}");
    let (detector, unused) = Detector::new(loaded, Level::Informational);
    assert!(unused.is_empty(), "rules not used: {unused:?}");
    detector
}

/// The event a source makes of a record of `source` (`cloudtrail` or `confluent`).
fn event_of(source: &str, record: &Value, free_form: FreeForm) -> Event {
    let bytes = serde_json::to_vec(record).unwrap();
    match source {
        "cloudtrail" => record_event(
            &bytes,
            &Options { free_form },
            Some(OffsetDateTime::UNIX_EPOCH),
        )
        .unwrap(),
        "confluent" => Confluent { free_form }
            .event(
                &bytes,
                &RecordContext {
                    position: "t-0-0",
                    fallback_time: Some(OffsetDateTime::UNIX_EPOCH),
                },
            )
            .unwrap(),
        other => panic!("no source {other}"),
    }
}

/// The ids of the rules that fire on `event`.
fn fired(detector: &Detector, event: &Event) -> BTreeSet<String> {
    detector
        .examine(event)
        .into_iter()
        .map(|n| detector.rules()[n].id.clone())
        .collect()
}

fn rule_id_of_file(detector: &Detector, file: &Path) -> String {
    (0..detector.rules().len())
        .find(|n| detector.file(*n) == file)
        .map(|n| detector.rules()[n].id.clone())
        .unwrap_or_else(|| panic!("no rule loaded from {}", file.display()))
}

#[test]
fn each_rule_fires_on_its_targets_and_not_on_near_misses() {
    let detector = detector();
    let mut checked = 0;
    for source in ["cloudtrail", "confluent"] {
        let folder = root().join("fixtures/detect").join(source);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let stem = file.file_stem().unwrap().to_string_lossy().to_string();
            let rule_file = root()
                .join("rules/detection")
                .join(source)
                .join(format!("{stem}.yml"));
            let id = rule_id_of_file(&detector, &rule_file);
            let cases: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            let matches = cases["match"].as_array().unwrap();
            assert!(!matches.is_empty(), "{stem}: no event to fire on");
            for free_form in [FreeForm::Objects, FreeForm::Strings] {
                for (n, record) in matches.iter().enumerate() {
                    let event = event_of(source, record, free_form);
                    assert!(
                        fired(&detector, &event).contains(&id),
                        "{stem}: match {n} ({free_form:?}) did not fire"
                    );
                }
                for (n, record) in cases["near_miss"].as_array().unwrap().iter().enumerate() {
                    let event = event_of(source, record, free_form);
                    assert!(
                        !fired(&detector, &event).contains(&id),
                        "{stem}: near miss {n} ({free_form:?}) fired"
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        detector.rules().len(),
        "every rule has its fixture file"
    );
}

/// Every record of a corpus file (a log, one record, an array, JSON lines, LookupEvents
/// output), each with its name in `corpus-expected.json`: `<file>#<eventID or id>`, or the
/// record's place in the file (`#[n]`) when it has no id.
fn records_of_file(relative: &str) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(root().join("fixtures").join(relative)).unwrap();
    let values = support::json_values(&text);
    values
        .into_iter()
        .map(|value| match value["CloudTrailEvent"].as_str() {
            Some(inner) => serde_json::from_str(inner).unwrap(),
            None => value,
        })
        .filter(Value::is_object)
        .enumerate()
        .map(|(n, record)| {
            let id = record["eventID"]
                .as_str()
                .or(record["id"].as_str())
                .map_or_else(|| format!("[{n}]"), str::to_string);
            (format!("{relative}#{id}"), record)
        })
        .collect()
}

fn files_under(relative: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("fixtures").join(relative)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "log" | "jsonl")
            ) {
                let rel = path.strip_prefix(root().join("fixtures")).unwrap();
                out.push(rel.to_string_lossy().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn on_the_corpus_each_rule_fires_only_where_expected() {
    let detector = detector();
    let expected: BTreeMap<String, BTreeSet<String>> = serde_json::from_slice(
        &std::fs::read(root().join("fixtures/detect/corpus-expected.json")).unwrap(),
    )
    .unwrap();
    for rule in detector.rules() {
        assert!(
            expected.contains_key(&rule.id),
            "{} is not in corpus-expected.json",
            rule.title
        );
    }
    let mut found: BTreeMap<String, BTreeSet<String>> = expected
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    let mut records = 0;
    for (source, folder) in [
        ("cloudtrail", "conformance/events"),
        ("confluent", "confluent/events"),
    ] {
        for file in files_under(folder) {
            for (name, record) in records_of_file(&file) {
                if source == "cloudtrail" && record.get("eventVersion").is_none() {
                    continue;
                }
                records += 1;
                for free_form in [FreeForm::Objects, FreeForm::Strings] {
                    for id in fired(&detector, &event_of(source, &record, free_form)) {
                        found.get_mut(&id).unwrap().insert(name.clone());
                    }
                }
            }
        }
    }
    assert!(records > 100, "the corpus was read ({records} records)");
    for (id, names) in &expected {
        let title = &detector.rules().iter().find(|r| r.id == *id).unwrap().title;
        assert_eq!(&found[id], names, "{title} ({id})");
    }
}

#[test]
fn the_log_objects_of_the_corpus_fire_only_on_records_expected_elsewhere() {
    let detector = detector();
    let expected: BTreeMap<String, BTreeSet<String>> = serde_json::from_slice(
        &std::fs::read(root().join("fixtures/detect/corpus-expected.json")).unwrap(),
    )
    .unwrap();
    // The records each rule is expected to fire on, as they are (objects hold copies).
    let mut targets: Vec<(String, Value)> = Vec::new();
    for (rule, names) in &expected {
        for name in names {
            let (file, _) = name.split_once('#').unwrap();
            let before = targets.len();
            for (_, record) in records_of_file(file).into_iter().filter(|(n, _)| n == name) {
                targets.push((rule.clone(), record));
            }
            assert!(targets.len() > before, "{name} is not in the corpus");
        }
    }
    let objects = root().join("fixtures/conformance/objects");
    let mut stack = vec![objects];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = support::gunzip(&std::fs::read(&path).unwrap());
            let Ok(log) = serde_json::from_slice::<Value>(&text) else {
                continue;
            };
            for record in log["Records"].as_array().into_iter().flatten() {
                seen += 1;
                for id in fired(
                    &detector,
                    &event_of("cloudtrail", record, FreeForm::Objects),
                ) {
                    assert!(
                        targets
                            .iter()
                            .any(|(rule, target)| *rule == id && target == record),
                        "{id} fired on {} in {}",
                        record["eventID"],
                        path.display()
                    );
                }
            }
        }
    }
    assert!(seen > 100, "{seen} records");
}

/// A CloudTrail record of `event_name` on `source` by an identity of `kind`, with `extra`
/// top-level fields.
fn call(source: &str, event_name: &str, kind: &str, extra: Value) -> Value {
    let mut record = serde_json::json!({
        "eventVersion": "1.09", "eventTime": "2026-12-01T10:00:00Z",
        "eventSource": format!("{source}.amazonaws.com"), "eventName": event_name,
        "userIdentity": {"type": kind},
        "eventID": format!("{event_name}-{kind}"),
    });
    if kind == "AWSService" {
        record["userIdentity"]["invokedBy"] = format!("{source}.amazonaws.com").into();
    }
    for (key, value) in extra.as_object().unwrap() {
        record[key] = value.clone();
    }
    record
}

#[test]
fn the_drop_pack_drops_what_services_do_and_keeps_what_people_do() {
    let (loaded, failed) = load::load(&[root().join("rules/drop")]).unwrap();
    assert!(
        failed.is_empty(),
        "drop rules that cannot be used: {failed:?}"
    );
    let (drops, unused) = Detector::new(loaded, Level::Informational);
    assert!(unused.is_empty(), "{unused:?}");
    let none = serde_json::json!({});
    let reads = serde_json::json!({"readOnly": true});
    let data = serde_json::json!({"eventCategory": "Data", "readOnly": true});
    let table = [
        (call("kms", "Decrypt", "AWSService", none.clone()), true),
        (
            call(
                "kms",
                "GenerateDataKey",
                "AssumedRole",
                serde_json::json!({"userIdentity": {"type": "AssumedRole", "invokedBy": "s3.amazonaws.com"}}),
            ),
            true,
        ),
        (call("kms", "Decrypt", "IAMUser", none.clone()), false),
        (
            call("kms", "ScheduleKeyDeletion", "AWSService", none.clone()),
            false,
        ),
        (call("sts", "AssumeRole", "AWSService", none.clone()), true),
        (
            call("sts", "AssumeRole", "AssumedRole", none.clone()),
            false,
        ),
        (
            call("ec2", "DescribeInstances", "AWSService", reads.clone()),
            true,
        ),
        (
            call(
                "ec2",
                "TerminateInstances",
                "AWSService",
                serde_json::json!({"readOnly": false}),
            ),
            false,
        ),
        (call("ec2", "DescribeInstances", "IAMUser", reads), false),
        (call("s3", "GetObject", "IAMUser", data.clone()), true),
        (call("s3", "PutObject", "IAMUser", data), false),
        (call("signin", "ConsoleLogin", "IAMUser", none), false),
    ];
    for (record, dropped) in table {
        for free_form in [FreeForm::Objects, FreeForm::Strings] {
            let event = event_of("cloudtrail", &record, free_form);
            assert_eq!(
                !fired(&drops, &event).is_empty(),
                dropped,
                "{record} ({free_form:?})"
            );
        }
    }
}

#[test]
fn rules_test_prints_alerts_then_counts_and_fails_on_a_rule_it_cannot_use() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cloudtrail-ingest"))
            .current_dir(root())
            .args(["rules", "test"])
            .args(args)
            .env_clear()
            .output()
            .expect("the binary runs")
    };
    let output = run(&[
        "--rules",
        "rules/detection",
        "--drop-rules",
        "rules/drop",
        "fixtures/conformance/objects",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total = lines.last().expect("a total");
    assert_eq!(total["kind"], "total");
    let alerts = lines.iter().filter(|l| l["kind"] == "match").count() as u64;
    assert_eq!(total["alerts"], alerts, "every alert printed");
    assert!(
        alerts > 0 && total["dropped"].as_u64().unwrap() > 0,
        "{total}"
    );
    let counts: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "count").collect();
    assert_eq!(
        counts.iter().filter(|l| l["role"] == "drop").count(),
        4,
        "one line per drop rule"
    );
    let matched: u64 = counts
        .iter()
        .filter(|l| l["role"] == "detection")
        .map(|l| l["events"].as_u64().unwrap())
        .sum();
    assert_eq!(matched, alerts, "one alert per rule match");

    let dir = std::env::temp_dir().join(format!("rules-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.yml"),
        "title: bad\ndetection:\n    s: {eventName|expand: '%x%'}\n    condition: s\n",
    )
    .unwrap();
    let bad = run(&[
        "--drop-rules",
        dir.to_str().unwrap(),
        "fixtures/conformance/objects",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad.yml"));
    std::fs::remove_dir_all(dir).unwrap();
}
