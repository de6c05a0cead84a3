//! The mappings of CloudTrail's ECS documents: the types Elastic's AWS integration and ECS
//! give each field (dates, `ip`, `geo_point`, numbers, booleans), keywords for the rest (see
//! [`crate::format::mapping`] for the rules all formats share), and the objects kept as they
//! came (`aws.cloudtrail.flattened.*`, `aws.cloudtrail.unmapped`) mapped as the cluster allows.
//! Only types every supported cluster has are used (`data_stream.*` are keywords, not
//! `constant_keyword`, which OpenSearch lacks).

use serde_json::{json, Value};

use crate::format::mapping::{dynamic, insert, keyword, object, FreeFormMapping};

/// A keyword with a `text` subfield, as ECS maps its long free texts (`text` rather than
/// ECS's `match_only_text`, which Elasticsearch before 7.14 and OpenSearch before 2.12 lack).
fn keyword_and_text() -> Value {
    let mut mapping = keyword();
    mapping["fields"] = json!({"text": {"type": "text"}});
    mapping
}

/// The mappings of the CloudTrail ECS documents.
pub fn mappings(free_form: FreeFormMapping) -> Value {
    let mut properties = crate::format::ecs::core_properties();
    insert(
        &mut properties,
        "aws.cloudtrail.user_identity.session_context.creation_date",
        json!({"type": "date"}),
    );
    insert(
        &mut properties,
        "aws.cloudtrail.read_only",
        json!({"type": "boolean"}),
    );
    for boolean in ["mfa_used", "mobile_version"] {
        insert(
            &mut properties,
            &format!("aws.cloudtrail.console_login.additional_eventdata.{boolean}"),
            json!({"type": "boolean"}),
        );
    }
    for text in [
        "aws.cloudtrail.error_message",
        "user_agent.original",
        "source.as.organization.name",
        "aws.cloudtrail.request_parameters",
        "aws.cloudtrail.response_elements",
        "aws.cloudtrail.additional_eventdata",
        "aws.cloudtrail.service_event_details",
    ] {
        insert(&mut properties, text, keyword_and_text());
    }
    for kept in [
        "aws.cloudtrail.flattened.request_parameters",
        "aws.cloudtrail.flattened.response_elements",
        "aws.cloudtrail.flattened.additional_eventdata",
        "aws.cloudtrail.flattened.service_event_details",
        "aws.cloudtrail.flattened.insight_details",
        "aws.cloudtrail.unmapped",
    ] {
        insert(&mut properties, kept, free_form.to_json());
    }
    insert(
        &mut properties,
        "aws.cloudtrail.resources",
        object(
            ["arn", "account_id", "type"]
                .iter()
                .map(|k| (k.to_string(), keyword()))
                .collect(),
        ),
    );
    dynamic(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest_and_types_are_ecs_types() {
        let m = mappings(FreeFormMapping::Flattened);
        let p = &m["properties"];
        assert_eq!(p["source"]["properties"]["ip"]["type"], "ip");
        assert_eq!(
            p["source"]["properties"]["geo"]["properties"]["location"]["type"],
            "geo_point"
        );
        assert_eq!(
            p["aws"]["properties"]["cloudtrail"]["properties"]["flattened"]["properties"]
                ["request_parameters"]["type"],
            "flattened"
        );
        assert_eq!(p["@timestamp"]["type"], "date");
        assert_eq!(
            m["dynamic_templates"][0]["strings_as_keywords"]["mapping"]["type"],
            "keyword"
        );
    }
}
