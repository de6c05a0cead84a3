//! ECS: a Confluent Cloud audit record -> an Elastic Common Schema core, with the record
//! itself under `confluent.audit`.
//!
//! Confluent's records have no Elastic integration to follow; this is the core Elastic
//! Security's views read, from the CloudEvents envelope and its `data`:
//! - `@timestamp` = `time`; `event.id` = `id`; `event.action` = `data.methodName`;
//!   `event.provider` = `data.serviceName`; `event.kind` = `event`;
//! - `event.category`: `authentication` for `.../authentication` records, `iam` for
//!   `.../authorization` ones, `configuration` for Cloud API requests; `event.type`: `info`, or
//!   `allowed`/`denied` for an authorization;
//! - `event.outcome`: from `data.result.status` (`SUCCESS`), `data.authenticationInfo.result`,
//!   `data.authorizationInfo.granted` or `.result` (`ALLOW`), whichever the record has;
//! - `user.name`: the principal (`User:123`, or a person's e-mail address, which is also
//!   `user.email`); `user.id`: `principalResourceId` or the Confluent user's id;
//! - `source.ip`: the first `data.requestMetadata.clientAddress[].ip`, else
//!   `client_address` (`/198.51.100.77`), else the IP filter's `clientIp`;
//! - `confluent.audit`: the whole record with its own names (mapped `flattened`).
//!
//! Failure policy: a record that is not one JSON object is an error (the sink dead-letters
//! it as it came).

use std::borrow::Cow;

use crate::format::ecs::{self, text, Fields, Layout, Object, Paths, Value};

macro_rules! slot {
    ($path:literal) => {
        const { $crate::format::ecs::slot(PATHS, $path) }
    };
}

/// Every field of Confluent Cloud's ECS documents.
pub const PATHS: Paths = &["confluent.audit"];

/// The dataset the documents name.
pub const STREAM_DATASET: &str = "confluent.audit";

/// The mappings of Confluent Cloud's ECS documents.
pub fn mappings(free_form: crate::format::mapping::FreeFormMapping) -> serde_json::Value {
    ecs::core_mappings(STREAM_DATASET, free_form)
}

fn layout() -> &'static Layout {
    static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(|| Layout::new(PATHS))
}

/// Appends the ECS document of the Confluent record `document` (with `@timestamp` spliced in
/// by its format), with what the worker `added`. `None` when it is not one JSON object.
pub fn write(document: &str, added: &ecs::Added<'_>, out: &mut Vec<u8>) -> Option<()> {
    let record = Object::parse(document)?;
    let mut fields = Fields::new(layout());
    added
        .stream
        .common(&mut fields, added.timestamp, added.created);
    fields.set_some(slot!("event.id"), record.get("id").and_then(text));
    let kind = record.get("type").and_then(text);
    let data = record.get("data").and_then(Object::scan);
    if let Some(data) = &data {
        describe(data, kind.as_deref(), &mut fields);
        user(data, &mut fields);
        if let Some(address) = client_address(data) {
            ecs::source(address, added.geoip, &mut fields);
        }
    }
    fields.set(
        slot!("confluent.audit"),
        ecs::kept(document.as_bytes(), added.free_form),
    );
    fields.write(out);
    Some(())
}

/// `event.action`, `event.provider`, `event.category`, `event.type` and `event.outcome`.
fn describe<'a>(data: &Object<'a>, kind: Option<&str>, fields: &mut Fields<'a>) {
    fields.set_some(slot!("event.action"), data.get("methodName").and_then(text));
    fields.set_some(
        slot!("event.provider"),
        data.get("serviceName").and_then(text),
    );
    let nested = |outer: &str, key: &str| {
        data.get(outer)
            .and_then(Object::scan)
            .and_then(|o| o.get(key))
            .and_then(text)
    };
    let granted = nested("authorizationInfo", "granted")
        .map(|g| g == "true")
        .or_else(|| nested("authorizationInfo", "result").map(|r| r == "ALLOW"));
    let (category, types): (&'static [&'static str], &'static [&'static str]) = match kind {
        Some(k) if k.ends_with("/authentication") => (&["authentication"], &["info"]),
        Some(k) if k.ends_with("/authorization") => match granted {
            Some(true) => (&["iam"], &["allowed"]),
            Some(false) => (&["iam"], &["denied"]),
            None => (&["iam"], &["info"]),
        },
        Some(k) if k.ends_with("/request") => (&["configuration"], &["info"]),
        _ => (&[], &["info"]),
    };
    if !category.is_empty() {
        fields.set(slot!("event.category"), Value::Names(category));
    }
    fields.set(slot!("event.type"), Value::Names(types));
    let success = nested("result", "status")
        .map(|s| s == "SUCCESS")
        .or(granted)
        .or_else(|| nested("authenticationInfo", "result").map(|r| r == "SUCCESS"));
    if let Some(success) = success {
        fields.set(
            slot!("event.outcome"),
            if success { "success" } else { "failure" },
        );
    }
}

/// `user.name`, `user.email`, `user.id` and `related.user` from `data.authenticationInfo`.
fn user<'a>(data: &Object<'a>, fields: &mut Fields<'a>) {
    let Some(info) = data.get("authenticationInfo").and_then(Object::scan) else {
        return;
    };
    let principal = info.get("principal");
    let (name, id) = match principal.and_then(Object::scan) {
        Some(person) => {
            let email = person.get("email").and_then(text);
            let id = person
                .get("confluentUser")
                .and_then(Object::scan)
                .and_then(|u| u.get("resourceId"))
                .and_then(text);
            fields.set_some(slot!("user.email"), email.clone());
            (email, id)
        }
        None => (principal.and_then(text), None),
    };
    let id = info.get("principalResourceId").and_then(text).or(id);
    if let Some(name) = &name {
        fields.set(
            slot!("related.user"),
            Value::List(std::slice::from_ref(name).into()),
        );
    }
    fields.set_some(slot!("user.name"), name);
    fields.set_some(slot!("user.id"), id);
}

/// The client's address the record names, as written.
fn client_address<'a>(data: &Object<'a>) -> Option<Cow<'a, str>> {
    let metadata = data.get("requestMetadata").and_then(Object::scan);
    let listed = metadata
        .as_ref()
        .and_then(|m| m.get("clientAddress"))
        .and_then(|list| serde_json::from_str::<Vec<&serde_json::value::RawValue>>(list).ok())
        .and_then(|list| list.first().copied())
        .and_then(|first| Object::scan(first.get()))
        .and_then(|first| first.get("ip").and_then(text));
    let connection = || {
        metadata
            .as_ref()
            .and_then(|m| m.get("client_address"))
            .and_then(text)
            .map(|a| match a {
                Cow::Borrowed(a) => Cow::Borrowed(a.trim_start_matches('/')),
                Cow::Owned(a) => Cow::Owned(a.trim_start_matches('/').to_string()),
            })
    };
    let filtered = || {
        data.get("authorizationInfo")
            .and_then(Object::scan)
            .and_then(|a| a.get("ipfilterAuthorization"))
            .and_then(Object::scan)
            .and_then(|f| f.get("clientIp").and_then(text))
    };
    listed.or_else(connection).or_else(filtered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ecs::Stream;
    use crate::format::FreeForm;

    fn document(fixture: &str) -> serde_json::Value {
        let path = format!(
            "{}/fixtures/confluent/events/{fixture}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("the fixture")).unwrap();
        let stream = Stream::new(STREAM_DATASET, "default");
        let mut out = Vec::new();
        write(
            &record.to_string(),
            &ecs::Added {
                timestamp: "2025-03-14T09:14:47.902Z",
                created: "2025-03-14T09:15:00.000Z",
                stream: &stream,
                free_form: FreeForm::Objects,
                geoip: None,
            },
            &mut out,
        )
        .expect("a document");
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn a_failed_kafka_sign_in_is_a_failed_authentication_from_its_client() {
        let doc = document("kafka-authentication-failure");
        assert_eq!(doc["event"]["action"], "kafka.Authentication");
        assert_eq!(
            doc["event"]["category"],
            serde_json::json!(["authentication"])
        );
        assert_eq!(doc["event"]["outcome"], "failure");
        assert_eq!(doc["source"]["ip"], "198.51.100.77");
        assert_eq!(doc["event"]["dataset"], "confluent.audit");
        assert_eq!(
            doc["confluent"]["audit"]["data"]["methodName"],
            "kafka.Authentication"
        );
    }

    #[test]
    fn people_and_service_accounts_are_users() {
        let doc = document("create-role-binding-organization-admin");
        assert_eq!(doc["user"]["email"], "dana.ortiz@example.com");
        assert_eq!(doc["user"]["name"], "dana.ortiz@example.com");
        assert_eq!(
            doc["event"]["category"],
            serde_json::json!(["configuration"])
        );
        let denied = document("kafka-authorization-denied");
        assert_eq!(denied["user"]["name"], "User:4815162");
        assert_eq!(denied["user"]["id"], "sa-5r9t2v");
        assert_eq!(denied["event"]["type"], serde_json::json!(["denied"]));
        assert_eq!(denied["event"]["outcome"], "failure");
        let filtered = document("ip-filter-authorization-denied");
        assert_eq!(filtered["event"]["outcome"], "failure");
        assert!(filtered["source"]["ip"].is_string(), "{filtered}");
    }
}
