//! Object: a record's JSON object as an ECS mapping reads it, member by member, keeping
//! count of what it took.
//!
//! Input: the bytes of one JSON object. Its members are found without building a tree (the
//! top level of a record from the outline its format noted, [`Object::outlined`]; an object
//! inside it in one pass over its bytes, [`Object::scan`]; a whole object checked by
//! `serde_json`, [`Object::parse`]); keys are decoded, values stay raw bytes until asked for.
//! An object indexed by a [`Known`] list ([`Object::outlined_by`], [`Object::index`]) finds
//! a [`Member`] of that list by its place, with no search.
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
use super::known::{tag, Known, Member, MOST};
use super::Value;
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
    /// With [`Object::index`]: per key of the list, its first entry (`NONE`: none).
    index: Option<[u8; MOST]>,
}

/// No entry, in [`Object::index`]'s table.
const NONE: u8 = u8::MAX;

/// A key to look up in an [`Object`]: its text, or a [`Member`] of the list the object was
/// indexed with (an index, no search).
pub trait Key: Copy {
    /// The entry of the key in `object`: the first one.
    fn find(self, object: &Object<'_>) -> Option<usize>;
}

impl Key for &str {
    #[inline]
    fn find(self, object: &Object<'_>) -> Option<usize> {
        object.position(self)
    }
}

impl Key for Member {
    #[inline]
    fn find(self, object: &Object<'_>) -> Option<usize> {
        match &object.index {
            Some(index) => {
                let at = index[usize::from(self.id)];
                debug_assert!(at == NONE || object.entries[usize::from(at)].key == self.name);
                (at != NONE).then_some(usize::from(at))
            }
            None => object.position(self.name),
        }
    }
}

impl<'a> Object<'a> {
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
        Some(Object {
            entries,
            index: None,
        })
    }

    /// The object `text` (from `{` to `}`) whose top-level `:` and `,` are at `separators`:
    /// its members are read from them without a scan; their values are not checked. `None`
    /// when its top level is not `{"key": value, ...}`.
    pub fn outlined(text: &'a str, separators: &[u32]) -> Option<Object<'a>> {
        Self::outline::<()>(text, separators, None)
    }

    /// [`Object::outlined`] with the place of each of `known`'s keys noted as the members
    /// are read, as [`Object::index`] notes them.
    pub fn outlined_by<T>(
        text: &'a str,
        separators: &[u32],
        known: &Known<T>,
    ) -> Option<Object<'a>> {
        Self::outline(text, separators, Some(known))
    }

    fn outline<T>(
        text: &'a str,
        separators: &[u32],
        known: Option<&Known<T>>,
    ) -> Option<Object<'a>> {
        let mut index = [NONE; MOST];
        let bytes = text.as_bytes();
        let close = bytes.len().checked_sub(1)?;
        if bytes[0] != b'{' || bytes[close] != b'}' {
            return None;
        }
        let mut entries = kept_entries(separators.len() / 2 + 1);
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
            // SAFETY: each bound is at or after one of the ASCII bytes checked above (`{`,
            // a quote, `:`, `,`, `}`) or JSON whitespace, so on a character boundary.
            let (inner, value) = unsafe {
                (
                    text.get_unchecked(key.start + 1..key.end - 1),
                    text.get_unchecked(value),
                )
            };
            // A known key has no escape: looked up first, it needs no look for one.
            let mut key_tag = tag(inner.as_bytes());
            let mut place = known.and_then(|known| known.find(inner.as_bytes(), key_tag));
            let key = if place.is_none() && has_backslash(inner.as_bytes()) {
                let key: String = serde_json::from_str(text.get(key)?).ok()?;
                key_tag = tag(key.as_bytes());
                place = known.and_then(|known| known.find(key.as_bytes(), key_tag));
                Cow::Owned(key)
            } else {
                Cow::Borrowed(inner)
            };
            note(&mut index, place, entries.len());
            entries.push(Entry {
                key,
                tag: key_tag,
                value,
                left: Left::All,
            });
            start = end + 1;
        }
        // After the last member its `}`: no `,` with nothing after it, no member without `:`.
        let ended = match separators.len() {
            0 => span(bytes, 1, close).is_empty(),
            n => n % 2 == 1,
        };
        let indexed = known.is_some() && entries.len() < usize::from(NONE);
        ended.then_some(Object {
            entries,
            index: indexed.then_some(index),
        })
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
        text[end..].trim_ascii_start().is_empty().then_some(Object {
            entries,
            index: None,
        })
    }

    /// The object with the place of each of `known`'s keys noted, so that looking up a
    /// [`Member`] of it is an index (a search still, past 254 members).
    pub fn index<T>(mut self, known: &Known<T>) -> Self {
        if self.entries.len() >= usize::from(NONE) {
            return self;
        }
        let mut index = [NONE; MOST];
        for (n, entry) in self.entries.iter().enumerate() {
            note(&mut index, known.find(entry.key.as_bytes(), entry.tag), n);
        }
        self.index = Some(index);
        self
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
    pub fn take(&mut self, key: impl Key) -> Option<&'a str> {
        let at = key.find(self)?;
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
    pub fn get(&self, key: impl Key) -> Option<&'a str> {
        let entry = &self.entries[key.find(self)?];
        (entry.value != "null").then_some(entry.value)
    }

    /// The value of `key` as text (a string's text, a number's or a boolean's as written),
    /// marked as taken; an empty string counts as absent (and taken); an object or an array
    /// is not text, and is left.
    pub fn text(&mut self, key: impl Key) -> Option<Cow<'a, str>> {
        let at = key.find(self)?;
        let text = text(self.entries[at].value)?;
        self.taken(at);
        (!text.is_empty()).then_some(text)
    }

    /// The value of `key` when it is a string with text and no escape, as written (quotes
    /// included), marked as taken; `None`, and nothing taken, for any other value (read it
    /// with [`Object::value`]).
    #[inline]
    pub fn plain(&mut self, key: impl Key) -> Option<&'a str> {
        let at = key.find(self)?;
        let value = self.entries[at].value;
        let inner = value.strip_prefix('"')?.strip_suffix('"')?;
        if inner.is_empty() || has_backslash(inner.as_bytes()) {
            return None;
        }
        self.taken(at);
        Some(value)
    }

    /// [`Object::text`] as a document value: copied as it is when it needs no escape (a
    /// string without one, a number, a boolean).
    pub fn value(&mut self, key: impl Key) -> Option<Value<'a>> {
        self.text(key).map(Value::read)
    }

    /// The object at `key`, marked as taken: give back what is left of it with
    /// [`Object::leave`]. `None` (and left) when it is no JSON object.
    pub fn object(&mut self, key: impl Key) -> Option<Object<'a>> {
        let at = key.find(self)?;
        let object = Object::scan(self.entries[at].value)?;
        self.taken(at);
        Some(object)
    }

    /// Records what is left of the nested object at `key` (its [`Object::rest`]).
    pub fn leave(&mut self, key: impl Key, rest: Option<Vec<u8>>) {
        if let Some(at) = key.find(self) {
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

/// Notes in `index` that the known key at `place` (if any) is at entry `entry`, unless it was
/// met before; entries past 254 are not noted (such an object is not indexed).
#[inline]
fn note(index: &mut [u8; MOST], place: Option<usize>, entry: usize) {
    if let Some(place) = place {
        if index[place] == NONE && entry < usize::from(NONE) {
            index[place] = entry as u8;
        }
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
    fn an_outlined_object_indexed_as_it_is_read_finds_what_an_index_finds() {
        use crate::format::cloudtrail::split::OwnedRecord;
        use crate::format::ecs::known::plain;
        static KNOWN: Known = Known::new(&plain(["eventName", "a\"b", "n", "absent"]));
        let text = r#"{"even\u0074Name":"E", "a\"b":1,"eventName":"again","n":null,"x":2}"#;
        let record = OwnedRecord::parse(text.as_bytes()).unwrap();
        let separators = record.as_record().separators().to_vec();
        let read = Object::outlined_by(text, &separators, &KNOWN).unwrap();
        let indexed = Object::parse(text).unwrap().index(&KNOWN);
        for key in ["eventName", "a\"b", "n", "absent"] {
            let member = KNOWN.member(key);
            assert_eq!(read.get(member), indexed.get(member), "{key}");
        }
        assert_eq!(read.get(KNOWN.member("eventName")), Some("\"E\""));
        assert_eq!(read.rest(), indexed.rest());
    }

    #[test]
    fn members_of_an_indexed_object_read_as_their_keys() {
        use crate::format::ecs::known::plain;
        static KNOWN: Known = Known::new(&plain(["a", "bA", "absent", "n"]));
        let text = r#"{"a":"x","b\u0041":{"c":1},"n":null,"k":5,"a":"again"}"#;
        let mut indexed = Object::parse(text).unwrap().index(&KNOWN);
        let mut plain_object = Object::parse(text).unwrap();
        for key in ["a", "bA", "absent", "n"] {
            let member = KNOWN.member(key);
            assert_eq!(indexed.get(member), plain_object.get(key), "{key}");
        }
        assert_eq!(indexed.text(KNOWN.member("a")).as_deref(), Some("x"));
        plain_object.text("a");
        assert_eq!(indexed.rest(), plain_object.rest(), "the first is taken");
        // Past 254 members, no index: a search still finds them.
        let wide = format!("{{{},\"a\":1}}", members(300));
        let wide = Object::parse(&wide).unwrap().index(&KNOWN);
        assert_eq!(wide.get(KNOWN.member("a")), Some("1"));
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
