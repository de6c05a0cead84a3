//! Object: a record's JSON object as an ECS mapping reads it, member by member, keeping
//! count of what it took.
//!
//! Input: the bytes of one JSON object. Its members are found without building a tree (the
//! top level of a record from the outline its format noted, [`Object::outlined`]; an object
//! inside it in one pass over its bytes, [`Object::scan`]; a whole object checked by
//! `serde_json`, [`Object::parse`]); keys are decoded, values stay raw bytes until asked for.
//! (A record's top level, whose members a mapping names by their places in a [`Known`] list,
//! is read with [`super::Top`] instead.)
//! (A mapping that reads every member of an object reads it with [`super::Cursor`] instead.)
//! Output: what the mapping asks for, and at the end what it did not take
//! ([`Object::rest`]): one JSON object of the members left, nested objects reduced to what was
//! left of them, so that no part of a record is lost.
//!
//! Pure: no I/O. A member whose value is `null` counts as absent and as taken (there is
//! nothing to keep). Of a repeated key, the first is read and the others are left.

use std::borrow::Cow;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::cursor::{text, Cursor};
use super::known::tag;
use crate::format::document::write_str;
use crate::format::escape::has_backslash;

#[derive(Debug)]
struct Entry<'a> {
    key: Cow<'a, str>,
    /// The key's [`tag`], compared before its bytes.
    tag: u32,
    value: &'a str,
    left: Left,
}

/// What is left of a member.
#[derive(Debug)]
enum Left {
    All,
    Nothing,
    /// What was left of a nested object (a JSON object).
    Part(Vec<u8>),
}

/// The members of one JSON object.
#[derive(Debug)]
pub struct Object<'a> {
    entries: Vec<Entry<'a>>,
}

impl<'a> Object<'a> {
    /// The members, keys and raw values, in order.
    pub fn into_members(mut self) -> impl Iterator<Item = (Cow<'a, str>, &'a str)> {
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|entry| (entry.key, entry.value))
    }

    /// The object `text`, checked whole by `serde_json`; `None` when it is not one object.
    pub fn parse(text: &'a str) -> Option<Object<'a>> {
        struct Collect;
        impl<'de> Visitor<'de> for Collect {
            type Value = Vec<Entry<'de>>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    entries.push(Entry::new(key, value.get()));
                }
                Ok(entries)
            }
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let entries = deserializer.deserialize_map(Collect).ok()?;
        deserializer.end().ok()?;
        Some(Object { entries })
    }

    /// The object `text` (from `{` to `}`) whose top-level `:` and `,` are at `separators`:
    /// its members are read from them without a scan; their values are not checked. `None`
    /// when its top level is not `{"key": value, ...}`.
    pub fn outlined(text: &'a str, separators: &[u32]) -> Option<Object<'a>> {
        let mut entries = kept_entries(separators.len() / 2 + 1);
        outlined_members(text, separators, |inner, key, value| {
            let key = if has_backslash(inner.as_bytes()) {
                Cow::Owned(serde_json::from_str(key).ok()?)
            } else {
                Cow::Borrowed(inner)
            };
            entries.push(Entry::new(key, value));
            Some(())
        })?;
        Some(Object { entries })
    }

    /// The object `text` (from `{` to `}`), its members found in one pass over its bytes;
    /// like [`Object::outlined`], values are not checked. `None` when its top level is not
    /// `{"key": value, ...}`.
    pub fn scan(text: &'a str) -> Option<Object<'a>> {
        let mut cursor = Cursor::new(text)?;
        let mut entries = kept_entries(8);
        while let Some(key) = cursor.key().ok()? {
            entries.push(Entry::new(key, cursor.raw()?));
        }
        let (end, _) = cursor.finish()?;
        text[end..]
            .trim_ascii_start()
            .is_empty()
            .then_some(Object { entries })
    }

    /// The entry of `key`: the first one, its tag compared before its bytes.
    #[inline]
    fn position(&self, key: &str) -> Option<usize> {
        let k = key.as_bytes();
        let t = tag(k);
        self.entries
            .iter()
            .position(|e| e.tag == t && e.key.as_bytes() == k)
    }

    /// The raw value of `key` (not `null`), marked as taken.
    pub fn take(&mut self, key: &str) -> Option<&'a str> {
        let at = self.position(key)?;
        self.taken(at)
    }

    /// The raw value of the entry at `at` (not `null`), marked as taken.
    fn taken(&mut self, at: usize) -> Option<&'a str> {
        let entry = &mut self.entries[at];
        if matches!(entry.left, Left::All) {
            entry.left = Left::Nothing;
        }
        (entry.value != "null").then_some(entry.value)
    }

    /// The raw value of `key` (not `null`), left where it is.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let entry = &self.entries[self.position(key)?];
        (entry.value != "null").then_some(entry.value)
    }

    /// The value of `key` as text (a string's text, a number's or a boolean's as written),
    /// marked as taken; an empty string counts as absent (and taken); an object or an array
    /// is not text, and is left.
    pub fn text(&mut self, key: &str) -> Option<Cow<'a, str>> {
        let at = self.position(key)?;
        let text = text(self.entries[at].value)?;
        self.taken(at);
        (!text.is_empty()).then_some(text)
    }

    /// The object at `key`, marked as taken: give back what is left of it with
    /// [`Object::leave`]. `None` (and left) when it is no JSON object.
    pub fn object(&mut self, key: &str) -> Option<Object<'a>> {
        let at = self.position(key)?;
        let object = Object::scan(self.entries[at].value)?;
        self.taken(at);
        Some(object)
    }

    /// Records what is left of the nested object at `key` (its [`Object::rest`]).
    pub fn leave(&mut self, key: &str, rest: Option<Vec<u8>>) {
        if let Some(at) = self.position(key) {
            self.entries[at].left = rest.map_or(Left::Nothing, Left::Part);
        }
    }

    /// Every member not taken, as one JSON object; `None` when nothing is left.
    pub fn rest(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for (n, entry) in self.entries.iter().enumerate() {
            let Some(value) = entry.kept() else {
                continue;
            };
            // A key is written once: the cluster refuses an object that repeats one.
            let before = &self.entries[..n];
            if before
                .iter()
                .any(|e| e.tag == entry.tag && e.key == entry.key && e.kept().is_some())
            {
                continue;
            }
            if out.is_empty() {
                out.reserve(value.len() + entry.key.len() + 8);
                out.push(b'{');
            } else {
                out.push(b',');
            }
            write_str(&mut out, &entry.key);
            out.push(b':');
            out.extend_from_slice(value);
        }
        if out.is_empty() {
            return None;
        }
        out.push(b'}');
        Some(out)
    }

    /// The keys of the members, in order.
    #[cfg(test)]
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_ref())
    }
}

/// Hands each member of the object `text` (from `{` to `}`) whose top-level `:` and `,` are
/// at `separators` to `each`: its key's text as written (no quotes), the key with its quotes,
/// and its raw value; values are not checked. `None` when the top level is not
/// `{"key": value, ...}`, or when `each` gives `None`.
#[inline]
pub(super) fn outlined_members<'a>(
    text: &'a str,
    separators: &[u32],
    mut each: impl FnMut(&'a str, &'a str, &'a str) -> Option<()>,
) -> Option<()> {
    let bytes = text.as_bytes();
    let close = bytes.len().checked_sub(1)?;
    if bytes[0] != b'{' || bytes[close] != b'}' {
        return None;
    }
    let mut start = 1;
    for pair in separators.chunks(2) {
        let colon = pair[0] as usize;
        let end = pair.get(1).map_or(close, |&comma| comma as usize);
        // In order, and at a `:` then a `,` (or the `}`).
        if !(start < colon && colon < end && end <= close)
            || bytes[colon] != b':'
            || (end != close && bytes[end] != b',')
        {
            return None;
        }
        let (key, value) = (span(bytes, start, colon), span(bytes, colon + 1, end));
        if key.len() < 2
            || bytes[key.start] != b'"'
            || bytes[key.end - 1] != b'"'
            || value.is_empty()
        {
            return None;
        }
        // SAFETY: each bound is at or after one of the ASCII bytes checked above (`{`, a
        // quote, `:`, `,`, `}`) or JSON whitespace, so on a character boundary.
        let (inner, quoted, value) = unsafe {
            (
                text.get_unchecked(key.start + 1..key.end - 1),
                text.get_unchecked(key),
                text.get_unchecked(value),
            )
        };
        each(inner, quoted, value)?;
        start = end + 1;
    }
    // After the last member its `}`: no `,` with nothing after it, no member without `:`.
    match separators.len() {
        0 => span(bytes, 1, close).is_empty().then_some(()),
        n => (n % 2 == 1).then_some(()),
    }
}

thread_local! {
    /// Each thread's list of entries, kept empty between objects.
    static ENTRIES: std::cell::Cell<Vec<Entry<'static>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A list of entries too many to keep for the next object.
const KEPT_ENTRIES: usize = 256;

/// An empty list of entries with room for `room`: the thread's kept one, where it has one.
fn kept_entries<'a>(room: usize) -> Vec<Entry<'a>> {
    let kept = ENTRIES.try_with(|kept| kept.take()).unwrap_or_default();
    // Empty, so no entry changes its lifetime: the list keeps its room.
    let mut entries: Vec<Entry<'a>> = kept.into_iter().map(|_| unreachable!()).collect();
    entries.reserve(room);
    entries
}

impl Drop for Object<'_> {
    fn drop(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        if entries.capacity() > KEPT_ENTRIES {
            return;
        }
        entries.clear();
        let entries: Vec<Entry<'static>> = entries.into_iter().map(|_| unreachable!()).collect();
        let _ = ENTRIES.try_with(|kept| kept.set(entries));
    }
}

impl<'a> Entry<'a> {
    fn new(key: Cow<'a, str>, value: &'a str) -> Self {
        Entry {
            tag: tag(key.as_bytes()),
            key,
            value,
            left: Left::All,
        }
    }

    /// What is left of its value, when anything is.
    fn kept(&self) -> Option<&[u8]> {
        match &self.left {
            Left::Nothing => None,
            Left::All if self.value == "null" => None,
            Left::All => Some(self.value.as_bytes()),
            Left::Part(rest) => Some(rest),
        }
    }
}

/// `from..to` of `bytes` without leading and trailing JSON whitespace (most records have
/// none: one look at each end).
#[inline]
fn span(bytes: &[u8], mut from: usize, mut to: usize) -> std::ops::Range<usize> {
    if from < to && !bytes[from].is_ascii_whitespace() && !bytes[to - 1].is_ascii_whitespace() {
        return from..to;
    }
    while from < to && bytes[from].is_ascii_whitespace() {
        from += 1;
    }
    while to > from && bytes[to - 1].is_ascii_whitespace() {
        to -= 1;
    }
    from..to
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` members `"k0":0,...`, without braces.
    fn members(n: usize) -> String {
        (0..n)
            .map(|n| format!("\"k{n}\":{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn rest(object: &Object<'_>) -> Option<serde_json::Value> {
        object
            .rest()
            .map(|r| serde_json::from_slice(&r).expect("valid JSON"))
    }

    #[test]
    fn what_is_not_taken_is_the_rest() {
        let bytes = r#"{"a":"x","b\u0041":{"c":1,"d":[2],"e":null},"n":null,"k":5,"a":"again"}"#;
        let mut object = Object::parse(bytes).unwrap();
        assert_eq!(object.text("a").as_deref(), Some("x"));
        assert_eq!(object.text("k").as_deref(), Some("5"));
        assert_eq!(
            object.text("bA"),
            None,
            "an object is not text, and is left"
        );
        let mut inner = object.object("bA").unwrap();
        assert_eq!(inner.take("c"), Some("1"));
        assert_eq!(inner.take("e"), None, "null is absent");
        object.leave("bA", inner.rest());
        assert_eq!(
            rest(&object),
            Some(serde_json::json!({"bA": {"d": [2]}, "a": "again"}))
        );
        let mut all = Object::parse(r#"{"x":{"y":1}}"#).unwrap();
        let mut x = all.object("x").unwrap();
        x.take("y");
        all.leave("x", x.rest());
        assert_eq!(all.rest(), None, "an emptied object leaves nothing");
        assert!(Object::parse("[1]").is_none() && Object::parse("{\"a\":}").is_none());
    }

    #[test]
    fn an_outlined_object_reads_the_same() {
        let text = r#"{"@timestamp":"t", "a\"b" : {"c":1} ,"n":null}"#;
        let record = crate::format::cloudtrail::split::OwnedRecord::parse(text.as_bytes()).unwrap();
        let separators = record.as_record().separators().to_vec();
        let object = Object::outlined(text, &separators).unwrap();
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            ["@timestamp", "a\"b", "n"]
        );
        assert_eq!(object.get("a\"b"), Some(r#"{"c":1}"#));
        assert_eq!(object.get("n"), None);
    }

    #[test]
    fn a_scanned_object_reads_as_a_parsed_one() {
        let wide = format!("{{{}}}", members(40));
        for bytes in [
            r#"{"a":"x,y:z","b\"c":{"d":[1,{"e":"}"}]},"f":null, "g" : 2 }"#,
            r#"{}"#,
            r#"{"k":"\\"}"#,
            &wide,
        ] {
            let scanned = Object::scan(bytes).expect("scanned");
            let parsed = Object::parse(bytes).expect("parsed");
            assert_eq!(
                scanned.keys().collect::<Vec<_>>(),
                parsed.keys().collect::<Vec<_>>()
            );
            for key in parsed.keys() {
                assert_eq!(scanned.get(key), parsed.get(key), "{key}");
            }
        }
        for bad in ["[1]", "{\"a\" 1}", "{\"a\":1", "", "{\"a\":1}}"] {
            assert!(Object::scan(bad).is_none(), "{bad}");
        }
    }

    /// `a` and `b` have the same keys, the same raw values, and read the same two levels
    /// down.
    fn same(mut a: Object<'_>, mut b: Object<'_>, depth: u8) {
        let keys: Vec<String> = b.keys().map(str::to_string).collect();
        assert_eq!(a.keys().collect::<Vec<_>>(), keys);
        for key in keys.iter().map(String::as_str) {
            assert_eq!(a.get(key), b.get(key), "{key}");
            if depth > 0 {
                match (a.object(key), b.object(key)) {
                    (Some(x), Some(y)) => same(x, y, depth - 1),
                    (x, y) => assert_eq!(x.is_some(), y.is_some(), "{key}"),
                }
            }
        }
    }

    #[test]
    fn random_objects_scanned_read_as_parsed_ones() {
        use crate::format::scan::samples::{json_value, Random};
        let mut random = Random(0x0b_1ec7);
        let mut compared = 0;
        for _ in 0..400 {
            let value = json_value(&mut random, 0);
            if !value.is_object() {
                continue;
            }
            let text = value.to_string();
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            for text in [&text, &pretty] {
                let parsed = Object::parse(text).expect("parsed");
                let read = Object::scan(text).expect("read");
                same(read, parsed, 2);
                compared += 1;
            }
        }
        assert!(compared > 50, "{compared}");
    }
}
