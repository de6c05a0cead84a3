//! Mapping: the building blocks of the index mappings each format declares for its indices.
//!
//! Every format's mappings follow the same rules, so that no event is ever refused for its
//! shape: well-known scalar fields are `keyword` with `ignore_above` (a long value is kept in
//! `_source` but not indexed, instead of rejecting the document); unknown strings become
//! `keyword` too; date and numeric detection are off (a field that looks like a date in one
//! event and not in the next must not split the mapping); free-form objects get the
//! cluster's native type for them ([`FreeFormMapping`]).

use serde_json::{json, Map, Value};

/// Keywords longer than this are kept in `_source` but not indexed (Lucene's term limit is
/// 32,766 bytes; 8,191 characters stay under it in any UTF-8).
pub const KEYWORD_IGNORE_ABOVE: u64 = 8191;

/// How the index template maps free-form objects on this cluster: `flattened`
/// (Elasticsearch >= 7.3), `flat_object` (OpenSearch >= 2.7), or `text` for the JSON strings
/// that documents carry elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeFormMapping {
    Flattened,
    FlatObject,
    Text,
}

impl FreeFormMapping {
    pub fn to_json(self) -> Value {
        match self {
            FreeFormMapping::Flattened => {
                json!({"type": "flattened", "ignore_above": KEYWORD_IGNORE_ABOVE, "depth_limit": 100})
            }
            FreeFormMapping::FlatObject => json!({"type": "flat_object"}),
            FreeFormMapping::Text => json!({"type": "text"}),
        }
    }
}

/// A format's mappings for its event indices, given how free-form objects are mapped.
pub type Mappings = fn(FreeFormMapping) -> Value;

pub fn keyword() -> Value {
    json!({"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE})
}

pub fn text_with_keyword() -> Value {
    json!({"type": "text", "fields": {"keyword": keyword()}})
}

pub fn keywords(names: &[&str]) -> Map<String, Value> {
    names.iter().map(|n| (n.to_string(), keyword())).collect()
}

pub fn object(properties: Map<String, Value>) -> Value {
    json!({"properties": properties})
}

/// The mappings around `properties`: dynamic, unknown strings as keywords, no detection.
pub fn dynamic(properties: Map<String, Value>) -> Value {
    json!({
        "dynamic": true,
        "date_detection": false,
        "numeric_detection": false,
        "dynamic_templates": [
            {"strings_as_keywords": {"match_mapping_type": "string", "mapping": keyword()}}
        ],
        "properties": properties,
    })
}

/// Adds `mapping` at the dotted `path` of `properties`, nesting objects: `("source.ip",
/// {...})` -> `{"source": {"properties": {"ip": {...}}}}`.
pub fn insert(properties: &mut Map<String, Value>, path: &str, mapping: Value) {
    match path.split_once('.') {
        None => {
            properties.insert(path.to_string(), mapping);
        }
        Some((head, rest)) => {
            let entry = properties
                .entry(head.to_string())
                .or_insert_with(|| object(Map::new()));
            if let Some(inner) = entry.get_mut("properties").and_then(Value::as_object_mut) {
                insert(inner, rest, mapping);
            }
        }
    }
}
