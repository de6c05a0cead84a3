//! The Kong Konnect audit-log format: one webhook body -> one event per entry.
//!
//! Konnect POSTs batches of entries (`Content-Type: text/plain`, gzip-compressed; the sink
//! side decompresses). A body is, by its first non-blank byte (or as `--webhook-format` says):
//! - JSON: one object per line (NDJSON, Konnect's `json` log format; its `cps` format, which
//!   wraps each entry as `{"event": {...}}`, is unwrapped), a JSON array of objects, or a
//!   single object (even spread over several lines);
//! - CEF: one line per entry (Konnect's `cef` log format, with its
//!   `<time> konghq.com CEF:0|KongInc|Konnect|1.0|...` prefix), read by [`crate::format::cef`]
//!   into a document with the same field names as a JSON entry (`event_class_id`, `name`,
//!   `severity`, ... and the extension's keys).
//!
//! Every entry becomes an event:
//! - `_id`: the SHA-256 of the entry's bytes, so a batch the sender retries never duplicates;
//! - time and `@timestamp`: `rt` (epoch milliseconds, a number or a numeric string), else
//!   `event_ts` (RFC 3339), else the time the body was received (counted as a fallback);
//! - a JSON entry is kept byte for byte, except that values which are objects or arrays are
//!   written as JSON strings (Konnect's entries are flat; this keeps any other sender's
//!   nested values from splitting the mapping).
//!
//! An entry that cannot be read (a line that is not JSON, a CEF line without its header, a
//! body that is neither) is returned as [`Entry::Unreadable`] with the reason, for the
//! dead-letter index; the other entries of the body are not affected.

pub mod ecs;
pub mod mapping;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::cef;
use super::document::{content_id, event, members, parse_time, raw_str, Edit, Parts};
use super::FreeForm;
use crate::pipeline::{Dataset, Event};

/// Kong Konnect audit-log entries (`logsource: product: kong, service: konnect`).
pub const DATASET: Dataset = Dataset::new("konnect", Some("kong"), Some("konnect"));

/// See `--webhook-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Auto,
    Json,
    Cef,
}

/// One entry of a body.
#[derive(Debug)]
pub enum Entry {
    Event(Event),
    Unreadable {
        /// The entry's bytes (the whole body when it could not be split).
        raw: Vec<u8>,
        /// 0-based entry (line or element) number within the body.
        position: usize,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Konnect {
    pub body: BodyFormat,
}

impl Konnect {
    /// The entries of one decompressed body, received at `received`.
    pub fn read(&self, body: &[u8], received: OffsetDateTime) -> Vec<Entry> {
        let start = body.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = start else {
            return Vec::new();
        };
        let looks_json = matches!(body[start], b'{' | b'[');
        match self.body {
            BodyFormat::Json => self.json(body, received),
            BodyFormat::Cef => cef_lines(body, received),
            BodyFormat::Auto if looks_json => self.json(body, received),
            BodyFormat::Auto if first_line(&body[start..]).windows(4).any(|w| w == b"CEF:") => {
                cef_lines(body, received)
            }
            BodyFormat::Auto => vec![unreadable(body, 0, "the body is neither JSON nor CEF")],
        }
    }

    fn json(&self, body: &[u8], received: OffsetDateTime) -> Vec<Entry> {
        let trimmed = body.trim_ascii();
        if trimmed.first() == Some(&b'[') {
            return match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(trimmed) {
                Ok(elements) => elements
                    .iter()
                    .enumerate()
                    .map(|(n, raw)| json_entry(raw.get().as_bytes(), n, received))
                    .collect(),
                Err(err) => vec![unreadable(
                    body,
                    0,
                    &format!("the body is not a JSON array: {err}"),
                )],
            };
        }
        // One object, perhaps over several lines; otherwise one object per line.
        if members(trimmed).is_some() {
            return vec![json_entry(trimmed, 0, received)];
        }
        body.split(|&b| b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|line| !line.is_empty())
            .enumerate()
            .map(|(n, line)| json_entry(line, n, received))
            .collect()
    }
}

fn first_line(body: &[u8]) -> &[u8] {
    body.split(|&b| b == b'\n').next().unwrap_or_default()
}

fn unreadable(raw: &[u8], position: usize, reason: &str) -> Entry {
    Entry::Unreadable {
        raw: raw.to_vec(),
        position,
        reason: reason.to_string(),
    }
}

/// The time of an entry: `rt` in epoch milliseconds, else `event_ts`.
fn own_time(
    entry: &[u8],
    top: &[(String, std::ops::Range<usize>)],
) -> Option<(String, OffsetDateTime)> {
    let value = |name: &str| {
        top.iter()
            .find(|(k, _)| k == name)
            .map(|(_, s)| &entry[s.clone()])
    };
    let millis = value("rt").and_then(|raw| {
        let text = match raw.first()? {
            b'"' => raw_str(raw)?,
            _ => std::str::from_utf8(raw).ok()?.to_string(),
        };
        text.trim().parse::<i64>().ok()
    });
    if let Some(t) = millis
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .filter(|t| t.year() >= 2000 && t.year() <= 9999)
    {
        return Some((super::document::format_time(t), t));
    }
    value("event_ts")
        .and_then(raw_str)
        .and_then(|s| parse_time(&s).map(|t| (s, t)))
}

/// One JSON entry -> its event; `id_bytes` (the entry as received) names it.
fn entry_event(entry: &[u8], id_bytes: &[u8], position: usize, received: OffsetDateTime) -> Entry {
    let Some(top) = members(entry) else {
        let reason = match serde_json::from_slice::<serde::de::IgnoredAny>(entry) {
            Err(err) => format!("entry {position} is not JSON: {err}"),
            Ok(_) => format!("entry {position} is not a JSON object"),
        };
        return unreadable(id_bytes, position, &reason);
    };
    // Konnect's `cps` log format wraps each entry as {"event": {...}}.
    if let [(key, span)] = &top[..] {
        if key == "event" && entry[span.start] == b'{' {
            return entry_event(&entry[span.clone()], id_bytes, position, received);
        }
    }
    let mut edits: Vec<Edit> = top
        .iter()
        .filter(|(_, span)| matches!(entry[span.start], b'{' | b'['))
        .filter_map(|(_, span)| Edit::of(entry, span.clone(), FreeForm::Strings))
        .collect();
    edits.sort_by_key(|e| e.span.start);
    let parts = Parts {
        id: content_id(id_bytes),
        own_time: own_time(entry, &top),
        has_timestamp: top.iter().any(|(k, _)| k == "@timestamp"),
        edits: &edits,
        separators: &[],
        dataset: DATASET,
    };
    let event = event(entry, parts, Some(received)).expect("a fallback time is always given");
    Entry::Event(event)
}

fn json_entry(entry: &[u8], position: usize, received: OffsetDateTime) -> Entry {
    entry_event(entry, entry, position, received)
}

/// The document of a CEF line: the header under the names Konnect's JSON entries use, the
/// prefix as `syslog_header`, and the extension's pairs (the first of a repeated key wins).
pub fn cef_document(line: &cef::Cef) -> Value {
    let mut doc = Map::new();
    let mut put = |k: &str, v: &str| {
        doc.entry(k.to_string()).or_insert_with(|| Value::from(v));
    };
    put("cef_version", &line.version);
    put("event_vendor", &line.device_vendor);
    put("event_product", &line.device_product);
    put("event_version", &line.device_version);
    put("event_class_id", &line.signature_id);
    put("name", &line.name);
    put("severity", &line.severity);
    if !line.prefix.is_empty() {
        put("syslog_header", &line.prefix);
        if let Some(first) = line
            .prefix
            .split(' ')
            .next()
            .filter(|t| parse_time(t).is_some())
        {
            put("event_ts", first);
        }
    }
    for (key, value) in &line.extension {
        put(key, value);
    }
    Value::Object(doc)
}

fn cef_lines(body: &[u8], received: OffsetDateTime) -> Vec<Entry> {
    body.split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(n, line)| {
            let parsed = std::str::from_utf8(line)
                .map_err(|e| format!("line {n} is not UTF-8: {e}"))
                .and_then(|text| cef::parse(text).map_err(|e| format!("line {n}: {e}")));
            match parsed {
                Ok(cef) => {
                    let doc =
                        serde_json::to_vec(&cef_document(&cef)).expect("JSON values serialise");
                    entry_event(&doc, line, n, received)
                }
                Err(reason) => unreadable(line, n, &reason),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const RECEIVED: OffsetDateTime = datetime!(2026-03-10 15:00:00 UTC);

    fn events(body: &[u8], format: BodyFormat) -> Vec<Entry> {
        Konnect { body: format }.read(body, RECEIVED)
    }

    fn event_of(entry: &Entry) -> (&Event, Value) {
        match entry {
            Entry::Event(e) => (e, serde_json::from_slice(&e.source).unwrap()),
            Entry::Unreadable { reason, .. } => panic!("unreadable: {reason}"),
        }
    }

    const JSON_LINE: &str = r#"{"cef_version":0,"event_class_id":"konnect","name":"Authz.control-planes","rt":1773151514075,"trace_id":7093348152250862441,"granted":true,"src":"127.0.0.6"}"#;

    #[test]
    fn ndjson_entries_keep_their_bytes_and_time_comes_from_rt() {
        let body = format!("{JSON_LINE}\n\n{JSON_LINE}\n");
        let entries = events(body.as_bytes(), BodyFormat::Auto);
        assert_eq!(entries.len(), 2);
        let (event, doc) = event_of(&entries[0]);
        assert_eq!(event.time, datetime!(2026-03-10 14:05:14.075 UTC));
        assert_eq!(doc["@timestamp"], "2026-03-10T14:05:14.075Z");
        assert!(!event.used_fallback_time);
        assert!(
            std::str::from_utf8(&event.source)
                .unwrap()
                .contains("\"trace_id\":7093348152250862441"),
            "the 19-digit trace_id keeps its digits"
        );
        assert_eq!(event.id.len(), 64);
        assert_eq!(event.id, event_of(&entries[1]).0.id, "same bytes, same _id");
    }

    #[test]
    fn arrays_single_objects_and_fallback_times() {
        let body =
            format!("[{JSON_LINE}, {{\"event_ts\":\"2026-03-10T14:05:11Z\"}}, {{\"x\":1}}, 5]");
        let entries = events(body.as_bytes(), BodyFormat::Auto);
        assert_eq!(entries.len(), 4);
        assert_eq!(
            event_of(&entries[1]).0.time,
            datetime!(2026-03-10 14:05:11 UTC)
        );
        let (fallback, _) = event_of(&entries[2]);
        assert!(fallback.used_fallback_time);
        assert_eq!(fallback.time, RECEIVED);
        assert!(matches!(&entries[3], Entry::Unreadable { position: 3, .. }));
        let pretty = "{\n  \"rt\": \"1773151514075\",\n  \"nested\": {\"a\": [1]}\n}\n";
        let entries = events(pretty.as_bytes(), BodyFormat::Json);
        assert_eq!(entries.len(), 1);
        let (event, doc) = event_of(&entries[0]);
        assert_eq!(
            event.time,
            datetime!(2026-03-10 14:05:14.075 UTC),
            "rt as a string"
        );
        assert_eq!(
            doc["nested"], "{\"a\": [1]}",
            "nested values become strings"
        );
        let cps = format!("{{\"event\":{JSON_LINE}}}");
        let unwrapped = events(cps.as_bytes(), BodyFormat::Auto);
        let (event, doc) = event_of(&unwrapped[0]);
        assert_eq!(
            doc["name"], "Authz.control-planes",
            "cps entries are unwrapped"
        );
        assert_eq!(event.id, content_id(cps.as_bytes()));
    }

    #[test]
    fn a_bad_line_is_unreadable_and_the_rest_indexed() {
        let body = format!("{JSON_LINE}\nnot json at all\n{JSON_LINE}");
        let entries = events(body.as_bytes(), BodyFormat::Auto);
        assert_eq!(entries.len(), 3);
        match &entries[1] {
            Entry::Unreadable {
                raw,
                position,
                reason,
            } => {
                assert_eq!(raw, b"not json at all");
                assert_eq!(*position, 1);
                assert!(reason.contains("entry 1 is not JSON"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let garbage = events(b"\x00\x01 binary garbage", BodyFormat::Auto);
        assert!(
            matches!(&garbage[..], [Entry::Unreadable { reason, .. }] if reason.contains("neither JSON nor CEF"))
        );
        assert!(events(b"  \n ", BodyFormat::Auto).is_empty());
    }

    #[test]
    fn cef_lines_become_documents_with_the_json_names() {
        let line = r#"2026-03-10T14:05:11Z konghq.com CEF:0|KongInc|Konnect|1.0|AUTHENTICATION_TYPE_BASIC|AUTHENTICATION_OUTCOME_SUCCESS|0|rt=1773151511204 src=203.0.113.47 success=true trace_id=4417309825161338012 user_agent=Mozilla/5.0 (X11; Linux x86_64) query={"a":"b\=c"}"#;
        let body = format!("{line}\nCEF:0|broken\n");
        let entries = events(body.as_bytes(), BodyFormat::Auto);
        assert_eq!(entries.len(), 2);
        let (event, doc) = event_of(&entries[0]);
        assert_eq!(doc["event_class_id"], "AUTHENTICATION_TYPE_BASIC");
        assert_eq!(doc["name"], "AUTHENTICATION_OUTCOME_SUCCESS");
        assert_eq!(doc["event_vendor"], "KongInc");
        assert_eq!(doc["severity"], "0");
        assert_eq!(doc["syslog_header"], "2026-03-10T14:05:11Z konghq.com");
        assert_eq!(doc["event_ts"], "2026-03-10T14:05:11Z");
        assert_eq!(doc["trace_id"], "4417309825161338012");
        assert_eq!(doc["user_agent"], "Mozilla/5.0 (X11; Linux x86_64)");
        assert_eq!(doc["query"], r#"{"a":"b=c"}"#);
        assert_eq!(event.time, datetime!(2026-03-10 14:05:11.204 UTC));
        assert_eq!(
            event.id,
            content_id(line.as_bytes()),
            "named by the line as received"
        );
        assert!(matches!(&entries[1], Entry::Unreadable { position: 1, .. }));
    }

    #[test]
    fn the_sample_entries_in_both_formats_give_the_same_times() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/konnect");
        let json = std::fs::read(dir.join("entries.ndjson")).unwrap();
        let cef = std::fs::read(dir.join("entries.cef")).unwrap();
        let json = events(&json, BodyFormat::Auto);
        let cef = events(&cef, BodyFormat::Auto);
        assert_eq!(json.len(), 20);
        assert_eq!(cef.len(), 20);
        for (n, (j, c)) in json.iter().zip(&cef).enumerate() {
            let ((j, jdoc), (c, cdoc)) = (event_of(j), event_of(c));
            assert_eq!(j.time, c.time, "entry {n}");
            assert!(!j.used_fallback_time, "entry {n} has its own time");
            assert_eq!(jdoc["event_class_id"], cdoc["event_class_id"], "entry {n}");
        }
        let ids: std::collections::BTreeSet<_> =
            json.iter().map(|e| event_of(e).0.id.clone()).collect();
        assert_eq!(ids.len(), 20);
    }
}
