//! The mappings of the Confluent audit-log indices: the CloudEvents envelope and the
//! well-known fields of `data` as keywords (booleans such as `granted` too, so that a value
//! written as a string by one producer and as a boolean by another both fit), `time` and
//! `@timestamp` as dates, and the free-form parts ([`FREE_FORM_PATHS`]) as the
//! cluster allows. See [`crate::format::mapping`] for the rules all formats share.

use serde_json::{json, Map, Value};

use crate::format::mapping::{dynamic, keywords, object, text_with_keyword, FreeFormMapping};

/// The free-form values, as paths below `data`.
pub const FREE_FORM_PATHS: [&[&str]; 4] = [
    &["request"],
    &["result", "data"],
    &["authenticationInfo", "principal"],
    &["authorizationInfo", "rbacAuthorization", "scope"],
];

/// Puts `mapping` at `path` (below `data`) into `properties`, creating objects on the way.
fn insert(properties: &mut Map<String, Value>, path: &[&str], mapping: Value) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    let mut here = properties;
    for name in parents {
        here = here
            .entry(name.to_string())
            .or_insert_with(|| json!({"properties": {}}))
            .get_mut("properties")
            .and_then(Value::as_object_mut)
            .expect("parents are objects");
    }
    here.insert(last.to_string(), mapping);
}

/// The mappings of the Confluent audit-log event indices.
pub fn mappings(free_form: FreeFormMapping) -> Value {
    let mut properties = keywords(&[
        "id",
        "source",
        "specversion",
        "type",
        "datacontenttype",
        "dataschema",
        "subject",
    ]);
    properties.insert("@timestamp".into(), json!({"type": "date"}));
    properties.insert(
        "time".into(),
        json!({"type": "date", "ignore_malformed": true}),
    );

    let mut data = keywords(&["serviceName", "methodName", "resourceName"]);
    data.insert(
        "authenticationInfo".into(),
        object(keywords(&["identity", "principalResourceId"])),
    );
    let mut authorization = keywords(&[
        "granted",
        "operation",
        "resourceType",
        "resourceName",
        "patternType",
        "superUserAuthorization",
        "actingPrincipal",
        "assignedPrincipals",
    ]);
    authorization.insert(
        "rbacAuthorization".into(),
        object(keywords(&["role", "cloudScope"])),
    );
    authorization.insert(
        "aclAuthorization".into(),
        object(keywords(&["permissionType", "host"])),
    );
    data.insert("authorizationInfo".into(), object(authorization));
    let mut result = keywords(&["status"]);
    result.insert("message".into(), text_with_keyword());
    data.insert("result".into(), object(result));
    let mut metadata = keywords(&["requestId", "connectionId", "clientId"]);
    metadata.insert("clientAddress".into(), object(keywords(&["ip", "port"])));
    data.insert("requestMetadata".into(), object(metadata));
    for path in FREE_FORM_PATHS {
        insert(&mut data, path, free_form.to_json());
    }
    properties.insert("data".into(), object(data));
    dynamic(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_fields_are_keywords_and_free_form_parts_follow_the_cluster() {
        let m = mappings(FreeFormMapping::Flattened);
        let p = &m["properties"];
        assert_eq!(p["type"]["type"], "keyword");
        assert_eq!(p["time"]["type"], "date");
        let data = &p["data"]["properties"];
        assert_eq!(data["methodName"]["type"], "keyword");
        assert_eq!(data["resourceName"]["type"], "keyword");
        assert_eq!(
            data["authorizationInfo"]["properties"]["granted"]["type"],
            "keyword"
        );
        assert_eq!(data["result"]["properties"]["status"]["type"], "keyword");
        assert_eq!(data["request"]["type"], "flattened");
        assert_eq!(data["result"]["properties"]["data"]["type"], "flattened");
        assert_eq!(
            data["authenticationInfo"]["properties"]["principal"]["type"],
            "flattened"
        );
        assert_eq!(
            data["authenticationInfo"]["properties"]["identity"]["type"], "keyword",
            "siblings of a free-form part stay typed"
        );
        let os = mappings(FreeFormMapping::FlatObject);
        assert_eq!(
            os["properties"]["data"]["properties"]["request"]["type"],
            "flat_object"
        );
        let strings = mappings(FreeFormMapping::Text);
        assert_eq!(
            strings["properties"]["data"]["properties"]["request"]["type"],
            "text"
        );
        assert_eq!(m["date_detection"], false);
    }
}
