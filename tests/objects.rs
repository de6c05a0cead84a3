//! Every log object of the conformance corpus (fixtures/conformance/objects) splits into the
//! number of records INDEX.json records for it, and every record becomes a valid document
//! whose source equals the record plus `@timestamp`. Pure: no services.

mod support;

use std::io::BufReader;

use cloudtrail_ingest::document;
use cloudtrail_ingest::records::Splitter;
use serde_json::Value;
use support::{conformance_index, fixture_object, gunzip};

#[test]
fn every_conformance_object_splits_into_its_records() {
    let index = conformance_index();
    let mut checked = 0;
    for entry in index["objects"].as_array().unwrap() {
        if !matches!(
            entry["kind"].as_str(),
            Some("cloudtrail-log" | "insight-log")
        ) {
            continue;
        }
        let key = entry["key"].as_str().unwrap();
        let text = gunzip(&fixture_object(key));
        let whole: Value = serde_json::from_slice(&text).unwrap();
        let expected = whole["Records"].as_array().unwrap();
        assert_eq!(
            expected.len() as u64,
            entry["records"].as_u64().unwrap(),
            "{key}"
        );

        let mut splitter = Splitter::new(BufReader::with_capacity(4096, &text[..]));
        let mut n = 0;
        while let Some(record) = splitter.next_record().unwrap() {
            let doc = document::build(record, "ct", None).unwrap_or_else(|e| panic!("{key}: {e}"));
            let text = std::str::from_utf8(&doc.bytes).unwrap();
            let (_, source) = text.trim_end().split_once('\n').unwrap();
            let mut source: Value = serde_json::from_str(source).unwrap();
            assert_eq!(source["@timestamp"], expected[n]["eventTime"], "{key}");
            source.as_object_mut().unwrap().remove("@timestamp");
            assert_eq!(source, expected[n], "{key} record {n}");
            n += 1;
        }
        assert_eq!(n, expected.len(), "{key}");
        checked += 1;
    }
    assert!(checked >= 50, "{checked} objects checked");
}
