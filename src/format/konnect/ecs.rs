//! ECS: a Kong Konnect audit-log entry -> an Elastic Common Schema core, with the entry
//! itself under `kong.konnect`.
//!
//! Konnect's entries have no Elastic integration to follow; this is the core Elastic
//! Security's views read, from the fields Konnect documents for its audit logs:
//! - `@timestamp` = `rt` (else `event_ts`, as the format chose); `event.action` = `name`
//!   (`AUTHENTICATION_OUTCOME_SUCCESS`, `Authz.control-planes`, `Ingress`);
//!   `event.provider` = `event_product`; `event.id` = `trace_id`; `event.severity` =
//!   `severity`; `event.kind` = `event`;
//! - `event.category`: `authentication` for `AUTHENTICATION_*` classes, `iam` for
//!   authorization entries (those with `granted`), `web` for gateway traffic (with an HTTP
//!   method in `act`); `event.type`: `info`, or `allowed`/`denied`;
//! - `event.outcome`: `success` or `failure` from `success` or `granted`;
//! - `user.id` = `principal_id` (else `actor_id`); `organization.id` = `org_id`;
//!   `source.ip` = `src`; `user_agent.original` = `user_agent`; `url.path` = `request`;
//!   `http.request.method` = `act`;
//! - `kong.konnect`: the whole entry with its own names (mapped `flattened`).
//!
//! Failure policy: an entry that is not one JSON object is an error (the sink dead-letters it
//! as it came).

use crate::format::ecs::{self, text, Fields, Layout, Object, Paths, Value};

macro_rules! slot {
    ($path:literal) => {
        const { $crate::format::ecs::slot(PATHS, $path) }
    };
}

/// Every field of Konnect's ECS documents.
pub const PATHS: Paths = &[
    "event.severity",
    "http.request.method",
    "kong.konnect",
    "organization.id",
    "url.path",
];

/// The dataset the documents name.
pub const STREAM_DATASET: &str = "kong.konnect";

/// The mappings of Konnect's ECS documents.
pub fn mappings(free_form: crate::format::mapping::FreeFormMapping) -> serde_json::Value {
    ecs::core_mappings(STREAM_DATASET, free_form)
}

fn layout() -> &'static Layout {
    static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(|| Layout::new(PATHS))
}

/// Appends the ECS document of the Konnect entry `document` (with `@timestamp` spliced in by
/// its format), with what the worker `added`. `None` when it is not one JSON object.
pub fn write(document: &str, added: &ecs::Added<'_>, out: &mut Vec<u8>) -> Option<()> {
    let mut entry = Object::parse(document)?;
    let mut fields = Fields::new(layout());
    added
        .stream
        .common(&mut fields, added.timestamp, added.created);
    fields.texts(
        &mut entry,
        &[
            ("name", slot!("event.action")),
            ("event_product", slot!("event.provider")),
            ("trace_id", slot!("event.id")),
            ("org_id", slot!("organization.id")),
            ("user_agent", slot!("user_agent.original")),
            ("request", slot!("url.path")),
        ],
    );
    if let Some(severity) = entry.get("severity").and_then(|s| s.parse::<i64>().ok()) {
        fields.set(slot!("event.severity"), Value::Integer(severity));
    }
    describe(&entry, &mut fields);
    let user = entry
        .get("principal_id")
        .and_then(text)
        .filter(|u| !u.is_empty())
        .or_else(|| {
            entry
                .get("actor_id")
                .and_then(text)
                .filter(|u| !u.is_empty())
        });
    if let Some(user) = &user {
        fields.set(
            slot!("related.user"),
            Value::List(std::slice::from_ref(user).into()),
        );
    }
    fields.set_some(slot!("user.id"), user);
    if let Some(address) = entry.get("src").and_then(text) {
        ecs::source(address, added.geoip, &mut fields);
    }
    fields.set(
        slot!("kong.konnect"),
        ecs::kept(document.as_bytes(), added.free_form),
    );
    fields.write(out);
    Some(())
}

/// `event.category`, `event.type`, `event.outcome` and `http.request.method`.
fn describe<'a>(entry: &Object<'a>, fields: &mut Fields<'a>) {
    let flag = |key: &str| entry.get(key).map(|v| v == "true");
    let granted = flag("granted");
    let class = entry.get("event_class_id").and_then(text);
    let method = entry
        .get("act")
        .and_then(text)
        .filter(|m| m.chars().all(|c| c.is_ascii_uppercase()));
    let (category, types): (&'static [&'static str], &'static [&'static str]) =
        match (class.as_deref(), granted, &method) {
            (Some(c), _, _) if c.starts_with("AUTHENTICATION") => (&["authentication"], &["info"]),
            (_, Some(true), _) => (&["iam"], &["allowed"]),
            (_, Some(false), _) => (&["iam"], &["denied"]),
            (_, None, Some(_)) => (&["web"], &["access"]),
            _ => (&[], &["info"]),
        };
    if !category.is_empty() {
        fields.set(slot!("event.category"), Value::Names(category));
    }
    fields.set(slot!("event.type"), Value::Names(types));
    fields.set_some(slot!("http.request.method"), method);
    if let Some(success) = flag("success").or(granted) {
        fields.set(
            slot!("event.outcome"),
            if success { "success" } else { "failure" },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ecs::Stream;
    use crate::format::FreeForm;

    fn documents() -> Vec<serde_json::Value> {
        let path = format!(
            "{}/fixtures/konnect/entries.ndjson",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("the fixture");
        let stream = Stream::new(STREAM_DATASET, "default");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let mut out = Vec::new();
                write(
                    line,
                    &ecs::Added {
                        timestamp: "2026-03-10T14:05:11.204Z",
                        created: "2026-03-10T14:05:12.000Z",
                        stream: &stream,
                        free_form: FreeForm::Objects,
                        geoip: None,
                    },
                    &mut out,
                )
                .expect("a document");
                serde_json::from_slice(&out).expect("valid JSON")
            })
            .collect()
    }

    #[test]
    fn sign_ins_authorizations_and_gateway_calls_get_their_core() {
        let docs = documents();
        let sign_in = &docs[0];
        assert_eq!(
            sign_in["event"]["category"],
            serde_json::json!(["authentication"])
        );
        assert_eq!(sign_in["event"]["outcome"], "success");
        assert_eq!(sign_in["source"]["ip"], "203.0.113.47");
        assert_eq!(
            sign_in["user"]["id"],
            "2f6a9b41-c803-4e7d-9a15-6b0e3d72c4a8"
        );
        assert_eq!(
            sign_in["kong"]["konnect"]["name"],
            "AUTHENTICATION_OUTCOME_SUCCESS"
        );
        let authz = &docs[1];
        assert_eq!(authz["event"]["type"], serde_json::json!(["allowed"]));
        assert_eq!(authz["event"]["action"], "Authz.control-planes");
        let gateway = &docs[2];
        assert_eq!(gateway["http"]["request"]["method"], "POST");
        assert_eq!(gateway["event"]["category"], serde_json::json!(["web"]));
        assert!(docs.iter().all(|d| d["event"]["dataset"] == "kong.konnect"));
    }
}
