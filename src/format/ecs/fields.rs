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

/// What writing a document of a list of paths needs, computed once.
#[derive(Debug)]
pub struct Layout {
    paths: Vec<&'static str>,
    /// The slots in path order.
    order: Vec<usize>,
    /// Per slot, the objects that hold it, outermost first (ids into `objects`).
    chains: Vec<Vec<usize>>,
    /// Per object, `"name":{`.
    objects: Vec<Vec<u8>>,
    /// Per slot, `"leaf":`.
    keys: Vec<Vec<u8>>,
}

impl Layout {
    /// The layout of [`COMMON`] and a format's `own` paths. Panics when a path is listed
    /// twice, or is both a field and an object holding others: a bug of the format, which
    /// its tests catch.
    pub fn new(own: Paths) -> Layout {
        let paths: Vec<&'static str> = COMMON.iter().chain(own).copied().collect();
        let mut order: Vec<usize> = (0..paths.len()).collect();
        order.sort_by_key(|&n| paths[n]);
        let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
        let mut chains = vec![Vec::new(); paths.len()];
        let mut keys = vec![Vec::new(); paths.len()];
        for &n in &order {
            let path = paths[n];
            let mut prefix = String::new();
            let steps: Vec<&str> = path.split('.').collect();
            let (leaf, parents) = steps.split_last().expect("a path has a step");
            for step in parents {
                prefix.push_str(step);
                prefix.push('.');
                let id = match objects.iter().position(|(p, _)| *p == prefix) {
                    Some(id) => id,
                    None => {
                        objects.push((prefix.clone(), format!("\"{step}\":{{").into_bytes()));
                        objects.len() - 1
                    }
                };
                chains[n].push(id);
            }
            keys[n] = format!("\"{leaf}\":").into_bytes();
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
            paths,
            order,
            chains,
            objects: objects.into_iter().map(|(_, key)| key).collect(),
            keys,
        }
    }
}

/// The values of one document, by slot of its layout.
#[derive(Debug)]
pub struct Fields<'a> {
    layout: &'static Layout,
    values: Vec<Option<Value<'a>>>,
}

impl<'a> Fields<'a> {
    pub fn new(layout: &'static Layout) -> Self {
        Fields {
            layout,
            values: std::iter::repeat_with(|| None)
                .take(layout.paths.len())
                .collect(),
        }
    }

    /// Sets the path at `slot` to `value`, unless it is set already.
    pub fn set(&mut self, slot: usize, value: impl Into<Value<'a>>) {
        let place = &mut self.values[slot];
        if place.is_none() {
            *place = Some(value.into());
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
        self.values[slot].is_some()
    }

    /// The value set at `slot`.
    pub fn get(&self, slot: usize) -> Option<&Value<'a>> {
        self.values[slot].as_ref()
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
        let layout = self.layout;
        out.push(b'{');
        let mut open: &[usize] = &[];
        let mut first = true;
        for &slot in &layout.order {
            let Some(value) = &self.values[slot] else {
                continue;
            };
            let chain = &layout.chains[slot][..];
            let common = open.iter().zip(chain).take_while(|(a, b)| a == b).count();
            for _ in common..open.len() {
                out.push(b'}');
                first = false;
            }
            for &object in &chain[common..] {
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
                out.extend_from_slice(&layout.objects[object]);
                first = true;
            }
            open = chain;
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
            out.extend_from_slice(&layout.keys[slot]);
            write_value(out, value);
        }
        for _ in open {
            out.push(b'}');
        }
        out.push(b'}');
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Text(text) => write_str(out, text),
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
                write_str(out, item);
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
        Value::JsonText(raw) => write_json_text(out, raw),
        // Written by [`Fields::write`] into their object, never as a member's value.
        Value::Members(_) => out.extend_from_slice(b"null"),
    }
}

/// Whether any byte of `word` is `"`, `\` or below 0x20 (a byte that a JSON string must
/// escape), eight at a time.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    zero_byte(word ^ (ONES * u64::from(b'"'))) != 0
        || zero_byte(word ^ (ONES * u64::from(b'\\'))) != 0
        || below_space != 0
}

/// Appends the UTF-8 bytes `text` as a JSON string: `"` and `\` escaped, control bytes (JSON's
/// whitespace between tokens among them) as their short escapes or `\u00XX`. Eight bytes at a
/// time where none needs an escape.
fn write_json_text(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + text.len() / 8 + 2);
    out.push(b'"');
    let mut at = 0;
    while at < text.len() {
        if let Some(chunk) = text.get(at..at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if !needs_escape(word) {
                out.extend_from_slice(chunk);
                at += 8;
                continue;
            }
        }
        let end = (at + 8).min(text.len());
        for &b in &text[at..end] {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                _ => out.push(b),
            }
        }
        at = end;
    }
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
    #[should_panic(expected = "is a field and holds")]
    fn a_path_cannot_be_a_field_and_an_object() {
        Layout::new(&["a.b", "a.b.c"]);
    }

    #[test]
    fn json_text_is_a_json_string_of_the_bytes() {
        for text in [
            "",
            "{\"a\":\n [1, \"b\\\\c\"]}",
            "tab\there\u{1}\u{7f}\r",
            "\u{e9}t\u{e9} and a longer run of plain text past eight bytes \"q\"",
        ] {
            let mut out = Vec::new();
            write_json_text(&mut out, text.as_bytes());
            assert_eq!(
                serde_json::from_slice::<String>(&out).unwrap(),
                text,
                "{}",
                String::from_utf8_lossy(&out)
            );
            assert!(!out.contains(&b'\n'));
        }
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b'a', b'a', b'a', b, b'a', b'a', b'a', b'a']);
            assert_eq!(
                needs_escape(word),
                b == b'"' || b == b'\\' || b < 0x20,
                "{b:#x}"
            );
        }
    }
}
