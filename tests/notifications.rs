//! Every notification body of the conformance corpus (fixtures/conformance/notifications),
//! checked against the reading recorded in fixtures/conformance/INDEX.json.
//!
//! One deliberate difference: bodies that INDEX.json marks "ignore" because they are JSON
//! but no known notification (or an SNS envelope whose Message is not JSON) are errors
//! here, so the message stays in the queue and redrive parks it for a human to look at.

mod support;

use cloudtrail_ingest::config::ObjectFormat;
use cloudtrail_ingest::source::sqs::notification::{self, SkipReason};
use support::{conformance_index, fixtures};

#[test]
fn every_conformance_notification_is_read_as_recorded() {
    let index = conformance_index();
    let entries = index["notifications"].as_array().unwrap();
    assert!(entries.len() >= 40);
    for entry in entries {
        let file = entry["file"].as_str().unwrap();
        let body = std::fs::read_to_string(fixtures().join("conformance").join(file)).unwrap();
        let action = entry["action"].as_str().unwrap();
        let why = entry["why"].as_str().unwrap();
        let parsed = notification::parse(&body, ObjectFormat::Auto);
        let unknown = why.contains("not an S3, CloudTrail or EventBridge")
            || why.contains("Message is not JSON");
        match action {
            "reject" => assert!(parsed.is_err(), "{file}"),
            "ignore" if unknown => assert!(parsed.is_err(), "{file}: {parsed:?}"),
            "ignore" => {
                let n = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(n.objects.is_empty(), "{file}");
            }
            "skip-digest" => {
                let n = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(n.objects.is_empty(), "{file}");
                assert!(!n.skipped.is_empty(), "{file}");
                assert!(n.skipped.iter().all(|r| *r == SkipReason::Digest), "{file}");
            }
            "fetch" => {
                let n = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
                let targets = entry["targets"].as_array().unwrap();
                let expected: Vec<(String, String)> = targets
                    .iter()
                    .filter(|t| {
                        matches!(t["kind"].as_str(), Some("cloudtrail-log" | "insight-log"))
                    })
                    .map(|t| {
                        (
                            t["bucket"].as_str().unwrap().into(),
                            t["key"].as_str().unwrap().into(),
                        )
                    })
                    .collect();
                let got: Vec<(String, String)> =
                    n.objects.into_iter().map(|o| (o.bucket, o.key)).collect();
                assert_eq!(got, expected, "{file}");
                assert_eq!(n.skipped.len(), targets.len() - expected.len(), "{file}");
            }
            other => panic!("{file}: unknown action {other}"),
        }
    }
}
