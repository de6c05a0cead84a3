//! Field: a Sigma field name -> the values it names in a JSON event.
//!
//! A field name is a dotted path into nested objects (`userIdentity.sessionContext.mfaAuthenticated`).
//! Besides the plain walk through objects:
//! - a step that meets an array goes into each element, so `ipPermissions.items.ipRanges.items.cidrIp`
//!   names every `cidrIp` of every permission (a field matches when any of its values does);
//! - a key that itself holds dots is found too (`{"user.name": ...}` for `user.name`);
//! - a step that meets a string holding a JSON object or array goes into it: that is how free-form
//!   parts are stored on clusters without flattened fields (and how Konnect entries carry nested
//!   values), so a rule means the same whatever the cluster.

use std::borrow::Cow;

use serde_json::Value;

/// A field name, split at its dots.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    name: String,
    steps: Vec<String>,
}

impl FieldPath {
    pub fn new(name: &str) -> Self {
        FieldPath {
            name: name.to_string(),
            steps: name.split('.').map(str::to_string).collect(),
        }
    }

    /// As written in the rule.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn steps(&self) -> &[String] {
        &self.steps
    }

    /// The values at this path, arrays at its end not unfolded: an empty result means the
    /// field does not exist (`null` is a value).
    pub fn values<'a>(&self, event: &'a Value) -> Vec<Cow<'a, Value>> {
        let mut out = Vec::new();
        collect(Cow::Borrowed(event), &self.steps, &mut out);
        out
    }
}

fn collect<'a>(value: Cow<'a, Value>, path: &[String], out: &mut Vec<Cow<'a, Value>>) {
    if path.is_empty() {
        out.push(value);
        return;
    }
    match value {
        Cow::Borrowed(Value::Object(map)) => {
            for (taken, key) in keys(path) {
                if let Some(child) = map.get(key.as_ref()) {
                    collect(Cow::Borrowed(child), &path[taken..], out);
                }
            }
        }
        Cow::Owned(Value::Object(mut map)) => {
            for (taken, key) in keys(path) {
                if let Some(child) = map.remove(key.as_ref()) {
                    collect(Cow::Owned(child), &path[taken..], out);
                }
            }
        }
        Cow::Borrowed(Value::Array(items)) => {
            for item in items {
                collect(Cow::Borrowed(item), path, out);
            }
        }
        Cow::Owned(Value::Array(items)) => {
            for item in items {
                collect(Cow::Owned(item), path, out);
            }
        }
        Cow::Borrowed(Value::String(text)) => {
            if let Some(inner) = embedded_json(text) {
                collect(Cow::Owned(inner), path, out);
            }
        }
        Cow::Owned(Value::String(text)) => {
            if let Some(inner) = embedded_json(&text) {
                collect(Cow::Owned(inner), path, out);
            }
        }
        _ => {}
    }
}

/// The keys a path's next step can be written as: its first name, then that name joined by
/// dots with the names after it.
fn keys(path: &[String]) -> impl Iterator<Item = (usize, Cow<'_, str>)> {
    (1..=path.len()).map(move |taken| {
        let key = if taken == 1 {
            Cow::Borrowed(path[0].as_str())
        } else {
            Cow::Owned(path[..taken].join("."))
        };
        (taken, key)
    })
}

/// A string that holds a JSON object or array, parsed.
fn embedded_json(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// The text of a scalar as a Sigma value compares it: strings as they are, numbers and
/// booleans as written in JSON. Objects, arrays and `null` have none.
pub fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Every scalar of `value` (at any depth), unfolding arrays: what a value test looks at.
pub fn leaves<'v>(value: &'v Value, out: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| leaves(item, out)),
        other => out.push(other),
    }
}

/// Every string, number and boolean anywhere in `value`: what a keyword looks at.
pub fn all_scalars<'v>(value: &'v Value, visit: &mut dyn FnMut(&str) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| all_scalars(item, visit)),
        Value::Object(map) => map.values().any(|item| all_scalars(item, visit)),
        scalar => scalar_text(scalar).is_some_and(|text| visit(&text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(event: &Value, name: &str) -> Vec<Value> {
        FieldPath::new(name)
            .values(event)
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    #[test]
    fn paths_walk_objects_arrays_dotted_keys_and_embedded_json() {
        let event = json!({
            "userIdentity": {"type": "Root", "sessionContext": {"attributes": {"mfaAuthenticated": "false"}}},
            "requestParameters": {"ipPermissions": {"items": [
                {"ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}, {"cidrIp": "0.0.0.0/0"}]}},
                {"ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}
            ]}},
            "user.name": "flat",
            "free": "{\"inner\": {\"deep\": 1}}",
            "nothing": null
        });
        assert_eq!(at(&event, "userIdentity.type"), vec![json!("Root")]);
        assert_eq!(
            at(
                &event,
                "userIdentity.sessionContext.attributes.mfaAuthenticated"
            ),
            vec![json!("false")]
        );
        assert_eq!(
            at(
                &event,
                "requestParameters.ipPermissions.items.ipRanges.items.cidrIp"
            ),
            vec![json!("10.0.0.0/8"), json!("0.0.0.0/0")]
        );
        assert_eq!(at(&event, "user.name"), vec![json!("flat")]);
        assert_eq!(at(&event, "free.inner.deep"), vec![json!(1)]);
        assert_eq!(at(&event, "nothing"), vec![Value::Null], "null is a value");
        assert!(at(&event, "missing").is_empty());
        assert!(at(&event, "userIdentity.type.deeper").is_empty());
    }

    #[test]
    fn scalars_compare_as_their_text() {
        assert_eq!(scalar_text(&json!(4769)).as_deref(), Some("4769"));
        assert_eq!(scalar_text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(scalar_text(&json!(null)), None);
        let mut seen = Vec::new();
        all_scalars(&json!({"a": [1, {"b": "x"}], "c": null}), &mut |s| {
            seen.push(s.to_string());
            false
        });
        assert_eq!(seen, vec!["1", "x"]);
    }
}
