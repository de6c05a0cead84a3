//! Document: what every format does to a record's bytes to make its document, without
//! re-serialising it.
//!
//! A document is the record as the producer wrote it, on one line, with `"@timestamp"`
//! spliced in after the opening brace and a few value spans rewritten ([`Edit`]) so that the
//! index template accepts every event: the free-form values ([`FreeForm`]). Everything else
//! is copied byte for byte. Also here: reading a raw string value, RFC 3339 times, the
//! content id of a record without an id of its own, and the members of a JSON object with
//! their spans ([`members`], [`find`]) for formats that look below the top level.

use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::escape;
use crate::pipeline::{Dataset, Event};

/// How free-form values are written, so that one mapping accepts every event:
/// - [`FreeForm::Objects`] (mapped `flattened`/`flat_object`): objects and `null` as written;
///   any other value (a string such as `"true"`, a number, an array) becomes
///   `{"value": <value>}`, because those field types only take objects;
/// - [`FreeForm::Strings`] (mapped `text`): strings and `null` as written; any other value
///   becomes a JSON string of its text;
/// - [`FreeForm::AsWritten`]: every value as written, for documents that a later stage
///   rewrites into another schema (the ECS schema writes each in its own way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeForm {
    Objects,
    Strings,
    AsWritten,
}

/// A free-form value of the record to write the [`FreeForm`] way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub span: Range<usize>,
    pub kind: FreeForm,
}

impl Edit {
    /// The edit `value` (a span of `record`) needs, if any: none when it already has the
    /// layout's shape.
    pub fn of(record: &[u8], span: Range<usize>, kind: FreeForm) -> Option<Edit> {
        let first = record[span.start];
        let fits = match kind {
            FreeForm::Objects => first == b'{' || &record[span.clone()] == b"null",
            FreeForm::Strings => first == b'"' || &record[span.clone()] == b"null",
            FreeForm::AsWritten => true,
        };
        (!fits).then_some(Edit { span, kind })
    }
}

/// The record on one line, with `"@timestamp":"<t>",` inserted after the opening brace and
/// the `edits` applied. A record that already carries `@timestamp` keeps its own (a
/// duplicate key is rejected by the cluster). Newlines inside the record are only whitespace
/// between tokens (JSON strings cannot hold raw newlines), so replacing them with spaces
/// keeps it identical.
///
/// `separators` are the record's top-level `:` and `,` when known (else empty): the same ones
/// in the document, with the spliced `@timestamp` member's own, are returned (its outline;
/// empty when not known). Separators lie between members, never inside an edited value.
pub fn append_source(
    out: &mut Vec<u8>,
    record: &[u8],
    timestamp: Option<&str>,
    edits: &[Edit],
    separators: &[u32],
) -> Vec<u32> {
    let open = record
        .iter()
        .position(|&b| b == b'{')
        .expect("a validated record is a JSON object");
    let rest = &record[open + 1..];
    let start = out.len();
    let outlined = !separators.is_empty();
    let mut outline = Vec::with_capacity(if outlined { separators.len() + 2 } else { 0 });
    out.push(b'{');
    if let Some(ts) = timestamp {
        out.extend_from_slice(b"\"@timestamp\":");
        if outlined {
            outline.push((out.len() - start - 1) as u32);
        }
        write_str(out, ts);
        let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
        if !empty {
            if outlined {
                outline.push((out.len() - start) as u32);
            }
            out.push(b',');
        }
    }
    // A record position is at the same place in the document plus `shift`, which grows by
    // what the spliced member adds and by what each edit before it adds.
    let mut shift = (out.len() - start) as i64 - (open + 1) as i64;
    let mut shifts = Vec::new();
    let mut copied = open + 1;
    for edit in edits {
        out.extend_from_slice(&record[copied..edit.span.start]);
        let value = &record[edit.span.clone()];
        let before = out.len();
        write_edited(out, value, edit.kind);
        shifts.push((edit.span.start, shift));
        shift += (out.len() - before) as i64 - value.len() as i64;
        copied = edit.span.end;
    }
    out.extend_from_slice(&record[copied..]);
    if outlined && shifts.is_empty() {
        // Most records: one shift for all (the spliced member; wrapping, as a record with
        // leading whitespace moves back).
        outline.extend(separators.iter().map(|&at| at.wrapping_add(shift as u32)));
    } else if outlined {
        outline.extend(moved(separators, &shifts, shift));
    }
    let source = &mut out[start..];
    let mut at = 0;
    while let Some(found) = memchr::memchr2(b'\n', b'\r', &source[at..]) {
        source[at + found] = b' ';
        at += found + 1;
    }
    outline
}

/// `value` written the `kind` way.
fn write_edited(out: &mut Vec<u8>, value: &[u8], kind: FreeForm) {
    match kind {
        FreeForm::Objects => {
            out.extend_from_slice(b"{\"value\":");
            out.extend_from_slice(value);
            out.push(b'}');
        }
        FreeForm::Strings => {
            let text = std::str::from_utf8(value).expect("a validated record is UTF-8");
            let text = text.replace(['\n', '\r'], " ");
            serde_json::to_writer(&mut *out, &text).expect("writing to a Vec cannot fail");
        }
        FreeForm::AsWritten => out.extend_from_slice(value),
    }
}

/// Where the record's `separators` are in the document: each moves by the shift in effect
/// at it, which is the one recorded before the first edit after it (`shifts`: each edit's
/// start and the shift before it), or `last` after every edit. A separator lies between
/// members, never inside an edited value.
fn moved<'a>(
    separators: &'a [u32],
    shifts: &'a [(usize, i64)],
    last: i64,
) -> impl Iterator<Item = u32> + 'a {
    let mut next = 0;
    separators.iter().map(move |&at| {
        while shifts
            .get(next)
            .is_some_and(|&(edit, _)| edit < at as usize)
        {
            next += 1;
        }
        let shift = shifts.get(next).map_or(last, |&(_, before)| before);
        // The document is at most a record's 64 MiB plus a few bytes: positions fit a u32.
        (i64::from(at) + shift) as u32
    })
}

/// Appends `text` as a JSON string (see [`escape`]).
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    escape::write_str(out, text.as_bytes());
}

/// The text of a raw JSON string value; `None` for any other value.
pub fn raw_str(raw: &[u8]) -> Option<String> {
    match raw {
        [b'"', inner @ .., b'"'] if !escape::needs_escape(inner) => {
            std::str::from_utf8(inner).ok().map(str::to_owned)
        }
        _ => serde_json::from_slice::<String>(raw).ok(),
    }
}

pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

pub use crate::pipeline::format_time;

/// Stable id for records without `eventID`: the same bytes always give the same id.
pub fn content_id(record: &[u8]) -> String {
    use std::fmt::Write;
    let mut id = String::with_capacity(64);
    for b in Sha256::digest(record) {
        write!(id, "{b:02x}").expect("writing to a String cannot fail");
    }
    id
}

/// What a format decided about one record.
#[derive(Debug)]
pub struct Parts<'a> {
    pub id: String,
    /// The record's own time, as written and parsed, when it has a usable one.
    pub own_time: Option<(String, OffsetDateTime)>,
    /// The record carries its own `@timestamp`, which is kept (none is spliced in).
    pub has_timestamp: bool,
    /// In record order.
    pub edits: &'a [Edit],
    /// The record's top-level `:` and `,`, when its format found them (else empty).
    pub separators: &'a [u32],
    pub dataset: Dataset,
}

/// The event of `record`: placed by its own time, else by `fallback_time`; `None` when it
/// has neither.
pub fn event(
    record: &[u8],
    parts: Parts<'_>,
    fallback_time: Option<OffsetDateTime>,
) -> Option<Event> {
    let used_fallback_time = parts.own_time.is_none();
    let (timestamp, time) = match parts.own_time {
        Some(own) => own,
        None => {
            let t = fallback_time?;
            (format_time(t), t)
        }
    };
    let timestamp_member = (!parts.has_timestamp).then_some(timestamp.as_str());
    let (source, outline) = chunks::write(record.len() + timestamp.len() + 64, |out| {
        append_source(out, record, timestamp_member, parts.edits, parts.separators)
    });
    Some(Event {
        id: parts.id,
        time,
        timestamp,
        source,
        outline,
        used_fallback_time,
        dataset: parts.dataset,
    })
}

/// Where documents are written: each thread's documents are slices of one shared buffer of
/// [`chunks::CHUNK_BYTES`], so that the events read from an object cost one allocation per
/// buffer rather than one per event, and one free when the last of them is settled (on the
/// sink's thread, where freeing many small blocks of another thread's memory costs the most).
/// A buffer lives as long as any of its documents: at most a buffer's worth more than the
/// documents in flight, per thread.
pub mod chunks {
    use std::cell::RefCell;

    use bytes::{Bytes, BytesMut};

    /// The size of a buffer (documents of more than an eighth of it get their own).
    pub const CHUNK_BYTES: usize = 64 << 10;

    thread_local! {
        /// The document being written (kept for its capacity), and what is left of the
        /// thread's buffer.
        static WRITER: RefCell<(Vec<u8>, BytesMut)> = RefCell::new((Vec::new(), BytesMut::new()));
    }

    /// The document `build` writes (about `size` bytes), and what `build` returns.
    pub fn write<T>(size: usize, build: impl FnOnce(&mut Vec<u8>) -> T) -> (Bytes, T) {
        if size > CHUNK_BYTES / 8 {
            let mut own = Vec::with_capacity(size);
            let made = build(&mut own);
            return (Bytes::from(own), made);
        }
        WRITER.with_borrow_mut(|(scratch, chunk)| {
            scratch.clear();
            let made = build(scratch);
            if chunk.capacity() < scratch.len() {
                *chunk = BytesMut::with_capacity(CHUNK_BYTES.max(scratch.len()));
            }
            chunk.extend_from_slice(scratch);
            (chunk.split().freeze(), made)
        })
    }

    /// [`write`], for a writer that writes into the shared buffer itself: the document needs
    /// no copy.
    pub fn write_bytes<T>(size: usize, build: impl FnOnce(&mut BytesMut) -> T) -> (Bytes, T) {
        if size > CHUNK_BYTES / 8 {
            let mut own = BytesMut::with_capacity(size);
            let made = build(&mut own);
            return (own.freeze(), made);
        }
        WRITER.with_borrow_mut(|(_, chunk)| {
            // Empty, unless a build before panicked.
            chunk.clear();
            if chunk.capacity() < size {
                *chunk = BytesMut::with_capacity(CHUNK_BYTES);
            }
            let made = build(chunk);
            (chunk.split().freeze(), made)
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn documents_share_a_buffer_until_it_is_full_and_outlive_it() {
            let small = |byte: u8| write(100, |out| out.extend_from_slice(&[byte; 1000])).0;
            let first = small(b'a');
            let second = small(b'b');
            assert_eq!(
                distance(&first, &second),
                1000,
                "the second follows the first in the same buffer"
            );
            let many: Vec<Bytes> = (0..200).map(|n| small(n as u8)).collect();
            drop(first);
            assert!(second.iter().all(|&b| b == b'b'));
            for (n, document) in many.iter().enumerate() {
                assert!(document.len() == 1000 && document.iter().all(|&b| b == n as u8));
            }
            let large = write(CHUNK_BYTES, |out| out.extend_from_slice(b"{}")).0;
            assert_eq!(&large[..], b"{}");
        }

        #[test]
        fn documents_written_in_place_share_a_buffer_and_outlive_it() {
            let small = |byte: u8| write_bytes(100, |out| out.extend_from_slice(&[byte; 1000])).0;
            let first = small(b'a');
            let second = small(b'b');
            assert_eq!(distance(&first, &second), 1000);
            // One that outgrows the room left moves, whole, to a buffer of its own.
            let many: Vec<Bytes> = (0..200).map(|n| small(n as u8)).collect();
            let grown = write_bytes(100, |out| out.extend_from_slice(&[b'g'; 9000])).0;
            drop(first);
            assert!(second.iter().all(|&b| b == b'b'));
            for (n, document) in many.iter().enumerate() {
                assert!(document.len() == 1000 && document.iter().all(|&b| b == n as u8));
            }
            assert!(grown.len() == 9000 && grown.iter().all(|&b| b == b'g'));
            let large = write_bytes(CHUNK_BYTES, |out| out.extend_from_slice(b"{}")).0;
            assert_eq!(&large[..], b"{}");
        }

        /// How far apart two documents start in memory.
        fn distance(a: &Bytes, b: &Bytes) -> usize {
            (b.as_ptr() as usize).wrapping_sub(a.as_ptr() as usize)
        }
    }
}

/// The RFC 3339 time of a raw JSON string value.
pub fn time_of(raw: &[u8]) -> Option<(String, OffsetDateTime)> {
    raw_str(raw).and_then(|s| parse_time(&s).map(|t| (s, t)))
}

/// The members of the JSON object `bytes`, in order, with the spans of their values in
/// `bytes`; `None` when `bytes` is not one valid JSON object. The whole object is validated
/// (values included); keys are decoded.
pub fn members(bytes: &[u8]) -> Option<Vec<(String, Range<usize>)>> {
    struct Collect<'a>(&'a [u8]);
    impl<'de> Visitor<'de> for Collect<'de> {
        type Value = Vec<(String, Range<usize>)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let base = self.0.as_ptr() as usize;
            let mut out = Vec::new();
            while let Some((key, value)) =
                map.next_entry::<std::borrow::Cow<'de, str>, &'de RawValue>()?
            {
                let start = value.get().as_ptr() as usize - base;
                out.push((key.into_owned(), start..start + value.get().len()));
            }
            Ok(out)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let found = deserializer.deserialize_map(Collect(bytes)).ok()?;
    deserializer.end().ok()?;
    Some(found)
}

/// The span in `record` of the value at the dotted `path` (`data.result.status`), looking
/// through objects only; the first of a repeated key wins; `null` counts as absent.
pub fn find(record: &[u8], path: &[impl AsRef<str>]) -> Option<Range<usize>> {
    find_below(record, 0..record.len(), path)
}

/// [`find`], below the object at `span` of `record`.
pub fn find_below(
    record: &[u8],
    span: Range<usize>,
    path: &[impl AsRef<str>],
) -> Option<Range<usize>> {
    let mut span = span;
    for name in path {
        let found = members(&record[span.clone()])?
            .into_iter()
            .find(|(key, _)| key == name.as_ref())?
            .1;
        span = span.start + found.start..span.start + found.end;
    }
    (&record[span.clone()] != b"null").then_some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for text in [
            "",
            "2024-01-02T03:04:05Z",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{e9}\u{1}\u{7f}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn members_and_paths_point_into_the_record() {
        let record = br#" { "a" : 1, "b\u0041": {"c": [1, {"d": 2}], "e": null}, "a": "x" } "#;
        let top = members(record).unwrap();
        let names: Vec<&str> = top.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "bA", "a"]);
        assert_eq!(&record[top[0].1.clone()], b"1");
        let c = find(record, &["bA", "c"]).unwrap();
        assert_eq!(&record[c], br#"[1, {"d": 2}]"#);
        assert_eq!(find(record, &["a"]).map(|s| &record[s]), Some(&b"1"[..]));
        assert_eq!(find(record, &["bA", "e"]), None, "null is absent");
        assert_eq!(
            find(record, &["bA", "c", "d"]),
            None,
            "arrays are not looked into"
        );
        assert_eq!(find(record, &["missing"]), None);
    }

    #[test]
    fn members_refuse_what_is_not_one_valid_object() {
        for bad in [
            &b"[1]"[..],
            b"{\"a\":}",
            b"{\"a\":1} {}",
            b"not json",
            b"{\"a\":tru}",
            b"",
        ] {
            assert_eq!(members(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn edits_only_where_the_shape_differs() {
        let record = br#"{"o":{"x":1},"s":"t","n":null,"v":3}"#;
        let span = |name| find(record, &[name]).unwrap_or(0..0);
        assert_eq!(Edit::of(record, span("o"), FreeForm::Objects), None);
        assert!(Edit::of(record, span("s"), FreeForm::Objects).is_some());
        assert_eq!(Edit::of(record, span("s"), FreeForm::Strings), None);
        assert!(Edit::of(record, span("v"), FreeForm::Strings).is_some());
        let n = members(record).unwrap()[2].1.clone();
        assert_eq!(Edit::of(record, n, FreeForm::Objects), None);
        for name in ["o", "s", "v"] {
            assert_eq!(Edit::of(record, span(name), FreeForm::AsWritten), None);
        }
    }
}
