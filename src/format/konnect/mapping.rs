//! The mappings of the Konnect audit-log indices: every field of Konnect's entries (JSON and
//! CEF use the same names) as a keyword, ids such as `trace_id` included (a 19-digit number
//! would lose digits as a `long` in some clients and conflict with its string form from CEF),
//! `rt` and `event_ts` as dates, `user_agent` and `query` also as text. Unknown numbers are
//! keywords too, so that no other sender's id can split the mapping. See
//! [`crate::format::mapping`] for the rules all formats share.

use serde_json::{json, Value};

use crate::format::mapping::{dynamic, keyword, keywords, text_with_keyword, FreeFormMapping};

/// The mappings of the Konnect event indices.
pub fn mappings(_free_form: FreeFormMapping) -> Value {
    let mut properties = keywords(&[
        "cef_version",
        "event_class_id",
        "event_product",
        "event_vendor",
        "event_version",
        "name",
        "severity",
        "src",
        "org_id",
        "principal_id",
        "principal_name",
        "actor_id",
        "portal_id",
        "trace_id",
        "request",
        "act",
        "status",
        "action",
        "granted",
        "success",
        "kong_initiated",
        "sig",
        "syslog_header",
    ]);
    properties.insert("@timestamp".into(), json!({"type": "date"}));
    properties.insert(
        "rt".into(),
        json!({"type": "date", "format": "epoch_millis", "ignore_malformed": true}),
    );
    properties.insert(
        "event_ts".into(),
        json!({"type": "date", "ignore_malformed": true}),
    );
    properties.insert("user_agent".into(), text_with_keyword());
    properties.insert("query".into(), text_with_keyword());
    let mut mappings = dynamic(properties);
    let templates = mappings["dynamic_templates"]
        .as_array_mut()
        .expect("dynamic templates are a list");
    for kind in ["long", "double"] {
        templates.push(json!({
            format!("{kind}s_as_keywords"): {"match_mapping_type": kind, "mapping": keyword()}
        }));
    }
    mappings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_keywords_and_times_dates() {
        let m = mappings(FreeFormMapping::Flattened);
        let p = &m["properties"];
        for name in [
            "trace_id",
            "org_id",
            "principal_id",
            "status",
            "granted",
            "event_class_id",
        ] {
            assert_eq!(p[name]["type"], "keyword", "{name}");
        }
        assert_eq!(p["rt"]["type"], "date");
        assert_eq!(p["rt"]["format"], "epoch_millis");
        assert_eq!(p["user_agent"]["type"], "text");
        let kinds: Vec<&Value> = m["dynamic_templates"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t.as_object().unwrap().values())
            .map(|t| &t["match_mapping_type"])
            .collect();
        assert_eq!(kinds, ["string", "long", "double"]);
    }
}
