//! The ECS schema and GeoIP.
//!
//! Against Elastic's own CloudTrail pipeline tests: every case in
//! `../shared/ecs/elastic-cloudtrail/` (the records and the documents Elastic's AWS
//! integration made of them) goes through the CloudTrail format and the ECS mapping, and the
//! documents are compared field by field. The fields we do not match on purpose are the
//! README's table "Where the ECS documents differ from Elastic's": this test reads it, so the
//! two cannot drift apart.
//!
//! End to end against the stand-ins: `--schema ecs` and `--geoip-database` on the SQS path,
//! with detection still reading the records as CloudTrail wrote them.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use cloudtrail_ingest::config::Config;
use cloudtrail_ingest::enrich::GeoIp;
use cloudtrail_ingest::format::cloudtrail::ecs::{self, Ecs};
use cloudtrail_ingest::format::cloudtrail::{record_event, FreeForm, Options};
use serde_json::json;
use serde_json::Value;
use support::*;
use time::format_description::well_known::Rfc3339;

/// The ingest time the Elastic test runner sets (`event.created`).
const CREATED: &str = "2021-11-11T01:02:03.123456789Z";

fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(path)
}

/// What the README says we do not match: `(field or prefix*, case or *)`.
fn exemptions() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- ecs-differences -->")
        .expect("README marks the table of ECS differences");
    let end = readme[start..]
        .find("<!-- /ecs-differences -->")
        .expect("the table's end mark")
        + start;
    let mut out = Vec::new();
    for line in readme[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1].starts_with("---") || cells[1] == "field" {
            continue;
        }
        let cases = cells[2].trim_matches('`');
        for field in cells[1].split(',') {
            let field = field.trim().trim_matches('`');
            for case in cases.split(',') {
                out.push((field.to_string(), case.trim().trim_matches('`').to_string()));
            }
        }
    }
    assert!(!out.is_empty(), "the README's table lists something");
    out
}

fn exempt(exemptions: &[(String, String)], field: &str, case: &str) -> bool {
    exemptions.iter().any(|(f, c)| {
        let field_matches = match f.strip_suffix('*') {
            Some(prefix) => field.starts_with(prefix),
            None => field == f,
        };
        field_matches && (c == "all" || case.starts_with(c.as_str()))
    })
}

/// `value` as leaf paths; arrays are leaves (compared as sorted lists of their items).
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if path.starts_with("aws.cloudtrail.flattened.") && path.matches('.').count() == 3 {
                    // A flattened object is one field: compare it whole, nulls and empty
                    // values left out (the cluster indexes none of them).
                    out.insert(path, scrub(v.clone()));
                } else {
                    flatten(&path, v, out);
                }
            }
        }
        Value::Array(items) => {
            let mut items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
            items.sort();
            items.dedup();
            out.insert(prefix.to_string(), Value::from(items));
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// `value` without nulls, empty strings and empty objects or arrays, as Elastic's pipeline
/// leaves its flattened objects.
fn scrub(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, scrub(v)))
                .filter(|(_, v)| !empty(v))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(scrub).filter(|v| !empty(v)).collect())
        }
        other => other,
    }
}

fn empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[test]
fn every_elastic_case_agrees_field_by_field_but_for_the_readme_list() {
    let exemptions = exemptions();
    let geoip = GeoIp::open(&[
        shared("geoip/GeoLite2-City-Test.mmdb"),
        shared("geoip/GeoLite2-ASN-Test.mmdb"),
    ])
    .expect("the test databases");
    let ecs = Ecs::new("default", FreeForm::Objects, Some(geoip));
    // As the sources read records when the ECS schema is asked for.
    let options = Options {
        free_form: FreeForm::AsWritten,
    };
    let dir = shared("ecs/elastic-cloudtrail");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the Elastic cases")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-expected.json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 90, "{} cases", cases.len());
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut documents, mut compared_fields) = (0, 0);
    for path in &cases {
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".log-expected.json", "");
        let expected: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for (n, doc) in expected["expected"].as_array().unwrap().iter().enumerate() {
            // Documents without a record are the pipeline's answers to blank lines.
            let Some(original) = doc["event"]["original"].as_str() else {
                continue;
            };
            let case = format!("{name}#{n}");
            if exemptions
                .iter()
                .any(|(f, c)| f == "*" && case.starts_with(c.as_str()))
            {
                continue;
            }
            documents += 1;
            // A record without a usable `eventTime` keeps the ingest time, as in Elastic's.
            let ingest = time::OffsetDateTime::parse(CREATED, &Rfc3339).unwrap();
            let event =
                record_event(original.as_bytes(), &options, Some(ingest)).expect("an event");
            let mut out = bytes::BytesMut::new();
            ecs::write(
                &event.source,
                &event.outline,
                &ecs::dates::millis(event.time),
                CREATED,
                &ecs,
                &mut out,
            )
            .expect("an ECS document");
            let ours: Value = serde_json::from_slice(&out).expect("valid JSON");
            let (mut want, mut got) = (BTreeMap::new(), BTreeMap::new());
            flatten("", doc, &mut want);
            flatten("", &ours, &mut got);
            for field in want
                .keys()
                .chain(got.keys())
                .collect::<std::collections::BTreeSet<_>>()
            {
                if exempt(&exemptions, field, &case) {
                    continue;
                }
                compared_fields += 1;
                if want.get(field) != got.get(field) {
                    wrong.entry(field.clone()).or_default().push(format!(
                        "{case}: expected {} got {}",
                        want.get(field).map_or("-".into(), |v| v.to_string()),
                        got.get(field).map_or("-".into(), |v| v.to_string())
                    ));
                }
            }
        }
    }
    let report: Vec<String> = wrong
        .iter()
        .map(|(field, cases)| format!("{field} ({}):\n    {}", cases.len(), cases.join("\n    ")))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} fields differ from Elastic's documents ({documents} documents, {compared_fields} fields compared):\n{}",
        wrong.len(),
        report.join("\n")
    );
    assert!(documents >= 90, "{documents} documents compared");
    eprintln!(
        "{documents} documents of {} cases agree in {compared_fields} fields",
        cases.len()
    );
}

/// `GET <path>` on the cluster stand-in.
async fn get(env: &TestEnv, path: &str) -> Value {
    env.search(reqwest::Method::GET, path, None).await
}

/// The GeoIP flags for MaxMind's test databases.
fn geoip_args() -> Vec<String> {
    ["GeoLite2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb"]
        .iter()
        .flat_map(|db| {
            [
                "--geoip-database".to_string(),
                shared(&format!("geoip/{db}")).display().to_string(),
            ]
        })
        .collect()
}

/// A console sign-in from 89.160.20.156 (MaxMind's test data: Linkoping, AS 29518) and a call
/// AWS made itself (`AWS Internal`), as one log object.
fn sign_in_log() -> Vec<u8> {
    let sign_in = json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::123456789012:user/jane",
                         "accountId": "123456789012", "userName": "jane"},
        "eventTime": "2026-12-01T10:00:00Z", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1", "sourceIPAddress": "89.160.20.156", "userAgent": "Mozilla/5.0",
        "requestParameters": null, "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {"MFAUsed": "No", "MobileVersion": "No", "LoginTo": "https://console.aws.amazon.com/"},
        "eventID": "ecs-signin-1", "eventType": "AwsConsoleSignIn", "recipientAccountId": "123456789012"
    });
    let mut internal = record("ecs-internal-1", "2026-12-01T10:01:00Z");
    internal["sourceIPAddress"] = json!("AWS Internal");
    gzip(
        json!({"Records": [sign_in, internal]})
            .to_string()
            .as_bytes(),
    )
}

/// A Sigma rule on CloudTrail's own field names, in a fresh folder.
fn sign_in_rule(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecs-rules-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("signin.yml"),
        "title: failed console sign-in\nid: ecs-signin\nlevel: high\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n    s: {eventName: ConsoleLogin, responseElements.ConsoleLogin: Failure}\n    condition: s\n",
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ecs_documents_are_elastics_and_rules_still_read_cloudtrail() {
    let env = TestEnv::new("ecs").await;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/12/01/signin.json.gz";
    env.put_object(key, sign_in_log()).await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    let rules = sign_in_rule("ecs");
    let mut extra = vec![
        "--schema".to_string(),
        "ecs".into(),
        "--rules".into(),
        rules.display().to_string(),
    ];
    extra.extend(geoip_args());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let summary = env.run_until_idle(&extra).await;
    assert_eq!(summary["messages_deleted"], 1, "{summary:?}");
    assert_eq!(
        summary["alerts_indexed"], 1,
        "the rule reads eventName: {summary:?}"
    );

    // OpenSearch has no data streams here: the daily indices of --index-prefix.
    let index = format!("{}-2026.12.01", env.index_prefix);
    let doc = get(&env, &format!("{index}/_doc/ecs-signin-1")).await;
    let source = &doc["_source"];
    assert_eq!(source["event"]["action"], "ConsoleLogin", "{doc}");
    assert_eq!(source["event"]["outcome"], "failure");
    assert_eq!(source["event"]["category"], json!(["authentication"]));
    assert_eq!(source["user"]["name"], "jane");
    assert_eq!(source["source"]["ip"], "89.160.20.156");
    assert_eq!(source["source"]["geo"]["country_iso_code"], "SE");
    assert_eq!(source["source"]["as"]["number"], 29518);
    assert_eq!(source["data_stream"]["dataset"], "aws.cloudtrail");
    assert!(
        source.get("eventName").is_none(),
        "no CloudTrail names: {source}"
    );
    let internal = get(&env, &format!("{index}/_doc/ecs-internal-1")).await;
    assert_eq!(
        internal["_source"]["source"],
        json!({"address": "AWS Internal"}),
        "an address that is no IP is kept, without source.ip"
    );
    let mapping = env
        .search(reqwest::Method::GET, &format!("{index}/_mapping"), None)
        .await;
    let properties = &mapping[&index]["mappings"]["properties"];
    assert_eq!(properties["source"]["properties"]["ip"]["type"], "ip");
    assert_eq!(
        properties["source"]["properties"]["geo"]["properties"]["location"]["type"],
        "geo_point"
    );
    std::fs::remove_dir_all(rules).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_raw_documents_geoip_is_added_beside_the_records_fields() {
    let env = TestEnv::new("rawgeo").await;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/12/01/signin.json.gz";
    env.put_object(key, sign_in_log()).await;
    env.publish(&env.cloudtrail_message(&[key])).await;
    let extra = geoip_args();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let summary = env.run_until_idle(&extra).await;
    assert_eq!(summary["documents_indexed"], 2, "{summary:?}");
    let index = format!("{}-2026.12.01", env.index_prefix);
    let doc = get(&env, &format!("{index}/_doc/ecs-signin-1")).await;
    let source = &doc["_source"];
    assert_eq!(source["eventName"], "ConsoleLogin", "{doc}");
    assert_eq!(source["source"]["geo"]["city_name"], "Link\u{f6}ping");
    assert_eq!(
        source["source"]["as"]["organization"]["name"],
        "Bredband2 AB"
    );
    let internal = get(&env, &format!("{index}/_doc/ecs-internal-1")).await;
    assert!(internal["_source"].get("source").is_none(), "{internal}");
}

#[tokio::test]
async fn a_missing_geoip_database_stops_the_start_with_its_path() {
    let env = TestEnv::new("geomissing").await;
    let config =
        Config::try_parse_from(env.args(&["--geoip-database", "/no/such/GeoLite2-City.mmdb"]))
            .expect("arguments parse");
    let err = config.validate().expect_err("refused").to_string();
    assert!(err.contains("/no/such/GeoLite2-City.mmdb"), "{err}");
    let not_a_database = env!("CARGO_MANIFEST_DIR").to_string() + "/Cargo.toml";
    let config = Config::try_parse_from(env.args(&["--geoip-database", &not_a_database]))
        .expect("arguments parse");
    config
        .validate()
        .expect("an existing file passes the flag check");
    let stop = tokio_util::sync::CancellationToken::new();
    let err = run_config(&config, stop).await.unwrap_err().to_string();
    assert!(err.contains("Cargo.toml"), "{err}");
}
