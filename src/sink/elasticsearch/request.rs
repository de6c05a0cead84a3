//! Request: events -> one bulk request body, sent to the cluster, its answer classified.
//!
//! Each event is one `create` action into its daily index with `_id` = the event's id
//! (`create`, not `index`: a redelivered event is answered 409 and never overwrites), followed
//! by its source on one line. Bodies may be gzipped (`--bulk-compression gzip`). The query
//! asks only for what classification needs ([`super::response`]).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use elasticsearch::http::Method;

use super::client::Cluster;
use super::response::{classify_response, BulkError, ItemOutcome};
use crate::format::document::write_str;

/// `POST /_bulk` asking only for what classification needs
/// (`filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason`), encoded as
/// SigV4's canonical form encodes it (every byte but the unreserved ones), so that the query
/// signed and the one sent are the same bytes.
const BULK_PATH: &str =
    "/_bulk?filter_path=errors%2Citems.%2A.status%2Citems.%2A.error.type%2Citems.%2A.error.reason";
/// Bulk bodies, kept once sent for the requests that follow: a body is megabytes, and memory
/// fresh from the system costs a page fault for every 4 KiB first written. At most `keep`
/// bodies are kept, none larger than `largest` bytes (a body made large by one huge event is
/// given back to the system).
#[derive(Debug)]
pub struct Bodies {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
    largest: usize,
}

impl Bodies {
    pub fn new(keep: usize, largest: usize) -> Arc<Self> {
        Arc::new(Bodies {
            free: Mutex::new(Vec::new()),
            keep,
            largest,
        })
    }

    /// An empty body with room for `capacity` bytes.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let kept = self
            .free
            .lock()
            .expect("the body pool is never poisoned")
            .pop();
        let mut body = kept.unwrap_or_default();
        body.reserve(capacity);
        body
    }

    /// `body` as the bytes of a request; it comes back here once the request is done with it.
    pub fn share(self: &Arc<Self>, body: Vec<u8>) -> Bytes {
        Bytes::from_owner(Sent {
            body,
            bodies: self.clone(),
        })
    }

    fn give_back(&self, mut body: Vec<u8>) {
        if body.capacity() > self.largest {
            return;
        }
        body.clear();
        let mut free = self.free.lock().expect("the body pool is never poisoned");
        if free.len() < self.keep {
            free.push(body);
        }
    }
}

/// A body in a request, given back to its pool when the last of its bytes is dropped.
struct Sent {
    body: Vec<u8>,
    bodies: Arc<Bodies>,
}

impl AsRef<[u8]> for Sent {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Drop for Sent {
    fn drop(&mut self) {
        self.bodies.give_back(std::mem::take(&mut self.body));
    }
}

/// Appends one `create` action and its source to a bulk body; `pipeline` names the ingest
/// pipeline to run instead of the index's default one (`_none`: none).
pub fn append_create(
    body: &mut Vec<u8>,
    index: &str,
    id: &str,
    pipeline: Option<&str>,
    source: &[u8],
) {
    body.extend_from_slice(b"{\"create\":{\"_index\":");
    write_str(body, index);
    body.extend_from_slice(b",\"_id\":");
    write_str(body, id);
    if let Some(pipeline) = pipeline {
        body.extend_from_slice(b",\"pipeline\":");
        write_str(body, pipeline);
    }
    body.extend_from_slice(b"}}\n");
    body.extend_from_slice(source);
    body.push(b'\n');
}

/// Gzips a bulk body (`--bulk-compression gzip`) at the fastest level: most of the saving
/// for little CPU.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 6),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .expect("compressing into memory cannot fail");
    encoder
        .finish()
        .expect("compressing into memory cannot fail")
}

/// Sends one bulk body (gzipped when `gzipped`) and classifies its items.
pub async fn send(
    client: &Cluster,
    body: Bytes,
    gzipped: bool,
    items: usize,
) -> Result<Vec<ItemOutcome>, BulkError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if gzipped {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let response = client
        .send(Method::Post, BULK_PATH, headers, Some(body))
        .await
        .map_err(BulkError::Connection)?;
    let status = response.status_code().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| BulkError::Connection(e.into()))?;
    if status != 200 {
        return Err(BulkError::Status {
            status,
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
        });
    }
    classify_response(&bytes, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulk_query_is_the_filter_path_encoded() {
        let url = url::Url::parse(&format!("http://h{BULK_PATH}")).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let filter = "errors,items.*.status,items.*.error.type,items.*.error.reason";
        assert_eq!(pairs, [("filter_path".to_string(), filter.to_string())]);
    }

    #[test]
    fn bodies_come_back_once_their_bytes_are_dropped() {
        let bodies = Bodies::new(1, 1 << 20);
        let mut body = bodies.take(1000);
        body.extend_from_slice(b"first");
        let address = body.as_ptr();
        let sent = bodies.share(body);
        let clone = sent.clone();
        drop(sent);
        assert_eq!(&clone[..], b"first");
        assert!(
            bodies.free.lock().unwrap().is_empty(),
            "a clone still holds it"
        );
        drop(clone);
        let again = bodies.take(10);
        assert!(again.is_empty() && again.capacity() >= 1000);
        assert_eq!(again.as_ptr(), address, "the same memory");
        // Only `keep` are kept, and none larger than `largest`.
        drop(bodies.share(bodies.take(10)));
        drop(bodies.share(bodies.take(10)));
        assert_eq!(bodies.free.lock().unwrap().len(), 1);
        let _ = bodies.take(10);
        drop(bodies.share(bodies.take(2 << 20)));
        assert!(bodies.free.lock().unwrap().is_empty());
    }

    #[test]
    fn a_create_is_its_action_and_its_source_on_two_lines() {
        let mut body = Vec::new();
        append_create(&mut body, "ct-2024.12.31", "a\"b\\c", None, br#"{"x":1}"#);
        let text = std::str::from_utf8(&body).unwrap();
        let mut lines = text.lines();
        let action: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(
            action,
            serde_json::json!({"create": {"_index": "ct-2024.12.31", "_id": "a\"b\\c"}})
        );
        assert_eq!(lines.next(), Some(r#"{"x":1}"#));
        assert!(text.ends_with('\n'));
        let mut body = Vec::new();
        append_create(&mut body, "logs-a-default", "i", Some("_none"), b"{}");
        let action: serde_json::Value =
            serde_json::from_slice(body.split(|&b| b == b'\n').next().unwrap()).unwrap();
        assert_eq!(
            action,
            serde_json::json!({"create": {"_index": "logs-a-default", "_id": "i", "pipeline": "_none"}})
        );
    }
}
