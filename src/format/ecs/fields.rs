//! Fields: one ECS document's values, gathered in any order and written as nested JSON.
//!
//! Each format declares every dotted path its documents may have, once, as its [`Paths`]; code
//! names a path by its place in that list, found at compile time (`const { slot(PATHS,
//! "event.action") }`, which each format wraps in a small macro), so setting a field is one
//! store. A [`Layout`], made once per
//! list, knows the paths' order and nesting, and [`Fields::write`] walks it: one JSON object
//! with the paths as nested objects and keys in order (`{"event":{"action":...}}`), as
//! Elastic's own ingest pipelines leave their documents, with no sort and no path parsed per
//! document.
//!
//! Pure: no I/O. Setting a path twice keeps the first value, so the document stays valid JSON.

use std::borrow::Cow;

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

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut n = 0;
    while n < a.len() {
        if a[n] != b[n] {
            return false;
        }
        n += 1;
    }
    true
}

/// The most paths a layout may have (a document's set fields are one bit each of a `u128`).
const MOST: usize = 128;

/// What writing a document of a list of paths needs, computed once.
#[derive(Debug)]
pub struct Layout {
    /// Per slot, its rank: its place in path order.
    ranks: Vec<u8>,
    /// Per rank, how to write its path.
    steps: Vec<Step>,
    /// Per object (by id, from 1), `"name":{`.
    objects: Vec<Vec<u8>>,
}

/// How one path is written.
#[derive(Debug)]
struct Step {
    /// The ids of the objects that hold the path, outermost in the lowest byte (ids start at
    /// 1, so a zero byte is no object): two paths share the objects of their equal low bytes.
    chain: u64,
    /// How many objects hold it.
    depth: u8,
    /// `"leaf":`.
    key: Vec<u8>,
}

/// The deepest a path may be nested (its objects' ids are the bytes of a `u64`).
const DEEPEST: usize = 8;

impl Layout {
    /// The layout of [`COMMON`] and a format's `own` paths. Panics when a path is listed
    /// twice, is both a field and an object holding others, when there are more than 128,
    /// or one is nested more than 8 deep: a bug of the format, which its tests catch.
    pub fn new(own: Paths) -> Layout {
        let paths: Vec<&'static str> = COMMON.iter().chain(own).copied().collect();
        assert!(paths.len() <= MOST, "more than {MOST} paths");
        let mut order: Vec<usize> = (0..paths.len()).collect();
        order.sort_by_key(|&n| paths[n]);
        let mut ranks = vec![0; paths.len()];
        for (rank, &slot) in order.iter().enumerate() {
            ranks[slot] = u8::try_from(rank).expect("at most 128 paths");
        }
        // Object 0 is none: ids start at 1.
        let mut objects: Vec<(String, Vec<u8>)> = vec![(String::new(), Vec::new())];
        let mut steps = Vec::with_capacity(paths.len());
        for &n in &order {
            let path = paths[n];
            let mut prefix = String::new();
            let parts: Vec<&str> = path.split('.').collect();
            let (leaf, parents) = parts.split_last().expect("a path has a step");
            assert!(parents.len() <= DEEPEST, "{path} is nested too deep");
            let mut chain = 0u64;
            for (level, step) in parents.iter().enumerate() {
                prefix.push_str(step);
                prefix.push('.');
                let id = match objects.iter().position(|(p, _)| *p == prefix) {
                    Some(id) => id,
                    None => {
                        objects.push((prefix.clone(), format!("\"{step}\":{{").into_bytes()));
                        objects.len() - 1
                    }
                };
                let id = u8::try_from(id).expect("at most 255 objects");
                chain |= u64::from(id) << (8 * level);
            }
            steps.push(Step {
                chain,
                depth: parents.len() as u8,
                key: format!("\"{leaf}\":").into_bytes(),
            });
        }
        for pair in order.windows(2) {
            let (a, b) = (paths[pair[0]], paths[pair[1]]);
            assert!(a != b, "{a} is listed twice");
            assert!(
                !b.strip_prefix(a).is_some_and(|rest| rest.starts_with('.')),
                "{a} is a field and holds {b}"
            );
        }
        Layout {
            ranks,
            steps,
            objects: objects.into_iter().map(|(_, key)| key).collect(),
        }
    }
}

/// The values of one document, by slot of its layout.
#[derive(Debug)]
pub struct Fields<'a> {
    layout: &'static Layout,
    /// Bit `rank` is set when the path of that rank has a value.
    set: u128,
    /// Per rank, where its value is in `values` (when set).
    places: [u8; MOST],
    /// The values, in the order they were set.
    values: Vec<Value<'a>>,
    /// The addresses of the record whose borrowed text needs no escape ([`Fields::read_from`]).
    clean: std::ops::Range<usize>,
}

impl<'a> Fields<'a> {
    pub fn new(layout: &'static Layout) -> Self {
        Fields {
            layout,
            set: 0,
            places: [0; MOST],
            values: Vec::with_capacity(48),
            clean: 0..0,
        }
    }

    /// Fields whose text borrowed from `record` was read from its strings without an escape
    /// (as [`Object::text`] reads them, or a number or literal): written as they are, with no
    /// escape to look for. Text with an escape is decoded, so owned, and escaped again.
    pub fn read_from(layout: &'static Layout, record: &'a str) -> Self {
        let range = record.as_bytes().as_ptr_range();
        Fields {
            clean: range.start as usize..range.end as usize,
            ..Fields::new(layout)
        }
    }

    /// Sets the path at `slot` to `value`, unless it is set already.
    pub fn set(&mut self, slot: usize, value: impl Into<Value<'a>>) {
        let rank = self.layout.ranks[slot];
        let bit = 1u128 << rank;
        if self.set & bit == 0 {
            self.set |= bit;
            self.places[usize::from(rank)] = self.values.len() as u8;
            self.values.push(value.into());
        }
    }

    /// Sets the path at `slot` to `value` when there is one.
    pub fn set_some(&mut self, slot: usize, value: Option<impl Into<Value<'a>>>) {
        if let Some(value) = value {
            self.set(slot, value);
        }
    }

    /// Sets each slot to the text of its key in `object` (see
    /// [`Object::text`]), where it has one.
    pub fn texts(&mut self, object: &mut Object<'a>, pairs: &[(&str, usize)]) {
        for &(key, slot) in pairs {
            self.set_some(slot, object.value(key));
        }
    }

    /// [`Fields::texts`] of the object at `key` of `object`, whose members not in `pairs`
    /// stay in `object`'s rest.
    pub fn texts_of(&mut self, object: &mut Object<'a>, key: &str, pairs: &[(&str, usize)]) {
        if let Some(mut inner) = object.object(key) {
            self.texts(&mut inner, pairs);
            object.leave(key, inner.rest());
        }
    }

    /// Whether the path at `slot` is set.
    pub fn has(&self, slot: usize) -> bool {
        self.set & (1u128 << self.layout.ranks[slot]) != 0
    }

    /// The value set at `slot`.
    pub fn get(&self, slot: usize) -> Option<&Value<'a>> {
        let rank = usize::from(self.layout.ranks[slot]);
        (self.set & (1u128 << rank) != 0).then(|| &self.values[usize::from(self.places[rank])])
    }

    /// The text set at `slot`, if any.
    pub fn text(&self, slot: usize) -> Option<Cow<'a, str>> {
        match self.get(slot)? {
            Value::Text(text) => Some(text.clone()),
            Value::Clean(text) => Some(Cow::Borrowed(text)),
            _ => None,
        }
    }

    /// Appends the document: one JSON object, the paths nested, keys in order.
    pub fn write(self, out: &mut Vec<u8>) {
        const CLOSES: &[u8; DEEPEST] = b"}}}}}}}}";
        let layout = self.layout;
        out.push(b'{');
        // The objects open, as a chain, and how many.
        let (mut open, mut depth) = (0u64, 0usize);
        let mut first = true;
        let mut set = self.set;
        while set != 0 {
            let rank = set.trailing_zeros() as usize;
            set &= set - 1;
            let step = &layout.steps[rank];
            let value = &self.values[usize::from(self.places[rank])];
            // The objects both chains share: their equal low bytes.
            let common = ((open ^ step.chain).trailing_zeros() as usize / 8)
                .min(depth)
                .min(usize::from(step.depth));
            if common < depth {
                out.extend_from_slice(&CLOSES[..depth - common]);
                first = false;
            }
            for level in common..usize::from(step.depth) {
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
                let id = (step.chain >> (8 * level)) as u8;
                out.extend_from_slice(&layout.objects[usize::from(id)]);
                first = true;
            }
            (open, depth) = (step.chain, usize::from(step.depth));
            if let Value::Members(members) = value {
                if !members.is_empty() {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    out.extend_from_slice(members);
                }
                continue;
            }
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            out.extend_from_slice(&step.key);
            write_value(out, value, &self.clean);
        }
        out.extend_from_slice(&CLOSES[..depth]);
        out.push(b'}');
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value<'_>, clean: &std::ops::Range<usize>) {
    let text = |out: &mut Vec<u8>, text: &Cow<'_, str>| match text {
        Cow::Borrowed(text) if clean.contains(&(text.as_ptr() as usize)) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        text => write_str(out, text),
    };
    match value {
        Value::Text(t) => text(out, t),
        Value::Clean(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        Value::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
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
                out.push(b'"');
                out.extend_from_slice(name.as_bytes());
                out.push(b'"');
            }
            out.push(b']');
        }
        Value::Json(raw) => one_line(out, raw),
        Value::JsonText(raw) => escape::write_str(out, raw),
        // Written by [`Fields::write`] into their object, never as a member's value.
        Value::Members(_) => out.extend_from_slice(b"null"),
    }
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
    fn slots_become_nested_objects_in_key_order() {
        let mut fields = Fields::new(layout());
        fields.set(
            const { slot(PATHS, "event.type") },
            Value::List(vec!["info".into()]),
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
    #[should_panic(expected = "is a field and holds")]
    fn a_path_cannot_be_a_field_and_an_object() {
        Layout::new(&["a.b", "a.b.c"]);
    }
}
