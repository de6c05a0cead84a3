//! ECS: what every format's Elastic Common Schema document shares.
//!
//! A format that writes ECS documents gathers its fields as [`Fields`]: dotted ECS paths
//! (`event.action`, `source.geo`) with their values, in any order. [`Fields::write`] sorts
//! them and writes one JSON object with the paths as nested objects (`{"event":{"action":
//! ...}}`), the way Elastic's own ingest pipelines leave their documents. Values are text,
//! numbers, booleans, lists of text, or JSON written as it came (a record's own object).
//! Also here: what makes an address an IP the cluster accepts ([`ip`]), and the `ecs`,
//! `data_stream` and `event.dataset` fields every document carries ([`Stream`]).
//!
//! Pure: no I/O. Gathering the same path twice is a bug of the format; the first one wins
//! and the other is not written, so the document stays valid JSON.

pub mod object;

use std::borrow::Cow;
use std::net::IpAddr;

use super::document::write_str;
pub use object::{text, Object};

/// The ECS version the documents follow (that of Elastic's AWS integration).
pub const ECS_VERSION: &str = "8.11.0";

/// One value of an ECS document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
    Bool(bool),
    /// A list of text (written even when it holds one item, as ECS arrays are).
    List(Vec<Cow<'a, str>>),
    /// JSON bytes written as they are (a record's own object or array).
    Json(Cow<'a, [u8]>),
    /// JSON bytes written as a JSON string of their text.
    JsonText(Cow<'a, [u8]>),
    /// Members (`"k":v,...`) written into the object that holds the path, whose own last
    /// step is not written: enrichment answers that bring several keys at once.
    Members(Cow<'a, [u8]>),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(text: &'a str) -> Self {
        Value::Text(Cow::Borrowed(text))
    }
}

impl From<String> for Value<'_> {
    fn from(text: String) -> Self {
        Value::Text(Cow::Owned(text))
    }
}

impl<'a> From<Cow<'a, str>> for Value<'a> {
    fn from(text: Cow<'a, str>) -> Self {
        Value::Text(text)
    }
}

/// The fields of one document, gathered in any order.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    fields: Vec<(&'static str, Value<'a>)>,
}

impl<'a> Fields<'a> {
    pub fn with_capacity(n: usize) -> Self {
        Fields {
            fields: Vec::with_capacity(n),
        }
    }

    /// Sets `path` (dotted) to `value`.
    pub fn set(&mut self, path: &'static str, value: impl Into<Value<'a>>) {
        self.fields.push((path, value.into()));
    }

    /// Sets `path` to `value` when there is one.
    pub fn set_some(&mut self, path: &'static str, value: Option<impl Into<Value<'a>>>) {
        if let Some(value) = value {
            self.set(path, value);
        }
    }

    /// Sets each path to the text of its key in `object` (see [`Object::text`]), where it
    /// has one.
    pub fn texts(&mut self, object: &mut Object<'a>, pairs: &[(&str, &'static str)]) {
        for &(key, path) in pairs {
            self.set_some(path, object.text(key));
        }
    }

    /// [`Fields::texts`] of the object at `key` of `object`, whose members not in `pairs`
    /// stay in `object`'s rest.
    pub fn texts_of(&mut self, object: &mut Object<'a>, key: &str, pairs: &[(&str, &'static str)]) {
        if let Some(mut inner) = object.object(key) {
            self.texts(&mut inner, pairs);
            object.leave(key, inner.rest());
        }
    }

    /// Whether `path` is set.
    pub fn has(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The value first set at `path`.
    pub fn get(&self, path: &str) -> Option<&Value<'a>> {
        self.fields.iter().find(|(p, _)| *p == path).map(|(_, v)| v)
    }

    /// Appends the document: one JSON object, the paths nested, keys sorted.
    pub fn write(self, out: &mut Vec<u8>) {
        // Sorted by path (their first 32 bytes as numbers, then the rest), the first set of
        // a path kept.
        let key = |path: &str, from: usize| {
            let mut bytes = [0u8; 16];
            let tail = path.as_bytes().get(from..).unwrap_or_default();
            let n = tail.len().min(16);
            bytes[..n].copy_from_slice(&tail[..n]);
            u128::from_be_bytes(bytes)
        };
        let mut order: Vec<(u128, u128, usize)> = self
            .fields
            .iter()
            .enumerate()
            .map(|(n, (path, _))| (key(path, 0), key(path, 16), n))
            .collect();
        let fields = &self.fields;
        order.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| fields[a.2].0.cmp(fields[b.2].0))
                .then(a.2.cmp(&b.2))
        });
        order.dedup_by(|later, first| fields[later.2].0 == fields[first.2].0);
        out.push(b'{');
        // The path of the innermost open object, with a trailing dot ("" at the top).
        let mut open: &str = "";
        let mut first = true;
        for (path, value) in order.iter().map(|&(_, _, n)| &fields[n]) {
            let parent = path.rfind('.').map_or("", |dot| &path[..=dot]);
            // Close what the path is not in, then open its objects below the common part.
            let common = common_objects(open, parent);
            for _ in open[common..].bytes().filter(|&b| b == b'.') {
                out.push(b'}');
            }
            for step in parent[common..].split_terminator('.') {
                member(out, &mut first, step);
                out.push(b'{');
                first = true;
            }
            open = parent;
            if let Value::Members(members) = value {
                if !members.is_empty() {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    out.extend_from_slice(members);
                }
                continue;
            }
            member(out, &mut first, &path[parent.len()..]);
            write_value(out, value);
        }
        for _ in open.bytes().filter(|&b| b == b'.') {
            out.push(b'}');
        }
        out.push(b'}');
    }
}

/// The length of the longest common prefix of `a` and `b` (object paths, each step followed
/// by a dot) that ends after a dot: the objects both are in.
fn common_objects(a: &str, b: &str) -> usize {
    let mut end = 0;
    for (n, (x, y)) in a.bytes().zip(b.bytes()).enumerate() {
        if x != y {
            break;
        }
        if x == b'.' {
            end = n + 1;
        }
    }
    end
}

/// Writes `"key":`, after a comma unless it is the first member of its object. Keys are the
/// mappings' own names, which need no escape.
fn member(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_value(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Text(text) => write_str(out, text),
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
        Value::Json(raw) => out.extend_from_slice(one_line(raw).as_ref()),
        Value::JsonText(raw) => write_json_text(out, raw),
        // Written by [`Fields::write`] into their object, never as a member's value.
        Value::Members(_) => out.extend_from_slice(b"null"),
    }
}

/// Appends the UTF-8 bytes `text` as a JSON string: `"` and `\\` escaped, control bytes
/// (JSON's whitespace between tokens among them) as `\\u00XX` or their short escapes.
fn write_json_text(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + text.len() / 8 + 2);
    out.push(b'"');
    let mut copied = 0;
    for (n, &b) in text.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&text[copied..n]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        copied = n + 1;
    }
    out.extend_from_slice(&text[copied..]);
    out.push(b'"');
}

/// `raw` JSON without raw line breaks (only whitespace between tokens can hold them).
fn one_line(raw: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr2(b'\n', b'\r', raw).is_none() {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(
        raw.iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect(),
    )
}

/// `address` as an IP the cluster's `ip` type accepts: IPv4 in dotted decimal without
/// leading zeros, or IPv6; `None` for anything else (`AWS Internal`, a host name).
pub fn ip(address: &str) -> Option<IpAddr> {
    address.parse().ok()
}

/// The data stream a dataset's ECS documents belong to (`logs-<dataset>-<namespace>`), which
/// each document names in `data_stream.*` and `event.dataset` as Elastic Agent writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The dataset as Elastic names it (`aws.cloudtrail`).
    pub dataset: &'static str,
    pub namespace: String,
}

impl Stream {
    /// `logs-<dataset>-<namespace>`.
    pub fn name(&self) -> String {
        format!("logs-{}-{}", self.dataset, self.namespace)
    }

    /// Sets `ecs.version`, `data_stream.*` and `event.dataset`.
    pub fn set<'a>(&'a self, fields: &mut Fields<'a>) {
        fields.set("ecs.version", ECS_VERSION);
        fields.set("data_stream.type", "logs");
        fields.set("data_stream.dataset", self.dataset);
        fields.set("data_stream.namespace", self.namespace.as_str());
        fields.set("event.dataset", self.dataset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(fields: Fields<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        fields.write(&mut out);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn paths_become_nested_objects_in_key_order() {
        let mut fields = Fields::default();
        fields.set("event.type", Value::List(vec!["info".into()]));
        fields.set("@timestamp", "t");
        fields.set(
            "aws.cloudtrail.flattened.x",
            Value::Json(b"{\"a\":\n1}"[..].into()),
        );
        fields.set("event.action", "A");
        fields.set(
            "aws.cloudtrail.request_parameters",
            Value::JsonText(b"{\"a\":1}"[..].into()),
        );
        fields.set("source.as.number", Value::Integer(29518));
        fields.set("aws.cloudtrail.read_only", Value::Bool(true));
        fields.set("event.action", "second");
        let mut out = Vec::new();
        fields.write(&mut out);
        assert!(!out.contains(&b'\n'));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            json!({
                "@timestamp": "t",
                "aws": {"cloudtrail": {
                    "flattened": {"x": {"a": 1}},
                    "read_only": true,
                    "request_parameters": "{\"a\":1}",
                }},
                "event": {"action": "A", "type": ["info"]},
                "source": {"as": {"number": 29518}},
            })
        );
        assert_eq!(written(Fields::default()), json!({}));
    }

    #[test]
    fn json_text_is_a_json_string_of_the_bytes() {
        for text in [
            "",
            "{\"a\":\n [1, \"b\\\\c\"]}",
            "tab\there\u{1}\u{7f}\r",
            "\u{e9}t\u{e9}",
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
        assert_eq!(common_objects("a.b.", "a.bc."), 2);
        assert_eq!(common_objects("a.b.", "a.b.c."), 4);
        assert_eq!(common_objects("", "x."), 0);
    }

    #[test]
    fn only_what_the_ip_type_takes_is_an_ip() {
        for good in ["81.2.69.144", "2001:db8::1", "::ffff:1.2.3.4"] {
            assert!(ip(good).is_some(), "{good}");
        }
        for bad in [
            "AWS Internal",
            "ec2.amazonaws.com",
            "010.1.2.3",
            "1.2.3",
            "",
        ] {
            assert!(ip(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_stream_names_itself_in_every_document() {
        let stream = Stream {
            dataset: "aws.cloudtrail",
            namespace: "prod".into(),
        };
        assert_eq!(stream.name(), "logs-aws.cloudtrail-prod");
        let mut fields = Fields::default();
        stream.set(&mut fields);
        let doc = written(fields);
        assert_eq!(doc["data_stream"]["namespace"], "prod");
        assert_eq!(doc["event"]["dataset"], "aws.cloudtrail");
        assert_eq!(doc["ecs"]["version"], ECS_VERSION);
    }
}
