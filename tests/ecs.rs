//! The ECS schema against Elastic's own CloudTrail pipeline tests: every case in
//! `../shared/ecs/elastic-cloudtrail/` (the records and the documents Elastic's AWS
//! integration made of them) goes through the CloudTrail format and the ECS mapping, and the
//! documents are compared field by field. The fields we do not match on purpose are the
//! README's table "Where the ECS documents differ from Elastic's": this test reads it, so the
//! two cannot drift apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cloudtrail_ingest::enrich::GeoIp;
use cloudtrail_ingest::format::cloudtrail::ecs::{self, Ecs};
use cloudtrail_ingest::format::cloudtrail::{record_event, FreeForm, Options};
use serde_json::Value;
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
            let mut out = Vec::new();
            ecs::write(
                &event.source,
                &event.outline,
                event.time,
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
