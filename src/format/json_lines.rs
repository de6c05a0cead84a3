//! The JSON-lines object format: JSON objects one after another -> one event each.
//!
//! What Kafka Connect's S3 sink (`JsonFormat`), Vector, Fluent Bit and Firehose write: one
//! JSON object per line, or objects glued together with no separator at all (Firehose
//! without a delimiter), or both; blank lines and whitespace between objects are skipped. A
//! JSON string that holds one object (Kafka Connect's `JsonFormat` behind a `StringConverter`
//! writes each record so) is that object, as its producer wrote it.
//! Records are found as the bytes arrive, following only the brackets outside strings and
//! the line ends that the structural scanner ([`super::scan`]) finds ([`Values`]), so memory
//! holds one record, not the object.
//!
//! Each record becomes an event through a [`RecordFormat`], the same implementation the
//! Kafka source uses: a Confluent Cloud audit record (a CloudEvent whose `type` begins with
//! `io.confluent.`) through [`Confluent`], so it gets the same document and template as
//! from the audit-log topic; any other record through [`Json`] (`_id` from the id field or a
//! CloudEvents `id`, else a hash of the object's name and the record's place in it; time
//! from the time fields, else the object's LastModified).
//!
//! Failure policy: a record is never allowed to take its neighbours with it. What is not a
//! JSON object (a text line, an array, a scalar, an object broken by its line's end, one
//! that is not valid JSON) is handed on as [`Item::Unreadable`] with its line number and
//! reason, for the dead-letter index, and reading goes on with the next line or object.
//! Only read errors end the object.

use std::io::{self, BufRead};
use std::ops::ControlFlow;

use memchr::memmem;

use super::confluent::Confluent;
use super::document::content_id;
use super::json::Json;
use super::payload::Summary;
use super::payload::{Format, FormatError, Item, PayloadContext};
use super::record::{RecordContext, RecordError, RecordFormat};
use super::scan::Classifier;
use super::FreeForm;
use crate::pipeline::{Closed, Event};

/// A record may not exceed this; a larger one is unreadable (and its bytes beyond
/// [`KEPT_OF_UNREADABLE`] are not kept).
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// Of bytes that are not a record, at most this much is kept for the dead-letter index.
pub const KEPT_OF_UNREADABLE: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct JsonLines {
    pub confluent: Confluent,
    pub json: Json,
}

impl JsonLines {
    pub fn new(free_form: FreeForm, json: Json) -> Self {
        JsonLines {
            confluent: Confluent { free_form },
            json,
        }
    }

    /// The format of `record`: Confluent's for its audit records, else the JSON one.
    fn format_of(&self, record: &[u8]) -> &dyn RecordFormat {
        // Most records are not CloudEvents: look for the key before parsing anything.
        if memmem::find(record, b"\"specversion\"").is_some() && is_confluent(record) {
            &self.confluent
        } else {
            &self.json
        }
    }
}

/// A CloudEvent from Confluent Cloud: `specversion` and a `type` beginning `io.confluent.`.
fn is_confluent(record: &[u8]) -> bool {
    let Some(top) = super::document::members(record) else {
        return false;
    };
    let has = |name: &str| {
        top.iter()
            .find(|(key, _)| key == name)
            .map(|(_, s)| s.clone())
    };
    has("specversion").is_some()
        && has("type").is_some_and(|span| record[span].starts_with(b"\"io.confluent."))
}

impl Format for JsonLines {
    fn read(
        &self,
        input: &mut dyn BufRead,
        context: &PayloadContext<'_>,
        emit: &mut dyn FnMut(Item) -> Result<(), Closed>,
    ) -> Result<Summary, FormatError> {
        let mut summary = Summary::default();
        let mut values = Values::new(input);
        let mut ordinal: u64 = 0;
        loop {
            let value = match values.next_value() {
                Ok(Some(value)) => value,
                Ok(None) => return Ok(summary),
                Err(err) => return Err(FormatError::Read(err)),
            };
            // The record's place in the object names it when nothing in it does; Confluent
            // records always name themselves, so the hash is made only for the others.
            let this = ordinal;
            ordinal += 1;
            let position = || content_id(format!("{}\n{this}", context.name).as_bytes());
            let (line, outcome, named) = match value {
                Value::Object { bytes, line } => {
                    let format = self.format_of(bytes);
                    let named =
                        (format.dataset() != crate::format::confluent::DATASET).then(position);
                    let record_context = RecordContext {
                        position: named.as_deref().unwrap_or_default(),
                        fallback_time: context.fallback_time,
                    };
                    let outcome = format
                        .event(bytes, &record_context)
                        .map_err(|err| (bytes, err.to_string()));
                    (line, outcome, named)
                }
                Value::Broken {
                    bytes,
                    line,
                    reason,
                } => (line, Err((bytes, reason.to_string())), None),
            };
            let item = match outcome {
                Ok(event) => {
                    summary.events += 1;
                    summary.fallback_time_events += u64::from(event.used_fallback_time);
                    Item::Event(event)
                }
                Err((bytes, reason)) => {
                    summary.unreadable += 1;
                    let Some(time) = context.fallback_time else {
                        return Err(FormatError::Record {
                            record: this,
                            reason: RecordError::NoTime.to_string(),
                        });
                    };
                    Item::Unreadable {
                        event: Event::unreadable(
                            named.unwrap_or_else(position),
                            bytes[..bytes.len().min(KEPT_OF_UNREADABLE)].to_vec(),
                            time,
                            self.json.dataset(),
                        ),
                        line,
                        reason: format!("line {line}: {reason}"),
                    }
                }
            };
            emit(item)?;
        }
    }
}

/// One value found by [`Values`].
#[derive(Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// Balanced `{...}` (not yet checked to be valid JSON).
    Object { bytes: &'a [u8], line: u64 },
    /// Bytes that are not a JSON object.
    Broken {
        bytes: &'a [u8],
        line: u64,
        reason: &'static str,
    },
}

/// Splits a stream of JSON values; call [`Values::next_value`] until it returns `Ok(None)`.
/// An object must end on the line it starts on (JSON lines), so a broken one is cut at its
/// line's end and never swallows the lines after it.
pub struct Values<R> {
    reader: R,
    record: Vec<u8>,
    /// 1-based line of the next byte.
    line: u64,
}

impl<R: BufRead> Values<R> {
    pub fn new(reader: R) -> Self {
        Values {
            reader,
            record: Vec::with_capacity(16 * 1024),
            line: 1,
        }
    }

    pub fn next_value(&mut self) -> io::Result<Option<Value<'_>>> {
        let Some(first) = self.skip_whitespace()? else {
            return Ok(None);
        };
        let line = self.line;
        self.record.clear();
        let broken = match first {
            b'{' | b'[' => match self.scan_container(first)? {
                None if first == b'[' => Some("a JSON array, not an object"),
                None => None,
                Some(reason) => Some(reason),
            },
            b'"' => match self.scan_container(first)? {
                None => self.unwrap_string(),
                Some(reason) => Some(reason),
            },
            _ => {
                self.scan_garbage()?;
                Some("not JSON")
            }
        };
        Ok(Some(match broken {
            None => Value::Object {
                bytes: &self.record,
                line,
            },
            Some(reason) => Value::Broken {
                bytes: &self.record,
                line,
                reason,
            },
        }))
    }

    /// A JSON string that holds one JSON object (what Kafka Connect writes with a
    /// `StringConverter`) is that object; any other string is not a record.
    fn unwrap_string(&mut self) -> Option<&'static str> {
        match serde_json::from_slice::<String>(&self.record) {
            Ok(text) if text.trim_start().starts_with('{') => {
                self.record = text.into_bytes();
                None
            }
            _ => Some("a JSON string, not an object"),
        }
    }

    /// Skips whitespace (counting lines) and returns the next byte, not consumed.
    fn skip_whitespace(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            let at = buf.iter().position(|b| !b.is_ascii_whitespace());
            let skipped = at.unwrap_or(buf.len());
            self.line += memchr::memchr_iter(b'\n', &buf[..skipped]).count() as u64;
            let first = at.map(|i| buf[i]);
            self.reader.consume(skipped);
            if first.is_some() {
                return Ok(first);
            }
        }
    }

    /// Scans an object, an array or a string from its first byte (`first`, not consumed), a
    /// block at a time ([`Classifier`]); `None` when it closed, else why it is broken. Stops
    /// before a newline that comes before the end (not consumed).
    fn scan_container(&mut self, first: u8) -> io::Result<Option<&'static str>> {
        let string = first == b'"';
        let mut depth: usize = 0;
        let mut classifier = Classifier::new();
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(Some("the object ends inside this record"));
            }
            let stop = classifier.blocks(buf, |offset, block| {
                // A string value ends at its closing quote; a container at its closing
                // bracket, whatever its strings hold.
                let ends = if string {
                    block.quotes & !block.in_string
                } else {
                    block.brackets
                };
                let mut tokens = ends | block.newlines;
                while tokens != 0 {
                    let bit = tokens.trailing_zeros() as usize;
                    tokens &= tokens - 1;
                    let at = offset + bit;
                    match buf[at] {
                        b'\n' if block.in_string >> bit & 1 == 1 => {
                            return ControlFlow::Break((at, Some("the line ends inside a string")))
                        }
                        b'\n' => {
                            return ControlFlow::Break((
                                at,
                                Some("the line ends before the record does"),
                            ))
                        }
                        b'"' => return ControlFlow::Break((at + 1, None)),
                        b'{' | b'[' => depth += 1,
                        _ => {
                            depth -= 1;
                            if depth == 0 {
                                return ControlFlow::Break((at + 1, None));
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            });
            let n = stop.map_or(buf.len(), |(n, _)| n);
            let room = MAX_RECORD_BYTES.saturating_sub(self.record.len());
            let too_large = n > room;
            self.record.extend_from_slice(&buf[..n.min(room)]);
            self.reader.consume(n);
            if too_large {
                self.record.truncate(KEPT_OF_UNREADABLE);
                self.skip_line()?;
                return Ok(Some("the record is larger than 64 MiB"));
            }
            if let Some((_, broken)) = stop {
                return Ok(broken);
            }
        }
    }

    /// Takes bytes up to the next `{` or line end (neither consumed).
    fn scan_garbage(&mut self) -> io::Result<()> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let stop = memchr::memchr2(b'{', b'\n', buf);
            let n = stop.unwrap_or(buf.len());
            let room = KEPT_OF_UNREADABLE.saturating_sub(self.record.len());
            self.record.extend_from_slice(&buf[..n.min(room)]);
            self.reader.consume(n);
            if stop.is_some() {
                return Ok(());
            }
        }
    }

    /// Discards bytes up to the line end (not consumed).
    fn skip_line(&mut self) -> io::Result<()> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let stop = memchr::memchr(b'\n', buf);
            let n = stop.unwrap_or(buf.len());
            self.reader.consume(n);
            if stop.is_some() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;
    use time::macros::datetime;

    /// (line, text, broken reason) of every value, read with a `buffer`-byte reader.
    fn values(input: &[u8], buffer: usize) -> Vec<(u64, String, Option<&'static str>)> {
        let mut values = Values::new(BufReader::with_capacity(buffer, input));
        let mut out = Vec::new();
        while let Some(value) = values.next_value().unwrap() {
            out.push(match value {
                Value::Object { bytes, line } => {
                    (line, String::from_utf8_lossy(bytes).into(), None)
                }
                Value::Broken {
                    bytes,
                    line,
                    reason,
                } => (line, String::from_utf8_lossy(bytes).into(), Some(reason)),
            });
        }
        out
    }

    /// Random objects one per line, some lines cut short or not JSON at all, at random buffer
    /// sizes: every whole object comes out as written, every other line as broken, in order.
    #[test]
    fn random_lines_read_as_serde_json_reads_them() {
        use crate::format::scan::samples::{json_value, Random};
        let mut random = Random(11);
        for _ in 0..200 {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for line in 1..=1 + random.below(6) as u64 {
                let text = serde_json::json!({ "v": json_value(&mut random, 0) }).to_string();
                match random.below(4) {
                    0 => {
                        let cut = 1 + random.below(text.len() - 1);
                        let bytes = text.as_bytes()[..cut].to_vec();
                        expected.push((line, String::from_utf8_lossy(&bytes).into(), true));
                    }
                    _ => expected.push((line, text.clone(), false)),
                }
                let (_, kept, _) = expected.last().unwrap();
                input.extend_from_slice(kept.as_bytes());
                input.push(b'\n');
            }
            for buffer in [1 + random.below(7), 64, 1 + random.below(300)] {
                let got: Vec<(u64, String, bool)> = values(&input, buffer)
                    .into_iter()
                    .map(|(line, text, broken)| (line, text, broken.is_some()))
                    .collect();
                assert_eq!(got, expected, "{}", String::from_utf8_lossy(&input));
            }
        }
    }

    #[test]
    fn lines_glued_objects_and_blank_lines_at_any_buffer_size() {
        let input = b"{\"a\":\"}{\\\"\"}\n\n  {\"b\":[1,{\"c\":2}]}{\"d\":3}\r\n{\"e\":4}";
        for buffer in [1, 2, 5, 64, 8192] {
            assert_eq!(
                values(input, buffer),
                [
                    (1, r#"{"a":"}{\""}"#.to_string(), None),
                    (3, r#"{"b":[1,{"c":2}]}"#.to_string(), None),
                    (3, r#"{"d":3}"#.to_string(), None),
                    (4, r#"{"e":4}"#.to_string(), None),
                ],
                "buffer {buffer}"
            );
        }
    }

    #[test]
    fn a_json_string_holding_an_object_is_that_object() {
        let input = b"\"{\\\"a\\\":\\\"x\\\\ny\\\"}\"\n\"just text\"\n\"open\n";
        assert_eq!(
            values(input, 3),
            [
                (1, r#"{"a":"x\ny"}"#.to_string(), None),
                (
                    2,
                    r#""just text""#.to_string(),
                    Some("a JSON string, not an object")
                ),
                (
                    3,
                    r#""open"#.to_string(),
                    Some("the line ends inside a string")
                ),
            ]
        );
    }

    #[test]
    fn what_is_broken_stays_on_its_line() {
        let input =
            b"not json\n{\"open\":\"string\n{\"open\":1\n[1,2]\n{\"ok\":1}x{\"ok\":2}\n{\"last\":";
        for buffer in [1, 3, 8192] {
            assert_eq!(
                values(input, buffer),
                [
                    (1, "not json".to_string(), Some("not JSON")),
                    (
                        2,
                        r#"{"open":"string"#.to_string(),
                        Some("the line ends inside a string")
                    ),
                    (
                        3,
                        r#"{"open":1"#.to_string(),
                        Some("the line ends before the record does")
                    ),
                    (4, "[1,2]".to_string(), Some("a JSON array, not an object")),
                    (5, r#"{"ok":1}"#.to_string(), None),
                    (5, "x".to_string(), Some("not JSON")),
                    (5, r#"{"ok":2}"#.to_string(), None),
                    (
                        6,
                        r#"{"last":"#.to_string(),
                        Some("the object ends inside this record")
                    ),
                ],
                "buffer {buffer}"
            );
        }
    }

    fn read(input: &[u8]) -> (Summary, Vec<Item>) {
        let format = JsonLines::new(
            FreeForm::Objects,
            Json::new(None, super::super::json::DEFAULT_TIME_FIELDS),
        );
        let context = PayloadContext {
            name: "s3://bucket/topics/t/partition=0/t+0+0000000000.json",
            fallback_time: Some(datetime!(2024-06-01 12:00:00 UTC)),
        };
        let mut items = Vec::new();
        let summary = format
            .read(&mut &input[..], &context, &mut |item| {
                items.push(item);
                Ok(())
            })
            .unwrap();
        (summary, items)
    }

    #[test]
    fn confluent_records_get_the_confluent_document_others_the_json_one() {
        let input = br#"{"specversion":"1.0","id":"c-1","type":"io.confluent.kafka.server/authentication","time":"2024-03-05T07:08:09Z","data":{"authenticationInfo":{"principal":"User:1"}}}
{"message":"hello","timestamp":"2024-03-05T07:08:10Z"}
{"message":"no time"}
"#;
        let (summary, items) = read(input);
        assert_eq!(
            (
                summary.events,
                summary.unreadable,
                summary.fallback_time_events
            ),
            (3, 0, 1)
        );
        let events: Vec<&Event> = items
            .iter()
            .map(|item| match item {
                Item::Event(event) => event,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(events[0].dataset, crate::format::confluent::DATASET);
        assert_eq!(events[0].id, "c-1");
        let doc: serde_json::Value = serde_json::from_slice(&events[0].source).unwrap();
        assert_eq!(
            doc["data"]["authenticationInfo"]["principal"]["value"],
            "User:1"
        );
        assert_eq!(events[1].dataset, crate::format::json::DATASET);
        assert_eq!(events[1].id.len(), 64, "a hash of the object and the place");
        assert_ne!(events[1].id, events[2].id);
        assert_eq!(events[2].time, datetime!(2024-06-01 12:00:00 UTC));
        let (_, again) = read(input);
        let ids = |items: &[Item]| -> Vec<String> {
            items
                .iter()
                .map(|i| match i {
                    Item::Event(e) => e.id.clone(),
                    Item::Unreadable { event, .. } => event.id.clone(),
                })
                .collect()
        };
        assert_eq!(ids(&items), ids(&again), "stable across reads");
    }

    #[test]
    fn unreadable_records_carry_their_line_and_the_rest_is_read() {
        let input = b"{\"a\":1}\nthis is not json\n{\"b\":}\n{\"c\":3}\n";
        let (summary, items) = read(input);
        assert_eq!((summary.events, summary.unreadable), (2, 2));
        match &items[1] {
            Item::Unreadable {
                event,
                line,
                reason,
            } => {
                assert_eq!(*line, 2);
                assert_eq!(&event.source[..], b"this is not json");
                assert!(reason.starts_with("line 2: not JSON"), "{reason}");
                assert!(event.used_fallback_time);
            }
            other => panic!("{other:?}"),
        }
        match &items[2] {
            Item::Unreadable { line, reason, .. } => {
                assert_eq!(*line, 3);
                assert!(reason.contains("not a JSON object"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&items[3], Item::Event(e) if e.source.ends_with(b"\"c\":3}")));
    }
}
