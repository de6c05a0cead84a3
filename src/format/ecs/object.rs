//! Object: a record's JSON object as an ECS mapping reads it, member by member, keeping
//! count of what it took.
//!
//! Input: the bytes of one JSON object. Its members are found without building a tree (the
//! top level of a record from the outline its format noted, [`Object::outlined`]; an object
//! inside it by the structural scanner, [`Object::scan`], with the objects nested in that read
//! in the same pass when asked, [`Object::nested`]; a whole object checked by `serde_json`,
//! [`Object::parse`]); keys are decoded, values stay raw bytes until asked for. Output: what the mapping asks for, and at the end what it
//! did not take ([`Object::rest`]): one JSON object of the members left, nested objects
//! reduced to what was left of them, so that no part of a record is lost.
//!
//! Pure: no I/O. A member whose value is `null` counts as absent and as taken (there is
//! nothing to keep). Of a repeated key, the first is read and the others are left.

use std::borrow::Cow;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::Value;
use crate::format::document::write_str;
use crate::format::escape::has_backslash;
use crate::format::scan::{Members, Tokens};

#[derive(Debug)]
struct Entry<'a> {
    key: Cow<'a, str>,
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
    /// The objects nested in its members that were read with it ([`Object::nested`]), by
    /// the place of their member.
    inner: Vec<(usize, Object<'a>)>,
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
            inner: Vec::new(),
        })
    }

    /// The object `text` (from `{` to `}`) whose top-level `:` and `,` are at `separators`:
    /// its members are read from them without a scan; their values are not checked.
    pub fn outlined(text: &'a str, separators: &[u32]) -> Option<Object<'a>> {
        let mut entries = Vec::with_capacity(separators.len() / 2 + 1);
        for member in Members::new(text.as_bytes(), separators) {
            let member = member.ok()?;
            let raw = text.get(member.key.clone())?;
            let inner = &raw[1..raw.len() - 1];
            let key = if has_backslash(inner.as_bytes()) {
                Cow::Owned(serde_json::from_str::<String>(raw).ok()?)
            } else {
                Cow::Borrowed(inner)
            };
            entries.push(Entry::new(key, text.get(member.value)?));
        }
        Some(Object {
            entries,
            inner: Vec::new(),
        })
    }

    /// The object `text` (from `{` to `}`), its members found with the structural scanner
    /// ([`Tokens`]); like [`Object::outlined`], values are not checked. `None` when its top
    /// level is not `{"key": value, ...}`.
    pub fn scan(text: &'a str) -> Option<Object<'a>> {
        Object::nested(text, 0)
    }

    /// [`Object::scan`], with the objects nested in its members down to `depth` levels read
    /// in the same pass: [`Object::object`] then finds them read, and no byte is scanned
    /// twice.
    pub fn nested(text: &'a str, depth: u8) -> Option<Object<'a>> {
        let bytes = text.as_bytes();
        if bytes.first() != Some(&b'{') || bytes.last() != Some(&b'}') {
            return None;
        }
        let mut tokens = Tokens::new(bytes);
        tokens.next_token()?;
        let (object, end) = Object::read(text, &mut tokens, 0, depth)?;
        (end == bytes.len() - 1).then_some(object)
    }

    /// The object of `text` whose `{` is at `start`, the tokens after it next in `tokens`;
    /// returns it and where its `}` is.
    fn read(
        text: &'a str,
        tokens: &mut Tokens<'_>,
        start: usize,
        depth: u8,
    ) -> Option<(Object<'a>, usize)> {
        // The separators of an object of up to 32 members stay on the stack.
        let mut few = [0u32; 64];
        let mut count = 0;
        let mut many = Vec::new();
        let mut inner = Vec::new();
        let end = loop {
            match tokens.next_token()? {
                (_, b'"') => {
                    tokens.next_token()?;
                }
                (at, b'{') if depth > 0 => {
                    let (object, end) = Object::read(text, tokens, at, depth - 1)?;
                    inner.push((end, object));
                }
                (_, b'{' | b'[') => {
                    tokens.close(1)?;
                }
                (at, b':' | b',') => {
                    let at = u32::try_from(at - start).ok()?;
                    if count < few.len() {
                        few[count] = at;
                    } else {
                        if many.is_empty() {
                            many.extend_from_slice(&few);
                        }
                        many.push(at);
                    }
                    count += 1;
                }
                (at, b'}') => break at,
                _ => return None,
            }
        };
        let separators = if many.is_empty() {
            &few[..count]
        } else {
            &many[..]
        };
        let mut object = Object::outlined(text.get(start..=end)?, separators)?;
        for (end, found) in inner {
            // The member whose value ends where the nested object does.
            let owner = object.entries.iter().position(|e| {
                e.value.as_bytes().as_ptr_range().end == text[end + 1..].as_ptr()
                    && e.value.starts_with('{')
            });
            if let Some(at) = owner {
                object.inner.push((at, found));
            }
        }
        Some((object, end))
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

    /// [`Object::text`] as a document value: copied as it is when it needs no escape (a
    /// string without one, a number, a boolean).
    pub fn value(&mut self, key: &str) -> Option<Value<'a>> {
        let at = self.position(key)?;
        let raw = self.entries[at].value;
        let value = match raw.as_bytes().first()? {
            b'"' => match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                Some(inner) if !has_backslash(inner.as_bytes()) => Value::Clean(inner),
                _ => Value::Text(Cow::Owned(serde_json::from_str::<String>(raw).ok()?)),
            },
            b'{' | b'[' | b'n' => return None,
            _ => Value::Clean(raw),
        };
        self.taken(at);
        match value {
            Value::Clean("") => None,
            Value::Text(ref text) if text.is_empty() => None,
            value => Some(value),
        }
    }

    /// The object at `key`, marked as taken: give back what is left of it with
    /// [`Object::leave`]. `None` (and left) when it is no JSON object.
    pub fn object(&mut self, key: &str) -> Option<Object<'a>> {
        self.object_nested(key, 0)
    }

    /// [`Object::object`], read with the objects nested in it down to `depth` levels (see
    /// [`Object::nested`]) unless it was read already.
    pub fn object_nested(&mut self, key: &str, depth: u8) -> Option<Object<'a>> {
        let at = self.position(key)?;
        let object = match self.inner.iter().position(|(owner, _)| *owner == at) {
            Some(n) => self.inner.swap_remove(n).1,
            None => Object::nested(self.entries[at].value, depth)?,
        };
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
        let mut seen: Vec<&str> = Vec::new();
        for entry in &self.entries {
            let value = match &entry.left {
                Left::Nothing => continue,
                Left::All if entry.value == "null" => continue,
                Left::All => entry.value.as_bytes(),
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
    #[cfg(test)]
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_ref())
    }
}

impl<'a> Entry<'a> {
    fn new(key: Cow<'a, str>, value: &'a str) -> Self {
        Entry {
            key,
            value,
            left: Left::All,
        }
    }
}

/// A raw JSON value as text: a string's text (borrowed when it has no escape), a number's or
/// a boolean's as written; `None` for `null`, objects and arrays.
pub fn text(raw: &str) -> Option<Cow<'_, str>> {
    match raw.as_bytes().first()? {
        b'"' => match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) if !has_backslash(inner.as_bytes()) => Some(Cow::Borrowed(inner)),
            _ => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
        },
        b'{' | b'[' | b'n' => None,
        _ => Some(Cow::Borrowed(raw)),
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
        // Past 32 members, the separators no longer fit on the stack.
        let wide = format!(
            "{{{}}}",
            (0..40)
                .map(|n| format!("\"k{n}\":{n}"))
                .collect::<Vec<_>>()
                .join(",")
        );
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

    #[test]
    fn nested_objects_read_in_one_pass_read_as_scanned_ones() {
        let text =
            r#"{"id":{"s":{"a":{"x":1,"y":"}"},"b":[{"c":2}],"d":{"e":{"f":3}}},"t":"u"},"z":{}}"#;
        let mut once = Object::nested(text, 2).expect("read");
        let mut twice = Object::scan(text).expect("scanned");
        let mut a = once.object("id").expect("id");
        let mut b = twice.object("id").expect("id");
        assert_eq!(a.text("t"), b.text("t"));
        let mut a_s = a.object("s").expect("s");
        let mut b_s = b.object("s").expect("s");
        for key in ["a", "d"] {
            let (x, y) = (a_s.object(key).expect(key), b_s.object(key).expect(key));
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
            assert_eq!(x.rest(), y.rest());
        }
        assert_eq!(a_s.rest(), b_s.rest());
        assert_eq!(once.object("z").map(|z| z.rest()), Some(None));
        for bad in [r#"{"a":{"b":1}"#, r#"{"a":{"b" 1}}"#, r#"{"a":{"b":1}}}"#] {
            assert!(Object::nested(bad, 2).is_none(), "{bad}");
        }
    }

    /// `a` and `b` have the same keys, the same raw values, and read the same two levels
    /// down.
    fn same(mut a: Object<'_>, mut b: Object<'_>, depth: u8) {
        let keys: Vec<String> = b.keys().map(str::to_string).collect();
        assert_eq!(a.keys().collect::<Vec<_>>(), keys);
        for key in &keys {
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
    fn random_objects_read_in_one_pass_read_as_parsed_ones() {
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
                let read = Object::nested(text, 2).expect("read");
                same(read, parsed, 2);
                compared += 1;
            }
        }
        assert!(compared > 50, "{compared}");
    }

    #[test]
    fn text_of_raw_values() {
        assert_eq!(text(r#""plain""#).as_deref(), Some("plain"));
        assert_eq!(text(r#""a\nb""#).as_deref(), Some("a\nb"));
        assert_eq!(text("true").as_deref(), Some("true"));
        assert_eq!(text("1.5").as_deref(), Some("1.5"));
        for none in ["null", "{}", "[1]", ""] {
            assert_eq!(text(none), None);
        }
    }
}
