//! Fields: one ECS document's values, gathered in any order and written as nested JSON.
//!
//! Each format declares every dotted path its documents may have, once, as its [`Paths`]; code
//! names a path by its place in that list, found at compile time (`const { slot(PATHS,
//! "event.action") }`, which each format wraps in a small macro). A [`Layout`], made once per
//! list, knows which object holds each path. Setting a field writes it at once, key and value,
//! into the buffer of the object that holds it ([`Fields::set`]); [`Fields::write`] then joins
//! the objects that have something, each written once, into one JSON object with the paths as
//! nested objects (`{"event":{"action":...}}`): no value is kept to be written later, no
//! path is parsed per document, and the buffers are the thread's, reused from one document
//! to the next. Keys come in the order they were set.
//!
//! Pure: no I/O. Setting a path twice keeps the first value, so the document stays valid JSON.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Range;

use super::known::same;
use super::object::Object;

use super::value::Value;
use crate::format::document::write_str;
use crate::format::escape;

/// Every dotted path a format's documents may have.
pub type Paths = &'static [&'static str];

/// The paths every layout has first, in this order, besides those its format lists: what
/// every ECS document here may carry (see `Stream::common` and `source` in [`super`]).
pub const COMMON: Paths = &[
    "@timestamp",
    "data_stream.dataset",
    "data_stream.namespace",
    "data_stream.type",
    "ecs.version",
    "event.action",
    "event.category",
    "event.created",
    "event.dataset",
    "event.id",
    "event.kind",
    "event.outcome",
    "event.provider",
    "event.type",
    "related.ip",
    "related.user",
    "source.address",
    "source.geo",
    "source.ip",
    "user.email",
    "user.id",
    "user.name",
    "user_agent.original",
];

/// The place of `path` among [`COMMON`] then `paths`; a compile error (a panic in const
/// evaluation) when it is in neither. Use it in a `const { }` block so that it runs at
/// compile time.
pub const fn slot(paths: &[&str], path: &str) -> usize {
    let mut n = 0;
    while n < COMMON.len() {
        if same(COMMON[n].as_bytes(), path.as_bytes()) {
            return n;
        }
        n += 1;
    }
    let mut n = 0;
    while n < paths.len() {
        if same(paths[n].as_bytes(), path.as_bytes()) {
            return COMMON.len() + n;
        }
        n += 1;
    }
    panic!("an ECS path that the layout does not list");
}

/// The most paths a layout may have (a document's set fields are one bit each of two `u64`s).
const MOST: usize = 128;

/// The most objects a layout may have (those with something are one bit each of a `u64`).
const MOST_OBJECTS: usize = 64;

/// The most objects a path may be inside, the document among them.
const DEEPEST: usize = 16;

/// Where each path of a list goes, computed once.
#[derive(Debug)]
pub struct Layout {
    /// Per slot, the object that holds it and `,"leaf":`.
    places: Vec<(u8, Vec<u8>)>,
    /// The objects, the document itself first.
    objects: Vec<Node>,
}

/// One object of a layout. Objects are numbered depth first, the document 0: each object's
/// own objects come right after it, before its next sibling, so the objects a document uses,
/// taken in the order of their numbers, open and close as they nest.
#[derive(Debug)]
struct Node {
    /// `"name":{` (`{` for the document).
    key: Vec<u8>,
    /// Its bit and those of the objects that hold it.
    lineage: u64,
}

impl Layout {
    /// The layout of [`COMMON`] and a format's `own` paths. Panics when a path is listed
    /// twice, is both a field and an object holding others, or when there are more than 128
    /// paths or 64 objects: a bug of the format, which its tests catch.
    pub fn new(own: Paths) -> Layout {
        let paths: Vec<&'static str> = COMMON.iter().chain(own).copied().collect();
        assert!(paths.len() <= MOST, "more than {MOST} paths");
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        for pair in sorted.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(a != b, "{a} is listed twice");
            assert!(
                !b.strip_prefix(a).is_some_and(|rest| rest.starts_with('.')),
                "{a} is a field and holds {b}"
            );
        }
        // The objects as met, each with its key and the objects it holds; the document is
        // object 0, its prefix empty.
        let mut prefixes = vec![String::new()];
        let mut met: Vec<(Vec<u8>, Vec<usize>)> = vec![(b"{".to_vec(), Vec::new())];
        let mut places = Vec::with_capacity(paths.len());
        for path in paths {
            let (parents, leaf) = path.rsplit_once('.').map_or(("", path), |(p, l)| (p, l));
            let mut node = 0;
            let mut prefix = String::new();
            assert!(
                parents.split('.').count() < DEEPEST,
                "{path} is inside more than {DEEPEST} objects"
            );
            for step in parents.split('.').filter(|s| !s.is_empty()) {
                prefix.push_str(step);
                prefix.push('.');
                node = match prefixes.iter().position(|p| *p == prefix) {
                    Some(found) => found,
                    None => {
                        let id = met.len();
                        met.push((format!("\"{step}\":{{").into_bytes(), Vec::new()));
                        met[node].1.push(id);
                        prefixes.push(prefix.clone());
                        id
                    }
                };
            }
            places.push((node, format!(",\"{leaf}\":").into_bytes()));
        }
        assert!(
            met.len() <= MOST_OBJECTS,
            "more than {MOST_OBJECTS} objects"
        );
        // Numbered depth first: `number[n]` is the number of the object met `n`th.
        let mut number = vec![0u8; met.len()];
        let mut objects: Vec<Node> = Vec::with_capacity(met.len());
        let mut stack = vec![(0usize, 0u8)];
        while let Some((n, parent)) = stack.pop() {
            let id = objects.len() as u8;
            number[n] = id;
            let lineage = objects.get(usize::from(parent)).map_or(0, |p| p.lineage) | 1 << id;
            objects.push(Node {
                key: std::mem::take(&mut met[n].0),
                lineage,
            });
            stack.extend(met[n].1.iter().rev().map(|&child| (child, id)));
        }
        let places = places
            .into_iter()
            .map(|(node, key)| (number[node], key))
            .collect();
        Layout { places, objects }
    }
}

thread_local! {
    /// Each thread's object buffers, kept between documents.
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer grown past this by one large document is not kept for the next.
const KEPT_CAPACITY: usize = 64 * 1024;

/// One document's fields, each written into the object that holds it as it is set.
#[derive(Debug)]
pub struct Fields<'a> {
    layout: &'static Layout,
    /// Bit `slot % 64` of word `slot / 64` is set when the path of that slot has a value
    /// (two words: a shift of a `u128` by a variable amount costs several instructions).
    set: [u64; 2],
    /// Bit `object` is set when that object has something.
    used: u64,
    /// Per object, its members so far, each after a `,`.
    buffers: Vec<Vec<u8>>,
    /// The addresses of the record whose borrowed text needs no escape ([`Fields::read_from`]).
    clean: Range<usize>,
    text: std::marker::PhantomData<&'a str>,
}

impl<'a> Fields<'a> {
    pub fn new(layout: &'static Layout) -> Self {
        let mut buffers = BUFFERS
            .try_with(|kept| std::mem::take(&mut *kept.borrow_mut()))
            .unwrap_or_default();
        buffers.resize_with(layout.objects.len().max(buffers.len()), Vec::new);
        for buffer in &mut buffers {
            buffer.clear();
        }
        Fields {
            layout,
            set: [0; 2],
            used: 0,
            buffers,
            clean: 0..0,
            text: std::marker::PhantomData,
        }
    }

    /// Fields whose text borrowed from `record` was read from its strings without an escape
    /// (as [`Object::text`] reads them, or a number or literal): written as they are, with no
    /// escape to look for. Text with an escape is decoded, so owned, and escaped again.
    /// `record` is a document, on one line as every document is: its own JSON is written as
    /// it is, with no line break to look for.
    pub fn read_from(layout: &'static Layout, record: &'a str) -> Self {
        let range = record.as_bytes().as_ptr_range();
        let mut fields = Fields::new(layout);
        fields.clean = range.start as usize..range.end as usize;
        fields
    }

    /// The word of [`Fields::set`] that holds the bit of `slot`, and that bit.
    #[inline(always)]
    fn bit(slot: usize) -> (usize, u64) {
        (slot / 64 % 2, 1u64 << (slot % 64))
    }

    /// Marks the path at `slot` set; returns the object that holds it and its `,"leaf":`,
    /// or `None` when it was set already.
    #[inline]
    fn claim(&mut self, slot: usize) -> Option<(usize, &'static [u8])> {
        if self.has(slot) {
            return None;
        }
        let (word, bit) = Self::bit(slot);
        self.set[word] |= bit;
        let (object, key) = &self.layout.places[slot];
        Some((usize::from(*object), key))
    }

    /// Sets the path at `slot` to `value`, unless it is set already.
    #[inline]
    pub fn set<'v>(&mut self, slot: usize, value: impl Into<Value<'v>>) {
        let Some((object, key)) = self.claim(slot) else {
            return;
        };
        let buffer = &mut self.buffers[object];
        match value.into() {
            // The most common value, a record's text as it was written: in one go.
            Value::Clean(text) => {
                buffer.reserve(key.len() + text.len() + 2);
                put(buffer, key);
                quoted(buffer, text);
            }
            Value::Members(members) => {
                if members.is_empty() {
                    return;
                }
                buffer.push(b',');
                buffer.extend_from_slice(&members);
            }
            value => {
                put(buffer, key);
                write_value(buffer, value, &self.clean);
            }
        }
        self.used |= self.layout.objects[object].lineage;
    }

    /// Marks the paths at `slots` set without writing them: [`Value::Members`] written under
    /// another slot of their object hold them, and a later [`Fields::set`] must not write
    /// them again.
    pub fn held(&mut self, slots: &[usize]) {
        for &slot in slots {
            let (word, bit) = Self::bit(slot);
            self.set[word] |= bit;
        }
    }

    /// Sets the path at `slot` to `value` when there is one.
    pub fn set_some<'v>(&mut self, slot: usize, value: Option<impl Into<Value<'v>>>) {
        if let Some(value) = value {
            self.set(slot, value);
        }
    }

    /// Sets each slot to the text of its key in `object` (see [`Object::text`]), where it
    /// has one.
    pub fn texts(&mut self, object: &mut Object<'a>, pairs: &[(&str, usize)]) {
        for &(key, slot) in pairs {
            self.set_some(slot, object.text(key).map(Value::read));
        }
    }

    /// Whether the path at `slot` is set.
    #[inline]
    pub fn has(&self, slot: usize) -> bool {
        let (word, bit) = Self::bit(slot);
        self.set[word] & bit != 0
    }

    /// Appends the document: one JSON object, the paths nested. The objects that have
    /// something are written in the order of their numbers, which is the order they nest in:
    /// before each, the objects open that do not hold it close. How many close, and whether a
    /// `,` goes before the next key, are counted rather than branched on: the objects a
    /// document uses vary from one document to the next.
    pub fn write(self, out: &mut Vec<u8>) {
        let objects = &self.layout.objects;
        let used = self.used | 1;
        let mut size = 2;
        let mut rest = used;
        while rest != 0 {
            let id = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            size += objects[id].key.len() + self.buffers[id].len() + 2;
        }
        out.reserve(size + DEEPEST);
        // The objects open, by their bits; whether the innermost has nothing written yet.
        let mut open = 1u64;
        let mut first = true;
        let mut rest = used;
        while rest != 0 {
            let id = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let node = &objects[id];
            let closing = (open & !node.lineage).count_ones() as usize;
            close(out, closing);
            first &= closing == 0;
            // A `,` unless it is the first thing in its object.
            out.push(b',');
            out.truncate(out.len() - usize::from(first));
            put(out, &node.key);
            let own = &self.buffers[id];
            // Each member is after a `,`: the first one's is not written.
            put(out, own.get(1..).unwrap_or_default());
            first = own.is_empty();
            open = node.lineage;
        }
        close(out, open.count_ones() as usize);
    }
}

/// Appends `n` `}` (at most [`DEEPEST`]) in one copy of a fixed size, with no branch on `n`.
#[inline(always)]
fn close(out: &mut Vec<u8>, n: usize) {
    debug_assert!(n <= DEEPEST);
    out.reserve(DEEPEST);
    let len = out.len();
    // SAFETY: the spare capacity holds `DEEPEST` bytes (reserved above), all written; the
    // first `n` of them are counted in.
    unsafe {
        std::ptr::copy_nonoverlapping([b'}'; DEEPEST].as_ptr(), out.as_mut_ptr().add(len), DEEPEST);
        out.set_len(len + n.min(DEEPEST));
    }
}

impl Drop for Fields<'_> {
    fn drop(&mut self) {
        let mut buffers = std::mem::take(&mut self.buffers);
        buffers.retain(|buffer| buffer.capacity() <= KEPT_CAPACITY);
        let _ = BUFFERS.try_with(|kept| *kept.borrow_mut() = buffers);
    }
}

/// Appends `bytes` to `buffer` (see [`super::nested::put`]: a short run in a few moves).
#[inline(always)]
fn put(buffer: &mut Vec<u8>, bytes: &[u8]) {
    buffer.reserve(bytes.len());
    let len = buffer.len();
    // SAFETY: the spare capacity holds `bytes` (reserved above), which a borrowed slice
    // cannot overlap; they are then written.
    unsafe {
        super::nested::put(buffer.as_mut_ptr().add(len), bytes);
        buffer.set_len(len + bytes.len());
    }
}

/// Appends `value` as JSON: text borrowed from `clean` as it is, other text escaped.
fn write_value(out: &mut Vec<u8>, value: Value<'_>, clean: &Range<usize>) {
    let text = |out: &mut Vec<u8>, text: &Cow<'_, str>| match text {
        Cow::Borrowed(text) if clean.contains(&(text.as_ptr() as usize)) => quoted(out, text),
        text => write_str(out, text),
    };
    match value {
        Value::Text(t) => text(out, &t),
        Value::Clean(text) => quoted(out, text),
        Value::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::List(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                text(out, item);
            }
            out.push(b']');
        }
        Value::Names(names) => {
            out.push(b'[');
            for (n, name) in names.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                quoted(out, name);
            }
            out.push(b']');
        }
        // A record is on one line (see [`Fields::read_from`]); other JSON may not be.
        Value::Json(raw) if clean.contains(&(raw.as_ptr() as usize)) => out.extend_from_slice(&raw),
        Value::Json(raw) => one_line(out, &raw),
        Value::JsonText(raw) => escape::write_str(out, &raw),
        // Written by [`Fields::set`] into their object, never as a member's value.
        Value::Members(_) => out.extend_from_slice(b"null"),
    }
}

/// Appends `text`, which needs no escape, as a JSON string.
#[inline]
fn quoted(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    put(out, text.as_bytes());
    out.push(b'"');
}

/// Appends `raw` JSON without raw line breaks (only whitespace between tokens can hold them).
fn one_line(out: &mut Vec<u8>, raw: &[u8]) {
    if memchr::memchr2(b'\n', b'\r', raw).is_none() {
        out.extend_from_slice(raw);
        return;
    }
    out.extend(
        raw.iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PATHS: Paths = &[
        "aws.cloudtrail.flattened.x",
        "aws.cloudtrail.request_parameters",
        "source.as.number",
        "aws.cloudtrail.read_only",
    ];

    fn layout() -> &'static Layout {
        static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        LAYOUT.get_or_init(|| Layout::new(PATHS))
    }

    fn written(fields: Fields<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        fields.write(&mut out);
        assert!(!out.contains(&b'\n'));
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn slots_become_nested_objects() {
        let mut fields = Fields::new(layout());
        fields.set(
            const { slot(PATHS, "event.type") },
            Value::List(vec!["info".into()].into()),
        );
        fields.set(const { slot(PATHS, "@timestamp") }, "t");
        fields.set(
            const { slot(PATHS, "aws.cloudtrail.flattened.x") },
            Value::Json(b"{\"a\":\n1}"[..].into()),
        );
        fields.set(const { slot(PATHS, "event.action") }, "A");
        fields.set(
            const { slot(PATHS, "aws.cloudtrail.request_parameters") },
            Value::JsonText(b"{\"a\":1}"[..].into()),
        );
        fields.set(
            const { slot(PATHS, "source.as.number") },
            Value::Integer(29518),
        );
        fields.set(
            const { slot(PATHS, "aws.cloudtrail.read_only") },
            Value::Bool(true),
        );
        fields.set(const { slot(PATHS, "event.action") }, "second");
        fields.set(
            const { slot(PATHS, "source.geo") },
            Value::Members(br#""geo":{"city_name":"x"}"#[..].into()),
        );
        fields.set(const { slot(PATHS, "source.ip") }, "1.2.3.4");
        assert_eq!(
            written(fields),
            json!({
                "@timestamp": "t",
                "aws": {"cloudtrail": {
                    "flattened": {"x": {"a": 1}},
                    "read_only": true,
                    "request_parameters": "{\"a\":1}",
                }},
                "event": {"action": "A", "type": ["info"]},
                "source": {"as": {"number": 29518}, "geo": {"city_name": "x"}, "ip": "1.2.3.4"},
            })
        );
        assert_eq!(written(Fields::new(layout())), json!({}));
        assert_eq!(
            const { slot(PATHS, "@timestamp") },
            0,
            "the common paths come first"
        );
        let mut only = Fields::new(layout());
        only.set(const { slot(PATHS, "source.ip") }, "1.2.3.4");
        assert_eq!(written(only), json!({"source": {"ip": "1.2.3.4"}}));
    }

    #[test]
    fn deep_and_shallow_paths_open_and_close_their_objects() {
        const DEEP: Paths = &[
            "a.b.c.d.e.f.g.h.leaf",
            "a.b.c.d.e.f.g.other",
            "a.b.x",
            "a.y",
            "z",
        ];
        static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        let layout = LAYOUT.get_or_init(|| Layout::new(DEEP));
        let mut fields = Fields::new(layout);
        for (n, path) in DEEP.iter().enumerate().rev() {
            fields.set(slot(DEEP, path), Value::Integer(n as i64));
        }
        fields.set(slot(DEEP, "event.id"), "e");
        assert_eq!(
            written(fields),
            json!({
                "a": {
                    "b": {"c": {"d": {"e": {"f": {"g": {"h": {"leaf": 0}, "other": 1}}}}}, "x": 2},
                    "y": 3,
                },
                "event": {"id": "e"},
                "z": 4,
            })
        );
    }

    #[test]
    fn each_document_starts_with_empty_objects() {
        let mut unwritten = Fields::new(layout());
        unwritten.set(const { slot(PATHS, "source.ip") }, "1.2.3.4");
        drop(unwritten);
        let mut first = Fields::new(layout());
        first.set(const { slot(PATHS, "event.action") }, "A");
        assert_eq!(written(first), json!({"event": {"action": "A"}}));
        let mut second = Fields::new(layout());
        second.set(
            const { slot(PATHS, "aws.cloudtrail.read_only") },
            Value::Bool(false),
        );
        assert_eq!(
            written(second),
            json!({"aws": {"cloudtrail": {"read_only": false}}})
        );
    }

    #[test]
    #[should_panic(expected = "is a field and holds")]
    fn a_path_cannot_be_a_field_and_an_object() {
        Layout::new(&["a.b", "a.b.c"]);
    }
}
