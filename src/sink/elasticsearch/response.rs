//! Response: a bulk response -> one outcome per item, and what a whole request that failed
//! means.
//!
//! `errors: true` is not success: every item is read. 2xx is indexed, 409 is "already
//! indexed" (an earlier delivery of the same `_id`), 429/5xx is worth another try, any other
//! status is a rejection ([`Rejection`], which [`super::dead_letter`] judges). A response that
//! does not match its request (another number of items, an item without its action, no JSON)
//! is an error of the whole request.

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::client::RequestError;
use super::dead_letter::Rejection;

/// The final word on one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Indexed,
    /// 409 on `create`: the same `_id` is already there.
    AlreadyIndexed,
    /// 429 or 5xx: worth another try.
    Retry {
        status: u16,
        reason: String,
    },
    /// Any other 4xx: the cluster will not take this document as it is.
    Rejected(Rejection),
}

/// A whole bulk request failed.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("bulk request failed to reach the cluster: {0}")]
    Connection(#[source] RequestError),
    #[error("bulk request answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bulk response unusable: {0}")]
    Response(String),
}

impl BulkError {
    /// The cluster is down or overloaded: retrying the same request will work later.
    pub fn is_transient(&self) -> bool {
        match self {
            BulkError::Connection(_) => true,
            BulkError::Status { status, .. } => *status == 429 || *status >= 500,
            BulkError::Response(_) => false,
        }
    }

    /// The cluster refuses these credentials or their privileges (or, with SigV4, there are
    /// no credentials to sign with).
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            BulkError::Status {
                status: 401 | 403,
                ..
            } | BulkError::Connection(RequestError::Signing(_))
        )
    }
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    items: Vec<Action>,
}

/// One item of a bulk response: `{"<action>": {...}}`, read without keeping the action's
/// name (every item of a request has one; nothing is allocated for it). `None` when the
/// object names no action.
struct Action(Option<BulkItem>);

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Only;
        impl<'de> Visitor<'de> for Only {
            type Value = Action;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object with one action")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Action, A::Error> {
                let first = map
                    .next_entry::<IgnoredAny, BulkItem>()?
                    .map(|(_, item)| item);
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Action(first))
            }
        }
        deserializer.deserialize_map(Only)
    }
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<ItemError>,
}

#[derive(Deserialize)]
struct ItemError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Classifies a bulk response body; one outcome per action, in request order.
pub fn classify_response(body: &[u8], expected: usize) -> Result<Vec<ItemOutcome>, BulkError> {
    let response: BulkResponse =
        serde_json::from_slice(body).map_err(|e| BulkError::Response(e.to_string()))?;
    if response.items.len() != expected {
        return Err(BulkError::Response(format!(
            "{} items answered for {expected} sent",
            response.items.len()
        )));
    }
    response
        .items
        .into_iter()
        .enumerate()
        .map(|(n, item)| match item.0 {
            Some(item) => Ok(classify_item(item)),
            None => Err(BulkError::Response(format!("item {n} names no action"))),
        })
        .collect()
}

fn classify_item(item: BulkItem) -> ItemOutcome {
    let error = item.error.unwrap_or(ItemError {
        kind: None,
        reason: None,
    });
    let error_type = error.kind.unwrap_or_else(|| "error".into());
    let reason = error.reason.unwrap_or_default();
    match item.status {
        200..=299 => ItemOutcome::Indexed,
        409 => ItemOutcome::AlreadyIndexed,
        429 | 500..=599 => ItemOutcome::Retry {
            status: item.status,
            reason: format!("{error_type}: {reason}"),
        },
        status => ItemOutcome::Rejected(Rejection {
            status,
            error_type,
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_item() {
        let body = br#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"primary"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [requestParameters.filter]"}}},
            {"index":{"status":200}}
        ]}"#;
        let outcomes = classify_response(body, 6).unwrap();
        assert_eq!(outcomes[0], ItemOutcome::Indexed);
        assert_eq!(outcomes[1], ItemOutcome::AlreadyIndexed);
        assert!(matches!(
            outcomes[2],
            ItemOutcome::Retry { status: 429, .. }
        ));
        assert!(matches!(
            outcomes[3],
            ItemOutcome::Retry { status: 503, .. }
        ));
        assert_eq!(
            outcomes[4],
            ItemOutcome::Rejected(Rejection {
                status: 400,
                error_type: "mapper_parsing_exception".into(),
                reason: "failed to parse field [requestParameters.filter]".into()
            })
        );
        assert_eq!(outcomes[5], ItemOutcome::Indexed);
    }

    #[test]
    fn a_response_that_does_not_match_the_request_is_an_error() {
        assert!(classify_response(
            br#"{"errors":false,"items":[{"create":{"status":201}}]}"#,
            2
        )
        .is_err());
        assert!(classify_response(b"<html>", 1).is_err());
        assert!(!classify_response(b"{}", 1).unwrap_err().is_transient());
        // An item without its action must not take the indexer down.
        let err = classify_response(br#"{"errors":false,"items":[{}]}"#, 1).unwrap_err();
        assert!(matches!(err, BulkError::Response(_)), "{err}");
    }

    #[test]
    fn whole_request_failures_are_classified() {
        let status = |status| BulkError::Status {
            status,
            body: String::new(),
        };
        assert!(status(429).is_transient());
        assert!(status(502).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(401).is_transient() && status(401).is_unauthorized());
        assert!(status(403).is_unauthorized());
        assert!(!status(413).is_transient() && !status(413).is_unauthorized());
    }
}
