//! The mappings of the CloudTrail indices: the well-known fields of every event typed (see
//! [`crate::format::mapping`] for the rules all formats share), `userAgent` and
//! `errorMessage` as `text` with a `keyword` subfield, and the free-form objects
//! ([`FREE_FORM_FIELDS`]) mapped as the cluster allows.

use serde_json::{json, Value};

use super::event::FREE_FORM_FIELDS;
use crate::format::mapping::{dynamic, keywords, object, text_with_keyword, FreeFormMapping};

/// The mappings of the CloudTrail event indices.
pub fn mappings(free_form: FreeFormMapping) -> Value {
    let mut properties = keywords(&[
        "eventVersion",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "errorCode",
        "requestID",
        "eventID",
        "eventType",
        "eventCategory",
        "apiVersion",
        "recipientAccountId",
        "sharedEventID",
        "vpcEndpointId",
        "vpcEndpointAccountId",
        "sessionCredentialFromConsole",
    ]);
    properties.insert("@timestamp".into(), json!({"type": "date"}));
    properties.insert(
        "eventTime".into(),
        json!({"type": "date", "ignore_malformed": true}),
    );
    properties.insert("readOnly".into(), json!({"type": "boolean"}));
    properties.insert("managementEvent".into(), json!({"type": "boolean"}));
    properties.insert("userAgent".into(), text_with_keyword());
    properties.insert("errorMessage".into(), text_with_keyword());

    properties.insert("userIdentity".into(), user_identity());
    properties.insert(
        "resources".into(),
        object(keywords(&["ARN", "ARNPrefix", "accountId", "type"])),
    );
    properties.insert(
        "tlsDetails".into(),
        object(keywords(&[
            "tlsVersion",
            "cipherSuite",
            "clientProvidedHostHeader",
        ])),
    );
    properties.insert(
        "addendum".into(),
        object(keywords(&[
            "reason",
            "updatedFields",
            "originalRequestID",
            "originalEventID",
        ])),
    );
    for field in FREE_FORM_FIELDS {
        properties.insert(field.into(), free_form.to_json());
    }
    dynamic(properties)
}

/// `userIdentity`: who made the call, and the session it made it in.
fn user_identity() -> Value {
    let issuer = keywords(&["type", "principalId", "arn", "accountId", "userName"]);
    let mut attributes = keywords(&["mfaAuthenticated"]);
    attributes.insert(
        "creationDate".into(),
        json!({
            "type": "date",
            "format": "strict_date_optional_time||basic_date_time_no_millis||epoch_millis",
            "ignore_malformed": true
        }),
    );
    let mut session = keywords(&["sourceIdentity", "ec2RoleDelivery", "assumedRoot"]);
    session.insert("sessionIssuer".into(), object(issuer));
    session.insert("attributes".into(), object(attributes));
    session.insert(
        "webIdFederationData".into(),
        object(keywords(&["federatedProvider"])),
    );
    let mut identity = keywords(&[
        "type",
        "principalId",
        "arn",
        "accountId",
        "accessKeyId",
        "userName",
        "invokedBy",
        "identityProvider",
        "credentialId",
    ]);
    identity.insert("sessionContext".into(), object(session));
    identity.insert(
        "onBehalfOf".into(),
        object(keywords(&["userId", "identityStoreArn"])),
    );
    object(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_fields_are_typed_and_long_values_never_reject() {
        let m = mappings(FreeFormMapping::Flattened);
        let p = &m["properties"];
        assert_eq!(p["@timestamp"]["type"], "date");
        assert_eq!(p["eventTime"]["type"], "date");
        for name in [
            "eventName",
            "eventSource",
            "awsRegion",
            "errorCode",
            "sourceIPAddress",
            "recipientAccountId",
            "eventType",
            "eventCategory",
        ] {
            assert_eq!(p[name]["type"], "keyword", "{name}");
            assert_eq!(p[name]["ignore_above"], 8191, "{name}");
        }
        for name in [
            "type",
            "arn",
            "accountId",
            "principalId",
            "userName",
            "accessKeyId",
        ] {
            assert_eq!(
                p["userIdentity"]["properties"][name]["type"], "keyword",
                "{name}"
            );
        }
        assert_eq!(p["userAgent"]["type"], "text");
        assert_eq!(p["errorMessage"]["fields"]["keyword"]["type"], "keyword");
        assert_eq!(m["date_detection"], false);
        assert_eq!(
            m["dynamic_templates"][0]["strings_as_keywords"]["mapping"]["ignore_above"],
            8191
        );
    }

    #[test]
    fn free_form_fields_get_the_clusters_type() {
        for (layout, kind) in [
            (FreeFormMapping::Flattened, "flattened"),
            (FreeFormMapping::FlatObject, "flat_object"),
            (FreeFormMapping::Text, "text"),
        ] {
            for name in FREE_FORM_FIELDS {
                assert_eq!(mappings(layout)["properties"][name]["type"], kind, "{name}");
            }
        }
    }
}
