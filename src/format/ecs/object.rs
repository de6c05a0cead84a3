//! Object: a record's JSON object as an ECS mapping reads it, member by member, keeping
//! count of what it took.
//!
//! Input: the bytes of one JSON object. Its members are found without building a tree (the
//! top level of a record from the outline its format noted, [`Object::outlined`]; an object
//! inside it by `serde_json`, which checks it, [`Object::parse`]); keys are decoded, values
//! stay raw bytes until asked for. Output: what the mapping asks for, and at the end what it
//! did not take ([`Object::rest`]): one JSON object of the members left, nested objects
//! reduced to what was left of them, so that no part of a record is lost.
//!
//! Pure: no I/O. A member whose value is `null` counts as absent and as taken (there is
//! nothing to keep). Of a repeated key, the first is read and the others are left.

use std::borrow::Cow;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::format::document::write_str;
use crate::format::scan::{Members, Tokens};

#[derive(Debug)]
struct Entry<'a> {
    key: Cow<'a, str>,
    value: &'a [u8],
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
    /// The object `bytes`, checked whole by `serde_json`; `None` when it is not one object.
    pub fn parse(bytes: &'a [u8]) -> Option<Object<'a>> {
        struct Collect;
        impl<'de> Visitor<'de> for Collect {
            type Value = Vec<Entry<'de>>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    entries.push(Entry::new(key, value.get().as_bytes()));
                }
                Ok(entries)
            }
        }
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let entries = deserializer.deserialize_map(Collect).ok()?;
        deserializer.end().ok()?;
        Some(Object { entries })
    }

    /// The object `bytes` (from `{` to `}`) whose top-level `:` and `,` are at `separators`:
    /// its members are read from them without a scan; their values are not checked.
    pub fn outlined(bytes: &'a [u8], separators: &[u32]) -> Option<Object<'a>> {
        let mut entries = Vec::with_capacity(separators.len() / 2 + 1);
        for member in Members::new(bytes, separators) {
            let member = member.ok()?;
            let raw = &bytes[member.key.clone()];
            let inner = &raw[1..raw.len() - 1];
            let key = if inner.contains(&b'\\') {
                Cow::Owned(serde_json::from_slice::<String>(raw).ok()?)
            } else {
                Cow::Borrowed(std::str::from_utf8(inner).ok()?)
            };
            entries.push(Entry::new(key, &bytes[member.value]));
        }
        Some(Object { entries })
    }

    /// The object `bytes` (from `{` to `}`), its members found with the structural scanner
    /// ([`Tokens`]); like [`Object::outlined`], values are not checked. `None` when its top
    /// level is not `{"key": value, ...}`.
    pub fn scan(bytes: &'a [u8]) -> Option<Object<'a>> {
        if bytes.first() != Some(&b'{') || bytes.last() != Some(&b'}') {
            return None;
        }
        let mut tokens = Tokens::new(bytes);
        let mut separators = Vec::with_capacity(16);
        tokens.next_token()?;
        loop {
            match tokens.next_token()? {
                (_, b'"') => {
                    tokens.next_token()?;
                }
                (_, b'{' | b'[') => {
                    tokens.close(1)?;
                }
                (at, b':' | b',') => separators.push(u32::try_from(at).ok()?),
                (at, b'}') if at == bytes.len() - 1 => break,
                _ => return None,
            }
        }
        Object::outlined(bytes, &separators)
    }

    /// The entry of `key`: the first one, its length and ends compared before its bytes.
    fn position(&self, key: &str) -> Option<usize> {
        let k = key.as_bytes();
        self.entries.iter().position(|e| {
            let e = e.key.as_bytes();
            e.len() == k.len() && e.first() == k.first() && e.last() == k.last() && e == k
        })
    }

    /// The raw value of `key` (not `null`), marked as taken.
    pub fn take(&mut self, key: &str) -> Option<&'a [u8]> {
        let at = self.position(key)?;
        let entry = &mut self.entries[at];
        if matches!(entry.left, Left::All) {
            entry.left = Left::Nothing;
        }
        (entry.value != b"null").then_some(entry.value)
    }

    /// The raw value of `key` (not `null`), left where it is.
    pub fn get(&self, key: &str) -> Option<&'a [u8]> {
        let entry = &self.entries[self.position(key)?];
        (entry.value != b"null").then_some(entry.value)
    }

    /// The value of `key` as text (a string's text, a number's or a boolean's as written),
    /// marked as taken; an empty string counts as absent (and taken); an object or an array
    /// is not text, and is left.
    pub fn text(&mut self, key: &str) -> Option<Cow<'a, str>> {
        let text = self.get(key).and_then(text)?;
        self.take(key);
        (!text.is_empty()).then_some(text)
    }

    /// The object at `key`, marked as taken: give back what is left of it with
    /// [`Object::leave`]. `None` (and left) when it is no JSON object.
    pub fn object(&mut self, key: &str) -> Option<Object<'a>> {
        let object = Object::scan(self.get(key)?)?;
        self.take(key);
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
        let mut seen: Vec<&str> = Vec::new();
        for entry in &self.entries {
            let value = match &entry.left {
                Left::Nothing => continue,
                Left::All if entry.value == b"null" => continue,
                Left::All => entry.value,
                Left::Part(rest) => rest.as_slice(),
            };
            // A key is written once: the cluster refuses an object that repeats one.
            if seen.contains(&entry.key.as_ref()) {
                continue;
            }
            out.push(if out.is_empty() { b'{' } else { b',' });
            write_str(&mut out, &entry.key);
            out.push(b':');
            out.extend_from_slice(value);
            seen.push(&entry.key);
        }
        if out.is_empty() {
            return None;
        }
        out.push(b'}');
        Some(out)
    }

    /// The keys of the members, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_ref())
    }
}

impl<'a> Entry<'a> {
    fn new(key: Cow<'a, str>, value: &'a [u8]) -> Self {
        Entry {
            key,
            value,
            left: Left::All,
        }
    }
}

/// A raw JSON value as text: a string's text (borrowed when it has no escape), a number's or
/// a boolean's as written; `None` for `null`, objects and arrays.
pub fn text(raw: &[u8]) -> Option<Cow<'_, str>> {
    match raw.first()? {
        b'"' => match raw {
            [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
                std::str::from_utf8(inner).ok().map(Cow::Borrowed)
            }
            _ => serde_json::from_slice::<String>(raw).ok().map(Cow::Owned),
        },
        b'{' | b'[' | b'n' => None,
        _ => std::str::from_utf8(raw).ok().map(Cow::Borrowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(object: &Object<'_>) -> Option<serde_json::Value> {
        object
            .rest()
            .map(|r| serde_json::from_slice(&r).expect("valid JSON"))
    }

    #[test]
    fn what_is_not_taken_is_the_rest() {
        let bytes = br#"{"a":"x","b\u0041":{"c":1,"d":[2],"e":null},"n":null,"k":5,"a":"again"}"#;
        let mut object = Object::parse(bytes).unwrap();
        assert_eq!(object.text("a").as_deref(), Some("x"));
        assert_eq!(object.text("k").as_deref(), Some("5"));
        assert_eq!(
            object.text("bA"),
            None,
            "an object is not text, and is left"
        );
        let mut inner = object.object("bA").unwrap();
        assert_eq!(inner.take("c"), Some(&b"1"[..]));
        assert_eq!(inner.take("e"), None, "null is absent");
        object.leave("bA", inner.rest());
        assert_eq!(
            rest(&object),
            Some(serde_json::json!({"bA": {"d": [2]}, "a": "again"}))
        );
        let mut all = Object::parse(br#"{"x":{"y":1}}"#).unwrap();
        let mut x = all.object("x").unwrap();
        x.take("y");
        all.leave("x", x.rest());
        assert_eq!(all.rest(), None, "an emptied object leaves nothing");
        assert!(Object::parse(b"[1]").is_none() && Object::parse(b"{\"a\":}").is_none());
    }

    #[test]
    fn an_outlined_object_reads_the_same() {
        let bytes = br#"{"@timestamp":"t", "a\"b" : {"c":1} ,"n":null}"#;
        let record = crate::format::cloudtrail::split::OwnedRecord::parse(bytes).unwrap();
        let separators = record.as_record().separators().to_vec();
        let object = Object::outlined(bytes, &separators).unwrap();
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            ["@timestamp", "a\"b", "n"]
        );
        assert_eq!(object.get("a\"b"), Some(&br#"{"c":1}"#[..]));
        assert_eq!(object.get("n"), None);
    }

    #[test]
    fn a_scanned_object_reads_as_a_parsed_one() {
        for bytes in [
            &br#"{"a":"x,y:z","b\"c":{"d":[1,{"e":"}"}]},"f":null, "g" : 2 }"#[..],
            br#"{}"#,
            br#"{"k":"\\"}"#,
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
        for bad in [&b"[1]"[..], b"{\"a\" 1}", b"{\"a\":1", b"", b"{\"a\":1}}"] {
            assert!(
                Object::scan(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn text_of_raw_values() {
        assert_eq!(text(br#""plain""#).as_deref(), Some("plain"));
        assert_eq!(text(br#""a\nb""#).as_deref(), Some("a\nb"));
        assert_eq!(text(b"true").as_deref(), Some("true"));
        assert_eq!(text(b"1.5").as_deref(), Some("1.5"));
        for none in [&b"null"[..], b"{}", b"[1]", b""] {
            assert_eq!(text(none), None);
        }
    }
}
