//! Top: a record's top level as a mapping reads it when it names the members it wants by
//! their places in one [`Known`] list, each looked up once.
//!
//! Input: the record (from `{` to `}`) and its outline (the top-level `:` and `,` that its
//! format noted), or the record alone, then read by `serde_json`. Each member of the list
//! goes to its place in a fixed table as the members are read (its first one: a repeat, like
//! any key the list lacks, is kept aside in the record's order), so that taking a member is
//! an index, with no entry kept per member. Output: what the mapping takes, and at the end
//! what it did not take ([`Top::rest`]), as [`Object::rest`] gives it: one JSON object of the
//! members left (the list's first, then the others), an object read into reduced to what was
//! left of it ([`Top::leave`]), each key once, so that no part of a record is lost.
//!
//! Taking follows [`Object`]: a `null` member is absent and taken, an empty string is absent
//! and taken, an object or an array is not text and is left.
//!
//! Pure: no I/O.

use std::borrow::Cow;

use super::cursor::text;
use super::known::{tag, Known, Member, FIRST, MOST};
use super::object::{outlined_members, Object};
use super::{Str, Strings};
use crate::format::document::write_str;
use crate::format::escape::has_backslash;

/// A record's top level, the members of a [`Known`] list at their places.
#[derive(Debug)]
pub struct Top<'a, T: 'static = ()> {
    text: &'a str,
    known: &'static Known<T>,
    /// Per place of the list, where its member's value is in `text`, where `present` has
    /// the place's bit.
    values: [(u32, u32); MOST],
    /// The places with a member.
    present: u64,
    /// The places whose member was taken.
    taken: u64,
    /// What is left of the members read into ([`Top::leave`]), by place.
    parts: Vec<(u8, Vec<u8>)>,
    /// The members whose keys the list lacks or repeat one of it, in the record's order.
    others: Vec<(Cow<'a, str>, &'a str)>,
    /// Whether the text has no backslash: then none of its strings has an escape to look
    /// for (one search of the record, where each string would be searched).
    plain: bool,
    /// The place of the last member of the list read ([`FIRST`] before the first): the
    /// next key is guessed from it ([`Known::find_after`]).
    last: usize,
}

impl<'a, T> Top<'a, T> {
    /// The record `text` (from `{` to `}`) whose top-level `:` and `,` are at `separators`
    /// (`backslash`: whether it holds one, as [`crate::format::escape::survey`] finds);
    /// values are not checked. `None` when its top level is not `{"key": value, ...}`, or
    /// when it is longer than a `u32` counts.
    pub fn outlined(
        text: &'a str,
        separators: &[u32],
        known: &'static Known<T>,
        backslash: bool,
    ) -> Option<Self> {
        u32::try_from(text.len()).ok()?;
        let mut top = Top::new(text, known, backslash);
        outlined_members(text, separators, |inner, quoted, value| {
            top.member(inner, || Some(quoted), value)
        })?;
        Some(top)
    }

    /// The record `text` (`backslash` as for [`Top::outlined`]), checked whole by
    /// `serde_json`; `None` when it is not one object.
    pub fn parse(text: &'a str, known: &'static Known<T>, backslash: bool) -> Option<Self> {
        u32::try_from(text.len()).ok()?;
        let mut top = Top::new(text, known, backslash);
        for (key, value) in Object::parse(text)?.into_members() {
            match key {
                Cow::Borrowed(key) => top.member(key, || None, value)?,
                Cow::Owned(key) => top.place(key.into(), value),
            }
        }
        Some(top)
    }

    fn new(text: &'a str, known: &'static Known<T>, backslash: bool) -> Self {
        Top {
            text,
            known,
            values: [(0, 0); MOST],
            present: 0,
            taken: 0,
            parts: Vec::new(),
            others: Vec::new(),
            plain: !backslash,
            last: FIRST,
        }
    }

    /// Notes the member whose key is `inner` as written (without its quotes; `quoted` gives
    /// it with them, when it is at hand, to decode it) and whose value is `value`, a slice
    /// of the text.
    #[inline]
    fn member(
        &mut self,
        inner: &'a str,
        quoted: impl FnOnce() -> Option<&'a str>,
        value: &'a str,
    ) -> Option<()> {
        // A known key has no escape: looked up first, it needs no look for one.
        if let Some(place) = self.known.find_after(self.last, inner.as_bytes()) {
            self.last = place;
            self.note(place, value);
        } else if !self.plain && has_backslash(inner.as_bytes()) {
            let decoded: String = serde_json::from_str(quoted()?).ok()?;
            self.place(decoded.into(), value);
        } else {
            self.others.push((Cow::Borrowed(inner), value));
        }
        Some(())
    }

    /// Notes a member whose key is `key`, decoded, and whose value is `value`.
    fn place(&mut self, key: Cow<'a, str>, value: &'a str) {
        match self.known.find(key.as_bytes(), tag(key.as_bytes())) {
            Some(place) => self.note(place, value),
            None => self.others.push((key, value)),
        }
    }

    /// Notes `value` at `place`, unless the place has one: then it is kept aside.
    #[inline]
    fn note(&mut self, place: usize, value: &'a str) {
        let bit = 1u64 << place;
        if self.present & bit != 0 {
            let name = self.known.name(place);
            self.others.push((Cow::Borrowed(name), value));
            return;
        }
        self.present |= bit;
        let start = value.as_ptr() as usize - self.text.as_ptr() as usize;
        // Both fit: the text does (checked when the top was made).
        self.values[place] = (start as u32, (start + value.len()) as u32);
    }

    /// The raw value of `key` (`null` among them), where the record has it.
    #[inline]
    fn raw(&self, key: Member) -> Option<&'a str> {
        let place = usize::from(key.id);
        debug_assert_eq!(self.known.name(place), key.name, "a member of another list");
        if self.present & 1 << place == 0 {
            return None;
        }
        let (start, end) = self.values[place];
        // SAFETY: a span of the text noted by `note`, at character boundaries.
        Some(unsafe { self.text.get_unchecked(start as usize..end as usize) })
    }

    /// Marks `key` taken.
    #[inline]
    fn mark(&mut self, key: Member) {
        self.taken |= 1 << key.id;
    }

    /// The raw value of `key` (not `null`), marked as taken.
    pub fn take(&mut self, key: Member) -> Option<&'a str> {
        let raw = self.raw(key)?;
        self.mark(key);
        (raw != "null").then_some(raw)
    }

    /// The raw value of `key` (not `null`), left where it is.
    pub fn get(&self, key: Member) -> Option<&'a str> {
        self.raw(key).filter(|raw| *raw != "null")
    }

    /// The value of `key` as text (see [`Object::text`]; one decoded is held in `strings`),
    /// marked as taken; an empty string counts as absent (and taken); an object or an array
    /// is not text, and is left.
    #[inline(always)]
    pub fn text(&mut self, key: Member, strings: &'a Strings) -> Option<Str<'a>> {
        let text = self.text_of(self.raw(key)?, strings)?;
        self.mark(key);
        (!text.is_empty()).then_some(text)
    }

    /// [`Top::text`] of each of `keys`, into the same place of `into`, all marked taken at
    /// once (marked one by one, each mark would wait for the one before it to be stored).
    /// Written in place: an array made and returned (`map`) was written, then copied.
    pub fn texts<const N: usize>(
        &mut self,
        keys: [Member; N],
        strings: &'a Strings,
        into: &mut [Option<Str<'a>>; N],
    ) {
        let mut taken = 0u64;
        for (key, text) in keys.into_iter().zip(into) {
            *text = self.raw(key).and_then(|raw| {
                let text = self.text_of(raw, strings)?;
                taken |= 1 << key.id;
                (!text.is_empty()).then_some(text)
            });
        }
        self.taken |= taken;
    }

    /// The raw value `raw` as text: a string as it is where the record has no escape.
    #[inline(always)]
    fn text_of(&self, raw: &'a str, strings: &'a Strings) -> Option<Str<'a>> {
        let string = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"'));
        match string {
            Some(inner) if self.plain => Some(Str::plain(inner)),
            _ => text(raw).map(|text| strings.keep(text)),
        }
    }

    /// Every member not taken, as one JSON object; `None` when nothing is left.
    pub fn rest(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut write = |key: &str, value: &[u8]| {
            out.push(if out.is_empty() { b'{' } else { b',' });
            write_str(&mut out, key);
            out.push(b':');
            out.extend_from_slice(value);
        };
        // What is kept of each place: its value, or what was left of it.
        let kept = |place: usize| -> Option<&[u8]> {
            if self.taken & 1 << place == 0 {
                let (start, end) = self.values[place];
                let raw = &self.text.as_bytes()[start as usize..end as usize];
                return (raw != b"null").then_some(raw);
            }
            let part = self.parts.iter().find(|(p, _)| usize::from(*p) == place);
            part.map(|(_, rest)| &rest[..])
        };
        let mut places = self.present;
        let mut written = 0u64;
        while places != 0 {
            let place = places.trailing_zeros() as usize;
            places &= places - 1;
            if let Some(value) = kept(place) {
                write(self.known.name(place), value);
                written |= 1 << place;
            }
        }
        for (n, (key, value)) in self.others.iter().enumerate() {
            // A key is written once: the cluster refuses an object that repeats one.
            let place = self.known.find(key.as_bytes(), tag(key.as_bytes()));
            let repeated = match place {
                Some(place) => written & 1 << place != 0,
                None => self.others[..n]
                    .iter()
                    .any(|(k, v)| k == key && *v != "null"),
            };
            if *value == "null" || repeated {
                continue;
            }
            if let Some(place) = place {
                written |= 1 << place;
            }
            write(key, value.as_bytes());
        }
        if out.is_empty() {
            return None;
        }
        out.push(b'}');
        Some(out)
    }
}

impl<'a, T> Top<'a, T> {
    /// The object at `key`, marked as taken: give back what is left of it with
    /// [`Top::leave`]. `None` (and left) when it is no JSON object.
    pub fn object(&mut self, key: Member) -> Option<Object<'a>> {
        let object = Object::scan(self.raw(key)?)?;
        self.mark(key);
        Some(object)
    }

    /// Records what is left of the member at `key` read into: marked taken, with its rest.
    pub fn leave(&mut self, key: Member, rest: Option<Vec<u8>>) {
        if self.raw(key).is_none() {
            return;
        }
        self.mark(key);
        self.parts.retain(|(place, _)| *place != key.id);
        if let Some(rest) = rest {
            self.parts.push((key.id, rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::cloudtrail::split::OwnedRecord;
    use crate::format::ecs::known::{known, plain};

    static KNOWN: Known = known!(&plain(["a", "b", "n", "absent", "obj"]));

    /// The top-level `:` and `,` of `text`, as the CloudTrail format notes them.
    fn outline(text: &str) -> Vec<u32> {
        let record = OwnedRecord::parse(text.as_bytes()).expect("a record");
        record.as_record().separators().to_vec()
    }

    fn backslash(text: &str) -> bool {
        crate::format::escape::survey(text.as_bytes()).backslash
    }

    fn both(text: &str) -> [Top<'_>; 2] {
        [
            Top::outlined(text, &outline(text), &KNOWN, backslash(text)).expect("an outlined top"),
            Top::parse(text, &KNOWN, backslash(text)).expect("a parsed top"),
        ]
    }

    fn rest(top: &Top<'_>) -> Option<serde_json::Value> {
        top.rest()
            .map(|r| serde_json::from_slice(&r).expect("valid JSON"))
    }

    const A: Member = const { KNOWN.member("a") };
    const B: Member = const { KNOWN.member("b") };
    const N: Member = const { KNOWN.member("n") };
    const ABSENT: Member = const { KNOWN.member("absent") };
    const OBJ: Member = const { KNOWN.member("obj") };

    #[test]
    fn what_is_not_taken_is_the_rest() {
        let text = r#"{"a":"x","other":[1],"b":5,"n":null,"a":"again","obj":{"c":1,"d":2},"other":2,"b\u0041":3}"#;
        let strings = Strings::new();
        for mut top in both(text) {
            assert_eq!(top.text(A, &strings).as_deref(), Some("x"));
            assert_eq!(top.get(B), Some("5"));
            assert_eq!(top.take(N), None, "null is absent");
            assert_eq!(top.take(ABSENT), None);
            let mut inner = top.object(OBJ).expect("an object");
            assert_eq!(inner.take("c"), Some("1"));
            top.leave(OBJ, inner.rest());
            assert_eq!(
                rest(&top),
                Some(serde_json::json!({
                    "b": 5, "obj": {"d": 2}, "other": [1], "a": "again", "bA": 3,
                })),
                "a repeated key is left, the first one's value read; each key once"
            );
        }
    }

    #[test]
    fn an_escaped_key_is_read_as_its_text() {
        let text = r#"{"\u0061":"E", "b" : 1 ,"a":"again","n":null,"x\"y":2}"#;
        let strings = Strings::new();
        for mut top in both(text) {
            assert_eq!(top.text(A, &strings).as_deref(), Some("E"));
            assert_eq!(top.get(N), None);
            assert_eq!(
                rest(&top),
                Some(serde_json::json!({"b": 1, "a": "again", "x\"y": 2}))
            );
        }
    }

    #[test]
    fn a_repeated_key_left_is_written_once() {
        for mut top in both(r#"{"a":1,"a":2,"z":null,"z":3,"z":4}"#) {
            assert_eq!(rest(&top), Some(serde_json::json!({"a": 1, "z": 3})));
            top.take(A);
            assert_eq!(rest(&top), Some(serde_json::json!({"a": 2, "z": 3})));
        }
    }

    /// A text read, and whether it is to be escaped when written.
    fn as_read(text: Option<Str<'_>>) -> Option<(&str, bool)> {
        text.map(|t| (t.as_str(), t.needs_escape()))
    }

    #[test]
    fn text_is_taken_borrowed_when_it_has_no_escape_and_other_values_are_not() {
        let strings = Strings::new();
        for mut top in both(r#"{"a":"plain","b":"esc\"aped","n":"","obj":{"x":1}}"#) {
            assert_eq!(as_read(top.text(A, &strings)), Some(("plain", false)));
            assert_eq!(as_read(top.text(B, &strings)), Some(("esc\"aped", true)));
            assert_eq!(top.text(N, &strings), None, "an empty string is absent");
            assert_eq!(top.text(OBJ, &strings), None, "an object is not text");
            assert_eq!(rest(&top), Some(serde_json::json!({"obj": {"x": 1}})));
            top.leave(OBJ, None);
            assert_eq!(rest(&top), None, "an emptied object leaves nothing");
        }
    }

    #[test]
    fn a_broken_top_level_is_refused() {
        for broken in [r#"{"a" 1}"#, r#"{"a":1,}"#, "[1]", r#"{1:2}"#] {
            assert!(Top::parse(broken, &KNOWN, false).is_none(), "{broken}");
        }
        let text = r#"{"a":1,"b":2}"#;
        let mut separators = outline(text);
        separators.pop();
        assert!(Top::outlined(text, &separators, &KNOWN, false).is_none());
    }
}
