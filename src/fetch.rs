//! Fetch: one S3 object -> documents handed to the bulk stage as its bytes arrive.
//!
//! Input: an [`ObjectSink`] naming the object. The object is streamed with `GetObject`; gzip is detected by its
//! magic bytes (not by the key) and decoded as multi-member gzip; plain JSON is read as is.
//! Records are split and turned into documents on a blocking thread, and each document is
//! registered on the message's [`Ticket`] before it is sent down the bounded channel, so
//! memory holds one record plus the channel, whatever the object's size.
//!
//! Failure policy: NoSuchKey, AccessDenied, corrupt gzip, malformed JSON are permanent;
//! throttling, 5xx, timeouts and a body stream that breaks are transient. Either way the
//! caller keeps the message: documents already sent stay indexed and are answered 409 when the
//! message comes back.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use flate2::bufread::MultiGzDecoder;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;
use tracing::trace;

use crate::ack::{Failure, Ticket};
use crate::document::{self, DocumentError};
use crate::records::{SplitError, Splitter};

const READ_BUFFER: usize = 64 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A document on its way to the bulk stage, with the ticket of the message it came from.
#[derive(Debug)]
pub struct PendingDocument {
    pub document: document::Document,
    pub ticket: Arc<Ticket>,
    pub origin: Arc<Origin>,
    /// This is the dead-letter entry of a rejected document, not the event itself.
    pub dead_letter: bool,
}

/// Where a document came from; named in logs and in its dead-letter entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub message_id: String,
    pub bucket: String,
    pub key: String,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Everything the documents of one object need on their way out.
#[derive(Clone)]
pub struct ObjectSink {
    pub origin: Arc<Origin>,
    pub options: Arc<document::Options>,
    pub ticket: Arc<Ticket>,
    pub documents: mpsc::Sender<PendingDocument>,
}

/// What reading one object produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectSummary {
    pub documents: u64,
    /// Bytes as stored in S3 (compressed, when gzipped).
    pub stored_bytes: u64,
    /// Records placed by the object's LastModified for lack of a usable eventTime.
    pub fallback_time_documents: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GetObject failed ({code}): {message}")]
    Get {
        code: String,
        message: String,
        transient: bool,
    },
    #[error("reading the object failed: {0}")]
    Read(io::Error),
    #[error("object is not a valid gzip stream: {0}")]
    Gzip(io::Error),
    #[error("{0}")]
    Malformed(SplitError),
    #[error("record {record} is unusable: {source}")]
    Record { record: u64, source: DocumentError },
    #[error("the pipeline is shutting down")]
    Closed,
}

impl FetchError {
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Get { transient, .. } => *transient,
            FetchError::Read(_) | FetchError::Closed => true,
            FetchError::Gzip(_) | FetchError::Malformed(_) | FetchError::Record { .. } => false,
        }
    }
}

/// Streams the object named by `sink.origin` and sends its documents to the sink.
pub async fn fetch(s3: &aws_sdk_s3::Client, sink: ObjectSink) -> Result<ObjectSummary, FetchError> {
    let output = s3
        .get_object()
        .bucket(&sink.origin.bucket)
        .key(&sink.origin.key)
        .send()
        .await
        .map_err(get_error)?;
    let last_modified = output
        .last_modified
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
    let body = SyncIoBridge::new(output.body.into_async_read());
    tokio::task::spawn_blocking(move || {
        split_into_documents(NetworkRead(body), last_modified, &sink)
    })
    .await
    .expect("the split task does not panic")
}

/// The synchronous part: decompress, split, build, send. Runs on a blocking thread.
fn split_into_documents<R: Read>(
    body: R,
    fallback_time: Option<OffsetDateTime>,
    sink: &ObjectSink,
) -> Result<ObjectSummary, FetchError> {
    let mut stored = CountingRead {
        inner: body,
        count: 0,
    };
    let mut summary = ObjectSummary::default();
    {
        let mut raw = BufReader::with_capacity(READ_BUFFER, &mut stored);
        let gzipped = raw.fill_buf().map_err(read_error)?.starts_with(&GZIP_MAGIC);
        let decoded: Box<dyn BufRead> = if gzipped {
            Box::new(BufReader::with_capacity(
                READ_BUFFER,
                MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(raw)
        };
        let mut splitter = Splitter::new(decoded);
        while let Some(record) = splitter.next_record().map_err(split_error)? {
            let document =
                document::build(record, &sink.options, fallback_time).map_err(|source| {
                    FetchError::Record {
                        record: summary.documents,
                        source,
                    }
                })?;
            trace!(index = %document.index, id = %document.id, "document");
            summary.fallback_time_documents += u64::from(document.used_fallback_time);
            sink.ticket.register_document();
            let pending = PendingDocument {
                document,
                ticket: sink.ticket.clone(),
                origin: sink.origin.clone(),
                dead_letter: false,
            };
            if let Err(returned) = sink.documents.blocking_send(pending) {
                // The bulk stage is gone: settle the document we could not hand over.
                returned
                    .0
                    .ticket
                    .document_settled(Err(Failure::transient("pipeline closed")));
                return Err(FetchError::Closed);
            }
            summary.documents += 1;
        }
    }
    summary.stored_bytes = stored.count;
    Ok(summary)
}

/// Marks errors that come from the S3 body stream, so that they can be told apart from
/// decoding errors (which are about the data, not the network).
struct NetworkRead<R>(R);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NetworkError(io::Error);

impl<R: Read> Read for NetworkRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), NetworkError(e)))
    }
}

struct CountingRead<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

fn is_network(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<NetworkError>())
}

fn read_error(err: io::Error) -> FetchError {
    if is_network(&err) {
        FetchError::Read(err)
    } else {
        FetchError::Gzip(err)
    }
}

fn split_error(err: SplitError) -> FetchError {
    match err {
        SplitError::Read(io) => read_error(io),
        malformed => FetchError::Malformed(malformed),
    }
}

fn get_error(err: SdkError<GetObjectError>) -> FetchError {
    let transient = match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status == 429
                || status >= 500
                || matches!(
                    err.code(),
                    Some("SlowDown" | "RequestTimeout" | "Throttling")
                )
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    };
    FetchError::Get {
        code: err.code().unwrap_or("none").to_string(),
        message: aws_sdk_s3::error::DisplayErrorContext(&err).to_string(),
        transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn run(
        body: Vec<u8>,
    ) -> (
        Result<ObjectSummary, FetchError>,
        Vec<PendingDocument>,
        Arc<Ticket>,
    ) {
        let (tx, mut rx) = mpsc::channel(1000);
        let ticket = Ticket::new();
        let result = split_into_documents(&body[..], None, &sink(ticket.clone(), tx));
        let mut docs = Vec::new();
        while let Ok(d) = rx.try_recv() {
            docs.push(d);
        }
        (result, docs, ticket)
    }

    fn sink(ticket: Arc<Ticket>, documents: mpsc::Sender<PendingDocument>) -> ObjectSink {
        ObjectSink {
            origin: Arc::new(Origin {
                message_id: "m".into(),
                bucket: "b".into(),
                key: "k".into(),
            }),
            options: Arc::new(document::Options {
                index_prefix: "ct".into(),
                free_form: document::FreeForm::Objects,
            }),
            ticket,
            documents,
        }
    }

    const LOG: &[u8] = br#"{"Records":[{"eventID":"a","eventTime":"2020-01-01T23:59:59Z"},{"eventID":"b","eventTime":"2020-01-02T00:00:00Z"}]}"#;

    #[test]
    fn gzip_multi_member_and_plain_give_the_same_documents() {
        let half = LOG.len() / 2;
        let mut multi = gzip(&LOG[..half]);
        multi.extend(gzip(&LOG[half..]));
        for body in [LOG.to_vec(), gzip(LOG), multi] {
            let stored = body.len() as u64;
            let (result, docs, _) = run(body);
            let summary = result.expect("reads");
            assert_eq!(summary.documents, 2);
            assert_eq!(summary.stored_bytes, stored);
            let indices: Vec<_> = docs.iter().map(|d| d.document.index.as_str()).collect();
            assert_eq!(indices, ["ct-2020.01.01", "ct-2020.01.02"]);
        }
    }

    #[test]
    fn corrupt_gzip_is_permanent() {
        let mut body = gzip(LOG);
        let n = body.len();
        body[n / 2] ^= 0xff;
        body.truncate(n - 4);
        let (result, _, _) = run(body);
        let err = result.expect_err("corrupt");
        assert!(!err.is_transient(), "{err:?}");
    }

    #[test]
    fn malformed_json_is_permanent_and_earlier_documents_are_registered() {
        let (result, docs, ticket) = run(
            br#"{"Records":[{"eventID":"a","eventTime":"2020-01-01T00:00:00Z"},{"eventID":}]}"#
                .to_vec(),
        );
        let err = result.expect_err("malformed");
        assert!(
            matches!(err, FetchError::Record { record: 1, .. }),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert_eq!(docs.len(), 1);
        for d in docs {
            d.ticket.document_settled(Ok(()));
        }
        drop(ticket);
    }

    #[test]
    fn network_errors_are_transient() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
            }
        }
        let (tx, _rx) = mpsc::channel(1);
        let err = split_into_documents(NetworkRead(Broken), None, &sink(Ticket::new(), tx))
            .expect_err("fails");
        assert!(
            matches!(err, FetchError::Read(_)) && err.is_transient(),
            "{err:?}"
        );
    }
}
