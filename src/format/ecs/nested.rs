//! Nested: one JSON document written in a single pass, in the order of the code that writes
//! it, its objects opened only when something goes in them.
//!
//! A mapping compiled for one record type (CloudTrail's) gathers its values first, then
//! writes the document from them straight into the output, object after object: each key is
//! a constant (a few moves, no lookup), each value is copied once, and a field's presence is
//! the only branch. An object that the code opens ([`Nested::open`]) is written when its first
//! member is, so an object with nothing in it never appears; commas are counted, not
//! searched for. [`super::Fields`] is the general way, for mappings whose fields come in any
//! order.
//!
//! The output is a [`BytesMut`]: a document written into the thread's shared buffer needs no
//! copy to become an event's bytes ([`crate::format::document::chunks::write_bytes`]).
//!
//! Pure: no I/O. Keys are given as written (`"name":`, `"name":{` for an object) and must
//! need no escape; values are written as their kind says.

use std::cell::Cell;

use bytes::BytesMut;

use super::Str;
use crate::format::escape;

/// The most objects open at once, the document's own among them.
const DEEPEST: usize = 16;

/// One document being written.
///
/// The place of the next byte is kept here (`at`), not in the buffer's length, which is
/// brought up to date only where the buffer itself is used (to grow, at the end): a byte
/// written through a pointer may be any byte, so a length read back from memory after each
/// store would chain every write to the one before it. Between those points the bytes from
/// the length to `at` are written and not yet counted, so a document left half written (a
/// panic) leaves the buffer as it was.
#[derive(Debug)]
pub struct Nested<'o> {
    out: &'o mut BytesMut,
    /// Where the buffer's room started when `at` and `end` were taken, and its length then.
    base: *mut u8,
    base_len: usize,
    /// Where the next byte goes, and the end of the buffer's room.
    at: *mut u8,
    end: *mut u8,
    /// The keys (`"name":{`) of the objects open, innermost last: the last `waiting` of them
    /// are not written yet.
    keys: [&'static [u8]; DEEPEST],
    /// How many objects are open, the document's own not counted.
    depth: usize,
    /// How many of the innermost open objects have nothing written yet. (Of another width
    /// than `depth`: the two, added to together, were read back as one vector of both just
    /// after being stored one at a time, which the processor cannot forward.)
    waiting: u32,
    /// Whether the innermost written object has no member yet.
    first: bool,
}

impl<'o> Nested<'o> {
    /// Starts a document at the end of `out`.
    pub fn new(out: &'o mut BytesMut) -> Self {
        out.extend_from_slice(b"{");
        let (at, end) = room(out);
        Nested {
            base_len: out.len(),
            out,
            base: at,
            at,
            end,
            keys: [b""; DEEPEST],
            depth: 0,
            waiting: 0,
            first: true,
        }
    }

    /// Makes room for `n` more bytes after `at`.
    #[inline(always)]
    fn room(&mut self, n: usize) {
        if (self.end as usize) - (self.at as usize) < n {
            self.grow(n);
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, n: usize) {
        self.count();
        self.out.reserve(n.max(4096));
        self.take_room();
    }

    /// Takes the buffer's room as it is now.
    fn take_room(&mut self) {
        (self.at, self.end) = room(self.out);
        (self.base, self.base_len) = (self.at, self.out.len());
    }

    /// Brings the buffer's length up to `at`.
    #[inline(always)]
    fn count(&mut self) {
        let len = self.base_len + (self.at as usize - self.base as usize);
        // SAFETY: the bytes up to `at` are written, and `at` is within the room taken.
        unsafe { self.out.set_len(len) }
    }

    /// Appends one byte; room for it was made.
    #[inline(always)]
    fn byte(&mut self, byte: u8) {
        debug_assert!(self.at < self.end);
        // SAFETY: room was made for it (see the callers).
        unsafe {
            self.at.write(byte);
            self.at = self.at.add(1);
        }
    }

    /// Appends `bytes`; room for them was made.
    #[inline(always)]
    fn bytes(&mut self, bytes: &[u8]) {
        debug_assert!(self.end as usize - self.at as usize >= bytes.len());
        // SAFETY: room was made for them (see the callers).
        unsafe { self.at = put(self.at, bytes) }
    }

    /// Appends what `write` writes into a vector (the thread's, kept for its capacity).
    fn through_vec(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        thread_local! {
            static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
        }
        let mut scratch = SCRATCH.try_with(Cell::take).unwrap_or_default();
        scratch.clear();
        write(&mut scratch);
        self.room(scratch.len());
        self.bytes(&scratch);
        let _ = SCRATCH.try_with(|kept| kept.set(scratch));
    }

    /// Opens the object `key` (`"name":{`) inside the current one: written with its first
    /// member, not at all when it gets none. Panics past 15 objects deep (a bug of the
    /// mapping, which its tests catch).
    #[inline(always)]
    pub fn open(&mut self, key: &'static [u8]) {
        assert!(self.depth + 1 < DEEPEST, "objects nested too deep");
        self.keys[self.depth] = key;
        self.depth += 1;
        self.waiting += 1;
    }

    /// Opens the object `key` (`"name":{`) inside the current one and writes it now: for an
    /// object that always gets a member, which then costs no wait.
    #[inline(always)]
    pub fn object(&mut self, key: &'static [u8]) {
        assert!(self.depth + 1 < DEEPEST, "objects nested too deep");
        self.key(key, 0);
        self.keys[self.depth] = key;
        self.depth += 1;
        self.first = true;
    }

    /// Closes the innermost open object.
    #[inline(always)]
    pub fn close(&mut self) {
        assert!(self.depth > 0, "an object closed that was not open");
        self.depth -= 1;
        if self.waiting > 0 {
            self.waiting -= 1;
        } else {
            self.room(1);
            self.byte(b'}');
            self.first = false;
        }
    }

    /// Writes the objects waiting for their first member.
    #[inline(never)]
    fn write_waiting(&mut self) {
        for n in self.depth - self.waiting as usize..self.depth {
            let key = self.keys[n];
            self.room(key.len() + 1);
            self.comma();
            self.bytes(key);
            self.first = true;
        }
        self.waiting = 0;
    }

    /// A `,` unless the member is the first of its object, with no branch; room for it was
    /// made.
    #[inline(always)]
    fn comma(&mut self) {
        self.byte(b',');
        self.at = self.at.wrapping_sub(usize::from(self.first));
    }

    /// Starts the member `key` (`"name":`), with room for `value` more bytes after it.
    #[inline(always)]
    fn key(&mut self, key: &'static [u8], value: usize) {
        if self.waiting > 0 {
            self.write_waiting();
        }
        self.room(key.len() + value + 3);
        self.comma();
        self.bytes(key);
        self.first = false;
    }

    /// The member `key` with `text` as a JSON string, when there is text: a record's string
    /// that had no escape is copied as it is; one decoded or made is escaped.
    #[inline(always)]
    pub fn text(&mut self, key: &'static [u8], text: &Option<Str<'_>>) {
        match text {
            Some(text) if text.needs_escape() => self.escaped(key, text.as_bytes()),
            Some(text) => self.clean(key, text),
            None => {}
        }
    }

    /// The member `key` with `text`, which needs no escape, as a JSON string.
    #[inline(always)]
    pub fn clean(&mut self, key: &'static [u8], text: &str) {
        self.key(key, text.len() + 2);
        self.byte(b'"');
        self.bytes(text.as_bytes());
        self.byte(b'"');
    }

    /// The member `key` with `text` as a JSON string, escaped.
    pub fn escaped(&mut self, key: &'static [u8], text: &[u8]) {
        self.key(key, 0);
        self.through_vec(|out| escape::write_str(out, text));
    }

    /// The member `key` with `json`, one JSON value on one line, as it is.
    #[inline(always)]
    pub fn json(&mut self, key: &'static [u8], json: &[u8]) {
        self.key(key, json.len());
        self.bytes(json);
    }

    /// The member `key` with `value`.
    #[inline(always)]
    pub fn bool(&mut self, key: &'static [u8], value: Option<bool>) {
        if let Some(value) = value {
            self.json(key, if value { b"true" } else { b"false" });
        }
    }

    /// The member `key` with a list of texts, each written as [`Nested::text`] does; nothing
    /// when it is empty.
    pub fn texts(&mut self, key: &'static [u8], texts: &[Str<'_>]) {
        if texts.is_empty() {
            return;
        }
        self.key(key, 0);
        let mut comma = b'[';
        for text in texts {
            self.room(text.len() + 3);
            self.byte(comma);
            comma = b',';
            if text.needs_escape() {
                self.through_vec(|out| escape::write_str(out, text.as_bytes()));
            } else {
                self.byte(b'"');
                self.bytes(text.as_bytes());
                self.byte(b'"');
            }
        }
        self.room(1);
        self.byte(b']');
    }

    /// The member `key` with a list of constant names that need no escape.
    pub fn names(&mut self, key: &'static [u8], names: &[&str]) {
        self.key(key, 1);
        if names.is_empty() {
            self.byte(b'[');
        }
        let mut comma = b'[';
        for name in names {
            self.room(name.len() + 3);
            self.byte(comma);
            comma = b',';
            self.byte(b'"');
            self.bytes(name.as_bytes());
            self.byte(b'"');
        }
        self.room(1);
        self.byte(b']');
    }

    /// Members (`"k":v,...`, on one line) written into the current object as they are;
    /// nothing when `members` is empty.
    pub fn members(&mut self, members: &[u8]) {
        if members.is_empty() {
            return;
        }
        if self.waiting > 0 {
            self.write_waiting();
        }
        self.room(members.len() + 1);
        self.comma();
        self.bytes(members);
        self.first = false;
    }

    /// Closes the document. Panics when an object is still open (a bug of the mapping).
    pub fn finish(mut self) {
        assert!(self.depth == 0, "an object left open");
        self.room(1);
        self.byte(b'}');
        self.count();
    }
}

/// Where the next byte of `out` goes, and the end of its room.
fn room(out: &mut BytesMut) -> (*mut u8, *mut u8) {
    let spare = out.spare_capacity_mut();
    let at = spare.as_mut_ptr().cast::<u8>();
    (at, at.wrapping_add(spare.len()))
}

/// Writes `bytes` at `to` and gives back the place after them: a short run (most keys and
/// values) in two overlapping copies of a fixed size, which compile to a few moves, where
/// `memcpy` would be a call; a constant key, whose length the compiler knows, in one of them.
///
/// # Safety
/// `to` must have room for `bytes.len()` bytes, and not overlap `bytes`.
#[inline(always)]
pub(super) unsafe fn put(to: *mut u8, bytes: &[u8]) -> *mut u8 {
    /// Copies `N` bytes from `at` of `from` to `at` of `to`.
    ///
    /// SAFETY: `from` and `to` hold `at + N` bytes and do not overlap.
    #[inline(always)]
    unsafe fn piece<const N: usize>(from: *const u8, to: *mut u8, at: usize) {
        // SAFETY: as the caller promised.
        unsafe { std::ptr::copy_nonoverlapping(from.add(at), to.add(at), N) }
    }
    let n = bytes.len();
    let from = bytes.as_ptr();
    // SAFETY: `to` has room for `n` bytes and `bytes` holds `n` (as the caller promised);
    // each piece lies within both.
    unsafe {
        match n {
            33.. => std::ptr::copy_nonoverlapping(from, to, n),
            16..=32 => {
                piece::<16>(from, to, 0);
                piece::<16>(from, to, n - 16);
            }
            8..=15 => {
                piece::<8>(from, to, 0);
                piece::<8>(from, to, n - 8);
            }
            4..=7 => {
                piece::<4>(from, to, 0);
                piece::<4>(from, to, n - 4);
            }
            1..=3 => {
                piece::<1>(from, to, 0);
                piece::<1>(from, to, n / 2);
                piece::<1>(from, to, n - 1);
            }
            0 => {}
        }
        to.add(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ecs::Strings;
    use serde_json::json;
    use std::borrow::Cow;

    fn written(write: impl FnOnce(&mut Nested<'_>)) -> serde_json::Value {
        let mut out = BytesMut::new();
        let mut nested = Nested::new(&mut out);
        write(&mut nested);
        nested.finish();
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn objects_appear_with_their_first_member_and_only_then() {
        let doc = written(|w| {
            w.open(b"\"empty\":{");
            w.open(b"\"inner\":{");
            w.object(b"\"now\":{");
            w.close();
            w.text(b"\"none\":", &None);
            w.close();
            w.close();
            w.clean(b"\"a\":", "x");
            w.open(b"\"b\":{");
            w.open(b"\"c\":{");
            w.json(b"\"n\":", b"1");
            w.open(b"\"d\":{");
            w.close();
            w.bool(b"\"t\":", Some(true));
            w.close();
            w.members(br#""geo":{"city_name":"y"},"as":{"number":2}"#);
            w.close();
            let strings = Strings::new();
            w.text(b"\"e\":", &strings.text(Some(Cow::Owned("q\"uote".into()))));
        });
        assert_eq!(
            doc,
            json!({
                "empty": {"inner": {"now": {}}},
                "a": "x",
                "b": {"c": {"n": 1, "t": true}, "geo": {"city_name": "y"}, "as": {"number": 2}},
                "e": "q\"uote",
            })
        );
        assert_eq!(written(|_| {}), json!({}));
    }

    #[test]
    fn lists_are_written_whole_and_empty_ones_not_at_all() {
        let strings = Strings::new();
        let doc = written(|w| {
            w.texts(b"\"none\":", &[]);
            w.open(b"\"related\":{");
            w.texts(
                b"\"user\":",
                &[Str::plain("ann"), strings.keep(Cow::Owned("b\\ob".into()))],
            );
            w.close();
            w.names(b"\"type\":", &["info", "access"]);
            w.names(b"\"empty\":", &[]);
            w.escaped(b"\"text\":", b"{\"a\":1}");
        });
        assert_eq!(
            doc,
            json!({
                "related": {"user": ["ann", "b\\ob"]},
                "type": ["info", "access"],
                "empty": [],
                "text": "{\"a\":1}",
            })
        );
    }

    #[test]
    #[should_panic(expected = "left open")]
    fn an_object_left_open_is_a_bug() {
        written(|w| w.open(b"\"a\":{"));
    }
}
