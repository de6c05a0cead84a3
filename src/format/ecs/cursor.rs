//! Cursor: a record's JSON object read member by member in one pass, the mapping deciding at
//! each member what to take, and what it leaves kept as it came.
//!
//! Input: the text of one JSON object. The caller asks for the next member's key
//! ([`Cursor::key`]), then takes its value as text ([`Cursor::text`], [`Cursor::value`]),
//! reads into it when it is an object ([`Cursor::object`], the inner object read by a cursor
//! of its own at the same place, so no byte is read twice), or leaves it
//! ([`Cursor::leave`]). Output: what it took, and at the end ([`Cursor::finish`]) what it left:
//! one JSON object of the members left, an inner object reduced to what was left of it, each
//! key once, so that no part of a record is lost.
//!
//! Taking follows [`super::Object`]: `null` is absent and taken, an empty string is absent
//! and taken, an object or an array is not text and is left. A mapping that reads keys with
//! [`Cursor::next`] is handed each of its known keys once: a repeated one comes as unknown,
//! and the mapping leaves it.
//!
//! Pure: no I/O. Strings are passed a block at a time ([`string_end`]); everything else a
//! byte at a time, which for a record's small objects is quicker than classifying blocks.

use std::borrow::Cow;

use super::known::{equal, tag, Known, FIRST};
use super::{Str, Strings};
use crate::format::escape::{has_backslash, string_end};

/// An object that is not `{"key": value, ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken;

/// One JSON object being read.
#[derive(Debug)]
pub struct Cursor<'a> {
    text: &'a str,
    /// The next byte to read.
    at: usize,
    /// The current member's key as written, quotes included.
    key: &'a str,
    /// The members left so far, each after a `,`.
    rest: Vec<u8>,
    /// The keys of the members left so far (as written), so that each is left once.
    left: Vec<&'a str>,
    /// Whether a value could not be read: the object is then refused.
    broken: bool,
    /// Whether the last value passed was a string with an escape.
    escaped: bool,
    /// The places of the known keys handed out ([`Cursor::next`]), one bit each.
    taken: u64,
    /// The place of the last known key read ([`FIRST`] before the first): the next one is
    /// guessed from it ([`Known::find_after`]).
    last: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the `{` that `text` starts with (after whitespace); `None` when it does
    /// not start with one.
    pub fn new(text: &'a str) -> Option<Cursor<'a>> {
        let mut cursor = Cursor::at(text, 0);
        cursor.space();
        cursor.open()?;
        Some(cursor)
    }

    /// Reads `text`, a JSON array of objects, handing a cursor in each object to `each`,
    /// which reads its members and gives back where it ends ([`Cursor::finish`]); `None` when
    /// `text` is not an array of objects only.
    pub fn each_object(
        text: &'a str,
        mut each: impl FnMut(Cursor<'a>) -> Option<usize>,
    ) -> Option<()> {
        let mut list = Cursor::at(text, 0);
        list.space();
        (list.byte()? == b'[').then_some(())?;
        list.at += 1;
        list.space();
        if list.byte()? == b']' {
            list.at += 1;
        } else {
            loop {
                let mut item = Cursor::at(text, list.at);
                item.open()?;
                list.at = each(item)?;
                list.space();
                match list.byte()? {
                    b',' => {
                        list.at += 1;
                        list.space();
                    }
                    b']' => {
                        list.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        list.space();
        (list.at == text.len()).then_some(())
    }

    fn at(text: &'a str, at: usize) -> Cursor<'a> {
        Cursor {
            text,
            at,
            key: "",
            rest: Vec::new(),
            left: Vec::new(),
            broken: false,
            escaped: false,
            taken: 0,
            last: FIRST,
        }
    }

    fn byte(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn space(&mut self) {
        while self.byte().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// Passes the `{` at the cursor and the whitespace after it.
    fn open(&mut self) -> Option<()> {
        (self.byte()? == b'{').then_some(())?;
        self.at += 1;
        self.space();
        Some(())
    }

    /// The next member's key (decoded when it has an escape), the cursor then at its value;
    /// `Ok(None)` after the last member; `Err` where the object is not
    /// `{"key": value, ...}`. Call [`Cursor::text`], [`Cursor::value`], [`Cursor::take`],
    /// [`Cursor::object`] or [`Cursor::leave`] before the next one.
    pub fn key(&mut self) -> Result<Option<Cow<'a, str>>, Broken> {
        match self.next_key()? {
            None => Ok(None),
            Some(escaped) => self.decoded(escaped).map(Some).ok_or(Broken),
        }
    }

    /// The next member's key looked up in `known`: `Ok(Some(Some(meaning)))` for a key of
    /// the list met for the first time in this object, `Ok(Some(None))` for any other key (a
    /// repeated one among them, which the mapping then leaves), `Ok(None)` after the last
    /// member, `Err` as [`Cursor::key`].
    #[inline]
    pub fn next<T: Copy>(&mut self, known: &Known<T>) -> Result<Option<Option<T>>, Broken> {
        if !self.before_key()? {
            return Ok(None);
        }
        // The key that followed the last one in the objects read before: when it is the one
        // here, its text is compared where it stands, and no string is scanned for its end.
        let place = match self.guessed(known)? {
            Some(place) => Some(place),
            None => {
                let escaped = self.member().ok_or(Broken)?;
                if escaped {
                    let key = self.decoded(true).ok_or(Broken)?;
                    known.find(key.as_bytes(), tag(key.as_bytes()))
                } else {
                    let key = &self.key.as_bytes()[1..self.key.len() - 1];
                    let place = known.find_after(self.last, key);
                    if let Some(place) = place {
                        self.last = place;
                    }
                    place
                }
            }
        };
        let fresh = place.filter(|&place| self.taken & 1 << place == 0);
        Ok(Some(fresh.map(|place| {
            self.taken |= 1 << place;
            known.meaning(place)
        })))
    }

    /// The place of the key at the cursor when it is the one [`Known::guess`] gives after
    /// the last, read with the `:` after it; `None`, the cursor unmoved, when it is not;
    /// `Err` when no `:` follows it.
    #[inline]
    fn guessed<T>(&mut self, known: &Known<T>) -> Result<Option<usize>, Broken> {
        let Some(place) = known.guess(self.last) else {
            return Ok(None);
        };
        let name = known.name(place).as_bytes();
        let bytes = self.text.as_bytes();
        let end = self.at + name.len() + 1;
        let quoted = bytes.get(self.at) == Some(&b'"') && bytes.get(end) == Some(&b'"');
        if !quoted || !equal(&bytes[self.at + 1..end], name) {
            return Ok(None);
        }
        // SAFETY: `self.at` and `end` are at quotes (checked above), ASCII bytes, so the
        // key's bounds are character boundaries within the text.
        self.key = unsafe { self.text.get_unchecked(self.at..=end) };
        self.at = end + 1;
        self.colon().ok_or(Broken)?;
        self.last = place;
        Ok(Some(place))
    }

    /// Passes the `,` before the next member and reads its key ([`Cursor::key`] has it as
    /// written): whether it has an escape; `Ok(None)` at the `}`.
    #[inline]
    fn next_key(&mut self) -> Result<Option<bool>, Broken> {
        if !self.before_key()? {
            return Ok(None);
        }
        self.member().ok_or(Broken).map(Some)
    }

    /// Passes the `,` before the next member: whether there is one (`false` at the `}`).
    #[inline]
    fn before_key(&mut self) -> Result<bool, Broken> {
        if self.broken {
            return Err(Broken);
        }
        match self.byte() {
            Some(b'}') => return Ok(false),
            Some(b',') if !self.key.is_empty() => {
                self.at += 1;
                self.space();
            }
            Some(b'"') if self.key.is_empty() => {}
            _ => return Err(Broken),
        }
        Ok(true)
    }

    /// Reads the key at the cursor and the `:` after it; returns whether the key has an
    /// escape.
    #[inline]
    fn member(&mut self) -> Option<bool> {
        let bytes = self.text.as_bytes();
        (bytes.get(self.at) == Some(&b'"')).then_some(())?;
        let (end, escaped) = string_end(bytes, self.at + 1)?;
        // SAFETY: `self.at` and `end` are at quotes (checked above, found by `string_end`),
        // ASCII bytes, so the key's bounds are character boundaries within the text.
        self.key = unsafe { self.text.get_unchecked(self.at..=end) };
        self.at = end + 1;
        self.colon()?;
        Some(escaped)
    }

    /// Passes the `:` after a key, and the whitespace around it.
    #[inline]
    fn colon(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&b':') {
            self.space();
            (self.byte()? == b':').then_some(())?;
        }
        self.at += 1;
        if bytes.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.space();
        }
        Some(())
    }

    /// The current key's text (decoded when it has an escape).
    fn decoded(&self, escaped: bool) -> Option<Cow<'a, str>> {
        Some(if escaped {
            Cow::Owned(serde_json::from_str(self.key).ok()?)
        } else {
            Cow::Borrowed(&self.key[1..self.key.len() - 1])
        })
    }

    /// Passes the current member's value; returns it raw. When it cannot be read, the
    /// object is refused.
    pub(super) fn raw(&mut self) -> Option<&'a str> {
        let raw = self.pass();
        self.broken |= raw.is_none();
        raw
    }

    fn pass(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.escaped = false;
        self.at = match self.byte()? {
            b'"' => {
                let (end, escaped) = string_end(self.text.as_bytes(), start + 1)?;
                self.escaped = escaped;
                end + 1
            }
            _ => value_end(self.text.as_bytes(), start)?,
        };
        let raw = self.text.get(start..self.at)?;
        self.space();
        Some(raw)
    }

    /// The current member's value raw (not `null`), taken.
    pub fn take(&mut self) -> Option<&'a str> {
        self.raw().filter(|raw| *raw != "null")
    }

    /// The current member's value as text (see [`text`]; one decoded is held in `strings`),
    /// taken; an empty string is absent and taken; an object or an array is left. `None`
    /// also when the value cannot be read (the object then fails at [`Cursor::key`] or
    /// [`Cursor::finish`]).
    #[inline(always)]
    pub fn text(&mut self, strings: &'a Strings) -> Option<Str<'a>> {
        let raw = self.raw()?;
        let text = match raw.as_bytes()[0] {
            b'"' if !self.escaped => Str::plain(&raw[1..raw.len() - 1]),
            b'{' | b'[' => {
                self.keep(raw.as_bytes());
                return None;
            }
            _ => strings.keep(text(raw)?),
        };
        (!text.is_empty()).then_some(text)
    }

    /// A cursor inside the current member's value when it is an object (give it back with
    /// [`Cursor::close`]); `None`, and the value left, when it is not.
    pub fn object(&mut self) -> Option<Cursor<'a>> {
        if self.byte() != Some(b'{') {
            self.leave();
            return None;
        }
        let mut inner = Cursor::at(self.text, self.at);
        if inner.open().is_none() {
            self.broken = true;
            return None;
        }
        Some(inner)
    }

    /// Takes back a cursor of [`Cursor::object`] after its last member: the current
    /// member keeps what was left of it; `None` when it did not end there.
    pub fn close(&mut self, inner: Cursor<'a>) -> Option<()> {
        let Some((end, rest)) = inner.finish() else {
            self.broken = true;
            return None;
        };
        self.at = end;
        self.space();
        if let Some(rest) = rest {
            self.keep(&rest);
        }
        Some(())
    }

    /// Leaves the current member's value as it is.
    pub fn leave(&mut self) {
        if let Some(raw) = self.raw() {
            if raw != "null" {
                self.keep(raw.as_bytes());
            }
        }
    }

    /// Leaves `raw`, the current member's value that [`Cursor::take`] gave, after all.
    pub fn put_back(&mut self, raw: &str) {
        self.keep(raw.as_bytes());
    }

    /// Keeps `value` under the current key in what is left, unless a member of that key
    /// was left already.
    fn keep(&mut self, value: &[u8]) {
        if self.left.contains(&self.key) {
            return;
        }
        self.left.push(self.key);
        self.rest.push(b',');
        self.rest.extend_from_slice(self.key.as_bytes());
        self.rest.push(b':');
        self.rest.extend_from_slice(value);
    }

    /// After the last member: where the object ends (past its `}`), and what was left of it
    /// as one JSON object (`None`: nothing).
    pub fn finish(mut self) -> Option<(usize, Option<Vec<u8>>)> {
        (!self.broken && self.byte()? == b'}').then_some(())?;
        self.at += 1;
        if self.rest.is_empty() {
            return Some((self.at, None));
        }
        self.rest[0] = b'{';
        self.rest.push(b'}');
        Some((self.at, Some(self.rest)))
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

/// Where the JSON value at `at` of `bytes` ends (the place after it): a string, a container
/// (its strings passed whole, its brackets counted), or a number or literal (up to the byte
/// that ends it); `None` when there is none.
fn value_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => Some(string_end(bytes, at + 1)?.0 + 1),
        b'{' | b'[' => {
            let mut open = 0usize;
            loop {
                match bytes.get(at)? {
                    b'"' => at = string_end(bytes, at + 1)?.0,
                    b'{' | b'[' => open += 1,
                    b'}' | b']' => {
                        open -= 1;
                        if open == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        b'}' | b']' | b',' | b':' => None,
        _ => {
            let start = at;
            while bytes
                .get(at)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                at += 1;
            }
            (at > start).then_some(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ecs::known::known;

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

    /// Reads `text` taking the keys of `take` as text, reading into `into` as an object
    /// (taking its `x`), leaving the rest; returns what was taken and what was left.
    fn read(text: &str, take: &[&str], into: &str) -> Option<(Vec<String>, Option<String>)> {
        let strings = Strings::new();
        let mut cursor = Cursor::new(text)?;
        let mut taken = Vec::new();
        while let Some(key) = cursor.key().ok()? {
            if take.contains(&key.as_ref()) {
                taken.push(format!("{key}={:?}", cursor.text(&strings).as_deref()));
            } else if key == into {
                if let Some(mut inner) = cursor.object() {
                    while let Some(inner_key) = inner.key().ok()? {
                        if inner_key == "x" {
                            taken.push(format!("{key}.x={:?}", inner.text(&strings).as_deref()));
                        } else {
                            inner.leave();
                        }
                    }
                    cursor.close(inner)?;
                }
            } else {
                cursor.leave();
            }
        }
        let (end, rest) = cursor.finish()?;
        assert_eq!(end, text.trim_end().len());
        Some((taken, rest.map(|r| String::from_utf8(r).unwrap())))
    }

    #[test]
    fn what_is_not_taken_is_left_once_and_whole() {
        let (taken, rest) = read(
            r#" { "a" : "x" , "n":null, "e":"", "o":{"x":1,"y":[2,"]"]}, "k\u0041":{"z":"}"},
                 "l":[1,{"x":2}], "k\u0041":3, "t":true, "o2":{"x":"only"} } "#,
            &["a", "n", "e", "l", "t"],
            "o",
        )
        .expect("read");
        assert_eq!(
            taken,
            [
                "a=Some(\"x\")",
                "n=None",
                "e=None",
                "o.x=Some(\"1\")",
                "l=None",
                "t=Some(\"true\")"
            ]
        );
        let rest: serde_json::Value = serde_json::from_str(&rest.unwrap()).unwrap();
        assert_eq!(
            rest,
            serde_json::json!({
                "o": {"y": [2, "]"]},
                "kA": {"z": "}"},
                "l": [1, {"x": 2}],
                "o2": {"x": "only"},
            }),
            "an array is not text and is left; a key left twice is left once"
        );
    }

    #[test]
    fn known_keys_are_handed_out_once_escaped_or_not() {
        static KNOWN: Known<char> = known!(&[("type", 't'), ("arn", 'a'), ("userName", 'u')]);
        let strings = Strings::new();
        let mut cursor = Cursor::new(
            r#"{"type":"A","x":1,"t\u0079pe":"B","arn" : "c","userName":{"o":1},"arn":"d"}"#,
        )
        .unwrap();
        let mut seen = Vec::new();
        while let Some(member) = cursor.next(&KNOWN).unwrap() {
            match member {
                Some('u') => {
                    seen.push("u".to_string());
                    cursor.leave();
                }
                Some(m) => seen.push(format!("{m}={}", &*cursor.text(&strings).unwrap())),
                None => cursor.leave(),
            }
        }
        assert_eq!(seen, ["t=A", "a=c", "u"]);
        let (_, rest) = cursor.finish().unwrap();
        let rest: serde_json::Value = serde_json::from_slice(&rest.unwrap()).unwrap();
        assert_eq!(
            rest,
            serde_json::json!({"x": 1, "type": "B", "userName": {"o": 1}, "arn": "d"}),
            "a repeated key, escaped or not, is left; so is what the mapping leaves"
        );
        let mut broken = Cursor::new(r#"{"type" "A"}"#).unwrap();
        assert_eq!(broken.next(&KNOWN), Err(Broken));
    }

    #[test]
    fn text_is_borrowed_without_an_escape_and_other_values_are_left() {
        let strings = Strings::new();
        let mut cursor =
            Cursor::new(r#"{"p":"plain" ,"e":"a\"b","z":"","n":1,"o":{"x":1}}"#).unwrap();
        let mut read = Vec::new();
        while cursor.key().unwrap().is_some() {
            read.push(
                cursor
                    .text(&strings)
                    .map(|t| (t.as_str(), t.needs_escape())),
            );
        }
        assert_eq!(
            read,
            [
                Some(("plain", false)),
                Some(("a\"b", true)),
                None,
                Some(("1", false)),
                None,
            ],
            "a decoded text is escaped when written"
        );
        let (_, rest) = cursor.finish().unwrap();
        assert_eq!(rest.as_deref(), Some(&br#"{"o":{"x":1}}"#[..]));
    }

    #[test]
    fn an_object_all_taken_leaves_nothing_and_values_stay_as_written() {
        let (_, rest) = read(r#"{"o":{"x":"a\"b"},"a":1}"#, &["a"], "o").unwrap();
        assert_eq!(rest, None);
        let strings = Strings::new();
        let mut cursor = Cursor::new(r#"{"s":"plain","e":"a\nb","n":-1.5e3}"#).unwrap();
        let mut values = Vec::new();
        while cursor.key().unwrap().is_some() {
            values.push(
                cursor
                    .text(&strings)
                    .map(|t| (t.as_str(), t.needs_escape())),
            );
        }
        assert_eq!(
            values,
            [
                Some(("plain", false)),
                Some(("a\nb", true)),
                Some(("-1.5e3", false))
            ]
        );
    }

    #[test]
    fn each_object_of_an_array_is_read() {
        fn objects(text: &str) -> Option<Vec<String>> {
            let mut read = Vec::new();
            Cursor::each_object(text, |mut cursor| {
                while let Some(key) = cursor.key().ok()? {
                    let value = cursor.take();
                    read.push(format!("{key}={value:?}"));
                }
                Some(cursor.finish()?.0)
            })?;
            Some(read)
        }
        assert_eq!(
            objects(r#" [ {"a":"]","b":[1,{"c":2}]} , {} ,{"d":null}] "#).unwrap(),
            [r#"a=Some("\"]\"")"#, r#"b=Some("[1,{\"c\":2}]")"#, "d=None"]
        );
        assert_eq!(objects("[]"), Some(Vec::new()));
        for bad in [
            "[1]",
            "[{}",
            "[{},]",
            "{}",
            r#"[{"a":1}] x"#,
            "",
            r#"[{"a":}]"#,
        ] {
            assert!(objects(bad).is_none(), "{bad}");
        }
    }

    /// Reads `text` with a cursor, taking the text of every member whose value is text and
    /// reading into every object the same way; returns the texts taken (`key=text`, nested
    /// keys joined by `.`) and what was left.
    fn take_texts(text: &str) -> (Vec<String>, Option<serde_json::Value>) {
        fn read<'a>(
            cursor: &mut Cursor<'a>,
            prefix: &str,
            taken: &mut Vec<String>,
            strings: &'a Strings,
        ) {
            while let Some(key) = cursor.key().expect("a JSON object") {
                if cursor.byte() == Some(b'{') {
                    let mut inner = cursor.object().expect("an object");
                    read(&mut inner, &format!("{prefix}{key}."), taken, strings);
                    cursor.close(inner).expect("read to its end");
                } else if let Some(text) = cursor.text(strings) {
                    taken.push(format!("{prefix}{key}={}", &*text));
                }
            }
        }
        let strings = Strings::new();
        let mut cursor = Cursor::new(text).expect("an object");
        let mut taken = Vec::new();
        read(&mut cursor, "", &mut taken, &strings);
        let (end, rest) = cursor.finish().expect("read to its end");
        assert_eq!(end, text.len());
        let rest = rest.map(|r| serde_json::from_slice(&r).expect("what is left is JSON"));
        (taken, rest)
    }

    /// What [`take_texts`] should give for `value`.
    fn expected(
        value: &serde_json::Map<String, serde_json::Value>,
        prefix: &str,
        taken: &mut Vec<String>,
    ) -> Option<serde_json::Value> {
        use serde_json::Value as Json;
        let mut left = serde_json::Map::new();
        let mut seen = std::collections::HashSet::new();
        for (key, member) in value {
            // serde_json keeps the last of a repeated key; the generator makes none.
            assert!(seen.insert(key.clone()));
            match member {
                Json::Object(inner) => {
                    if let Some(rest) = expected(inner, &format!("{prefix}{key}."), taken) {
                        left.insert(key.clone(), rest);
                    }
                }
                Json::Array(_) => {
                    left.insert(key.clone(), member.clone());
                }
                Json::Null => {}
                Json::String(text) if text.is_empty() => {}
                Json::String(text) => taken.push(format!("{prefix}{key}={text}")),
                other => taken.push(format!("{prefix}{key}={other}")),
            }
        }
        (!left.is_empty()).then_some(Json::Object(left))
    }

    #[test]
    fn random_objects_read_by_the_cursor_read_as_parsed_ones() {
        use crate::format::scan::samples::{json_value, Random};
        let mut random = Random(0xc0_7507);
        let mut compared = 0;
        for _ in 0..400 {
            let value = json_value(&mut random, 0);
            let Some(object) = value.as_object() else {
                continue;
            };
            let mut want = Vec::new();
            // Through text, as what is left is: numbers parse back as `serde_json` reads them.
            let rest = expected(object, "", &mut want)
                .map(|rest| serde_json::from_str(&rest.to_string()).expect("JSON"));
            for text in [
                value.to_string(),
                serde_json::to_string_pretty(&value).unwrap(),
            ] {
                assert_eq!(take_texts(&text), (want.clone(), rest.clone()), "{text}");
                compared += 1;
            }
        }
        assert!(compared > 50, "{compared}");
    }

    #[test]
    fn a_broken_object_is_refused() {
        for bad in [
            "",
            "[1]",
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{,"a":1}"#,
            r#"{"a":}"#,
            r#"{"a":"open}"#,
            r#"{"o":{"x":1}"#,
        ] {
            assert!(read(bad, &["a"], "o").is_none(), "{bad}");
        }
        assert_eq!(read("{}", &[], "o"), Some((Vec::new(), None)));
    }

    #[test]
    fn a_guessed_key_is_read_as_any_other() {
        static GUESSED: Known<u8> = known!(&[("type", 0), ("arn", 1)]);
        let read = |text: &str| -> Result<Vec<Option<u8>>, Broken> {
            let mut cursor = Cursor::new(text).ok_or(Broken)?;
            let mut found = Vec::new();
            while let Some(member) = cursor.next(&GUESSED)? {
                found.push(member);
                cursor.leave();
            }
            cursor.finish().ok_or(Broken)?;
            Ok(found)
        };
        // The first object teaches the order; the next ones are read with guesses.
        for _ in 0..2 {
            assert_eq!(read(r#"{"type":1,"arn":2}"#), Ok(vec![Some(0), Some(1)]));
        }
        assert_eq!(read(r#"{"typeX":1,"arn":2}"#), Ok(vec![None, Some(1)]));
        assert_eq!(read(r#"{"type" : 1 , "type":2}"#), Ok(vec![Some(0), None]));
        assert_eq!(read(r#"{"arn":1,"type":2}"#), Ok(vec![Some(1), Some(0)]));
        assert_eq!(read(r#"{"type":1,"arn":2}"#), Ok(vec![Some(0), Some(1)]));
        // A guessed key with no `:` after it breaks the object, as any key would.
        assert_eq!(read(r#"{"type""x":1}"#), Err(Broken));
        assert_eq!(read(r#"{"type":1,"arn""x":2}"#), Err(Broken));
    }
}
