//! Every log object of the conformance corpus (fixtures/conformance/objects) splits into the
//! number of records INDEX.json records for it, and every record becomes a valid document
//! whose source equals the record plus `@timestamp`, with the free-form fields laid out as
//! each mode promises and nothing else changed. Pure: no services.

mod support;

use std::io::BufReader;

use cloudtrail_ingest::format::cloudtrail::event;
use cloudtrail_ingest::format::cloudtrail::split::Splitter;
use cloudtrail_ingest::format::cloudtrail::{FreeForm, Options, FREE_FORM_FIELDS};
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

        for free_form in [FreeForm::Objects, FreeForm::Strings] {
            let options = Options { free_form };
            let mut splitter = Splitter::new(BufReader::with_capacity(4096, &text[..]));
            let mut n = 0;
            while let Some(record) = splitter.next_record().unwrap() {
                let doc =
                    event::build(record, &options, None).unwrap_or_else(|e| panic!("{key}: {e}"));
                let mut source: Value = serde_json::from_slice(&doc.source).unwrap();
                assert_eq!(source["@timestamp"], expected[n]["eventTime"], "{key}");
                let source = source.as_object_mut().unwrap();
                source.remove("@timestamp");
                let mut original = expected[n].clone();
                for field in FREE_FORM_FIELDS {
                    let sent = source.remove(field);
                    let written = original.as_object_mut().unwrap().remove(field);
                    assert_eq!(
                        sent.is_some(),
                        written.is_some(),
                        "{key} record {n} {field}"
                    );
                    if let (Some(sent), Some(written)) = (sent, written) {
                        check_layout(free_form, &sent, &written);
                    }
                }
                assert_eq!(Value::Object(source.clone()), original, "{key} record {n}");
                n += 1;
            }
            assert_eq!(n, expected.len(), "{key}");
        }
        checked += 1;
    }
    assert!(checked >= 50, "{checked} objects checked");
}

/// The documented layout of a free-form value: objects mode wraps whatever is not an
/// object or null in `{"value": ...}`; strings mode turns whatever is not a string or null
/// into a JSON string of it.
fn check_layout(free_form: FreeForm, sent: &Value, written: &Value) {
    match (free_form, written) {
        (_, Value::Null)
        | (FreeForm::Objects, Value::Object(_))
        | (FreeForm::Strings, Value::String(_)) => {
            assert_eq!(sent, written)
        }
        (FreeForm::Objects, other) => assert_eq!(sent, &serde_json::json!({"value": other})),
        (FreeForm::AsWritten, other) => assert_eq!(sent, other),
        (FreeForm::Strings, other) => {
            let text = sent.as_str().expect("a string");
            assert_eq!(&serde_json::from_str::<Value>(text).unwrap(), other);
        }
    }
}
