//! S3: one object -> events handed to the sink as its bytes arrive.
//!
//! The object is streamed with `GetObject`; gzip is detected by its magic bytes (not by the
//! key) and decoded as multi-member gzip; anything else is read as is. The format reads the
//! decoded stream on a blocking thread, and each event takes a claim on the payload's
//! [`Ticket`] before it goes down the bounded channel, so memory holds one record plus the
//! channel's byte budget, whatever the object's size.
//!
//! Failure policy (decided here, where the error is born): NoSuchKey, AccessDenied, corrupt
//! gzip and bytes that are not the format are permanent; throttling, 5xx, timeouts and a
//! body stream that breaks are transient. Either way events already sent stay indexed and are
//! answered 409 when the payload comes back.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use flate2::bufread::MultiGzDecoder;
use time::OffsetDateTime;
use tokio_util::io::SyncIoBridge;
use tracing::warn;

use crate::config::{IndexConfig, ObjectFormat, S3Config};
use crate::format::cloudtrail::{self, CloudTrail};
use crate::format::json::{self, Json};
use crate::format::json_lines::JsonLines;
use crate::format::object::Objects;
use crate::format::{
    confluent, Destination, Format, FormatError, FreeForm, Item, PayloadContext, RecordCounters,
};
use crate::pipeline::{EventSender, Origin, Pending, StageError, Ticket};
use crate::telemetry::Stats;

const READ_BUFFER: usize = 64 * 1024;
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

crate::telemetry::counters! {
    /// What the S3 sources read.
    pub struct ObjectCounters {
        objects_read: "S3 objects read to the end",
        objects_failed: "S3 objects that could not be read",
        keys_skipped: "announced or listed keys acknowledged without reading (digests, non-log keys, deletes)",
        bytes_read: "bytes read from S3, as stored",
    }
}

/// Why a key is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `CloudTrail-Digest/` objects hold hashes of log files, not events.
    Digest,
    /// Not a name the object format reads (a folder marker; with `cloudtrail`, a key not
    /// named `.json` or `.json.gz`).
    NotEventLog,
    /// An S3/EventBridge event about something other than a new object.
    NotObjectCreated,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Digest => "digest",
            SkipReason::NotEventLog => "not_event_log",
            SkipReason::NotObjectCreated => "not_object_created",
        }
    }
}

/// Key endings of JSON-lines objects that `auto` reads besides CloudTrail's `.json` and
/// `.json.gz`.
const JSON_LINES_ENDINGS: [&str; 4] = [".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz"];

/// `None` when `key` names an object to read in `format`: with `cloudtrail`, a `.json` or
/// `.json.gz` log (CloudTrail-Insight logs included); with `auto`, also `.ndjson[.gz]` and
/// `.jsonl[.gz]`; with `ndjson`, any key (Firehose and Fluent Bit name objects without an
/// ending). Digests and folder markers are never read.
pub fn skip_reason(key: &str, format: ObjectFormat) -> Option<SkipReason> {
    let named = |endings: &[&str]| endings.iter().any(|e| key.ends_with(e));
    if key.contains("/CloudTrail-Digest/") || key.starts_with("CloudTrail-Digest/") {
        return Some(SkipReason::Digest);
    }
    let read = match format {
        _ if key.is_empty() || key.ends_with('/') => false,
        ObjectFormat::Ndjson => true,
        ObjectFormat::Cloudtrail => named(&[".json", ".json.gz"]),
        ObjectFormat::Auto => named(&[".json", ".json.gz"]) || named(&JSON_LINES_ENDINGS),
    };
    (!read).then_some(SkipReason::NotEventLog)
}

/// The object format `config` asks for, writing free-form values the `free_form` way.
pub fn object_format(config: &S3Config, free_form: FreeForm) -> Objects {
    let format = config.object_format;
    Objects {
        cloudtrail: format.reads_cloudtrail().then_some(CloudTrail {
            options: cloudtrail::Options { free_form },
        }),
        json_lines: format.reads_json_lines().then(|| {
            let time_fields: Vec<&str> = match &config.ndjson_time_field {
                Some(field) => vec![field],
                None => json::DEFAULT_TIME_FIELDS.to_vec(),
            };
            JsonLines::new(
                free_form,
                Json::new(config.ndjson_id_field.as_deref(), time_fields),
            )
        }),
    }
}

/// Where the events of S3 objects go: CloudTrail logs to `--index-prefix`, Confluent audit
/// records and other JSON lines each to their own prefix (when the object format reads them).
pub fn destinations(config: &S3Config, index: &IndexConfig) -> Vec<Destination> {
    destinations_under(config, index.prefix())
}

/// [`destinations`], with CloudTrail logs going to `<cloudtrail_prefix>-*`.
pub fn destinations_under(config: &S3Config, cloudtrail_prefix: &str) -> Vec<Destination> {
    let mut destinations = Vec::new();
    if config.object_format.reads_cloudtrail() {
        destinations.push(Destination::new(
            cloudtrail::DATASET,
            cloudtrail_prefix,
            cloudtrail::mapping::mappings,
        ));
    }
    if config.object_format.reads_json_lines() {
        let ndjson = Destination::new(
            json::DATASET,
            config.ndjson_index_prefix.clone(),
            json::mappings,
        );
        let confluent = Destination::new(
            confluent::DATASET,
            config.confluent_index_prefix.clone(),
            confluent::mapping::mappings,
        );
        destinations.extend([ndjson, confluent]);
    }
    destinations
}

/// Where CloudTrail events go: `--index-prefix`.
pub fn cloudtrail_destination(index: &IndexConfig) -> Destination {
    Destination::new(
        cloudtrail::DATASET,
        index.prefix(),
        cloudtrail::mapping::mappings,
    )
}

/// One S3 object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl ObjectRef {
    /// The origin of this object's events: `s3.bucket` and `s3.key`, plus the fields of
    /// whatever announced it (`announced_by`, a JSON object such as
    /// `{"sqs": {"message_id": ...}}`).
    pub fn origin(&self, announced_by: serde_json::Value) -> Origin {
        let mut fields = serde_json::json!({S3_PLACE: {"bucket": self.bucket, "key": self.key}});
        if let (Some(fields), serde_json::Value::Object(more)) =
            (fields.as_object_mut(), announced_by)
        {
            fields.extend(more);
        }
        Origin::new(self.to_string(), fields)
    }
}

/// Everything the events of one object need on their way out.
#[derive(Clone)]
pub struct ObjectSink {
    pub origin: Arc<Origin>,
    /// The field of the origin that names the payload ([`S3_PLACE`] for an S3 object,
    /// `file` for a local file): a record's line number goes under it.
    pub place: &'static str,
    pub format: Arc<dyn Format>,
    pub ticket: Arc<Ticket>,
    pub events: EventSender,
}

/// The origin field that names an S3 object (`s3.bucket`, `s3.key`; `s3.line` of a record).
pub const S3_PLACE: &str = "s3";

/// What reading one object produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectSummary {
    pub events: u64,
    /// Bytes as stored in S3 (compressed, when gzipped).
    pub stored_bytes: u64,
    /// Records placed by the object's LastModified for lack of a usable time.
    pub fallback_time_events: u64,
    /// Records that are not usable (JSON lines that are no JSON object), dead-lettered.
    pub unreadable: u64,
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
    Format(FormatError),
    #[error("the pipeline is shutting down")]
    Closed,
}

/// An announced or listed object that could not be read to the end.
#[derive(Debug, thiserror::Error)]
#[error("s3://{bucket}/{key}: {error}")]
pub struct ObjectFailure {
    pub bucket: String,
    pub key: String,
    pub error: FetchError,
}

impl StageError for ObjectFailure {
    fn is_transient(&self) -> bool {
        self.error.is_transient()
    }
}

impl FetchError {
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Get { transient, .. } => *transient,
            FetchError::Read(_) | FetchError::Closed => true,
            FetchError::Gzip(_) | FetchError::Format(_) => false,
        }
    }
}

/// The S3 client for `config` (path-style addressing when asked).
pub fn client(aws: &aws_config::SdkConfig, config: &S3Config) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(config.s3_force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Counts what reading `object` produced, and says when records had no usable time.
pub fn count(stats: &Stats, object: &ObjectRef, summary: &ObjectSummary) {
    let objects = stats.counters::<ObjectCounters>();
    objects.objects_read.add(1);
    objects.bytes_read.add(summary.stored_bytes);
    let records = stats.counters::<RecordCounters>();
    records.records_unreadable.add(summary.unreadable);
    records
        .records_fallback_time
        .add(summary.fallback_time_events);
    if summary.fallback_time_events > 0 {
        warn!(
            bucket = %object.bucket,
            key = %object.key,
            documents = summary.fallback_time_events,
            "records without a usable time of their own were placed by the object's LastModified"
        );
    }
}

/// Streams `object` and sends its events to the sink.
pub async fn fetch(
    s3: &aws_sdk_s3::Client,
    object: &ObjectRef,
    sink: ObjectSink,
) -> Result<ObjectSummary, FetchError> {
    let output = s3
        .get_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .send()
        .await
        .map_err(get_error)?;
    let last_modified = output
        .last_modified
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
    let body = SyncIoBridge::new(output.body.into_async_read());
    let name = object.to_string();
    tokio::task::spawn_blocking(move || {
        let context = PayloadContext {
            name: &name,
            fallback_time: last_modified,
        };
        read_stream(body, &context, &sink)
    })
    .await
    .expect("the read task does not panic")
}

/// `raw`, decompressed when it starts as gzip does.
pub fn decoded<'a, R: Read + 'a>(mut raw: BufReader<R>) -> std::io::Result<Box<dyn BufRead + 'a>> {
    let gzipped = raw.fill_buf()?.starts_with(&GZIP_MAGIC);
    Ok(if gzipped {
        Box::new(BufReader::with_capacity(
            READ_BUFFER,
            MultiGzDecoder::new(raw),
        ))
    } else {
        Box::new(raw)
    })
}

/// Reads a whole stream as an object: decompresses it when gzipped, reads the format and
/// sends the events. Synchronous: run it on a blocking thread. An error of `body` itself is
/// [`FetchError::Read`] (transient); one of its bytes is a gzip or format error (permanent).
pub fn read_stream<R: Read>(
    body: R,
    context: &PayloadContext<'_>,
    sink: &ObjectSink,
) -> Result<ObjectSummary, FetchError> {
    let mut stored = CountingRead {
        inner: NetworkRead(body),
        count: 0,
    };
    let read = {
        let raw = BufReader::with_capacity(READ_BUFFER, &mut stored);
        let mut decoded = decoded(raw).map_err(read_error)?;
        let mut outbox = sink.events.outbox();
        let mut emit = |item| {
            let pending = match item {
                Item::Event(event) => Pending::new(event, sink.origin.clone(), sink.ticket.claim()),
                Item::Unreadable {
                    event,
                    line,
                    reason,
                } => {
                    warn!(origin = %sink.origin, line, reason, "record is not usable; sending it to the dead-letter index");
                    let origin = Arc::new(at_line(&sink.origin, sink.place, line));
                    Pending::refused(event, origin, sink.ticket.claim(), reason)
                }
            };
            outbox.push(pending)
        };
        let read = sink.format.read(&mut decoded, context, &mut emit);
        // What was read before an error is sent too (see the formats' failure policy).
        match (read, outbox.flush()) {
            (Ok(_), Err(closed)) => Err(FormatError::Closed(closed)),
            (read, _) => read,
        }
    };
    let summary = read.map_err(|err| match err {
        FormatError::Read(io) => read_error(io),
        FormatError::Closed(_) => FetchError::Closed,
        other => FetchError::Format(other),
    })?;
    Ok(ObjectSummary {
        events: summary.events,
        stored_bytes: stored.count,
        fallback_time_events: summary.fallback_time_events,
        unreadable: summary.unreadable,
    })
}

/// The origin of the record at `line` of an object: its dead-letter entry says
/// `<place>.line` (`s3.line`, `file.line`).
fn at_line(object: &Origin, place: &str, line: u64) -> Origin {
    let mut fields = serde_json::Value::Object(object.fields().cloned().unwrap_or_default());
    fields[place]["line"] = line.into();
    Origin::new(format!("{object} line {line}"), fields)
}

/// Marks errors that come from the stream itself (the S3 body, a file), so that they can be
/// told apart from decoding errors (which are about the data).
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
    use crate::format::cloudtrail::{CloudTrail, FreeForm, Options};
    use crate::pipeline::{channel, EventReceiver};
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn sink(ticket: Arc<Ticket>, events: EventSender) -> ObjectSink {
        ObjectSink {
            origin: Arc::new(
                ObjectRef {
                    bucket: "b".into(),
                    key: "k".into(),
                }
                .origin(serde_json::json!({})),
            ),
            place: S3_PLACE,
            format: Arc::new(CloudTrail {
                options: Options {
                    free_form: FreeForm::Objects,
                },
            }),
            ticket,
            events,
        }
    }

    /// Reads `body` on a blocking thread, as [`fetch`] does.
    async fn read<R: Read + Send + 'static>(
        body: R,
    ) -> (Result<ObjectSummary, FetchError>, Vec<Pending>) {
        let (tx, mut rx): (_, EventReceiver) = channel(1000, 1 << 20);
        let sink = sink(Ticket::new(), tx);
        let result = tokio::task::spawn_blocking(move || {
            let context = PayloadContext {
                name: "s3://b/k",
                fallback_time: Some(OffsetDateTime::UNIX_EPOCH),
            };
            read_stream(body, &context, &sink)
        })
        .await
        .unwrap();
        let mut events = Vec::new();
        while let Ok(Some(parcel)) =
            tokio::time::timeout(std::time::Duration::from_millis(10), rx.recv()).await
        {
            events.extend(parcel.events);
        }
        (result, events)
    }

    const LOG: &[u8] = br#"{"Records":[{"eventID":"a","eventTime":"2020-01-01T23:59:59Z"},{"eventID":"b","eventTime":"2020-01-02T00:00:00Z"}]}"#;

    #[tokio::test]
    async fn gzip_multi_member_and_plain_give_the_same_events() {
        let half = LOG.len() / 2;
        let mut multi = gzip(&LOG[..half]);
        multi.extend(gzip(&LOG[half..]));
        for body in [LOG.to_vec(), gzip(LOG), multi] {
            let stored = body.len() as u64;
            let (result, events) = read(io::Cursor::new(body)).await;
            let summary = result.expect("reads");
            assert_eq!(summary.events, 2);
            assert_eq!(summary.stored_bytes, stored);
            let ids: Vec<_> = events.iter().map(|p| p.event.id.as_str()).collect();
            assert_eq!(ids, ["a", "b"]);
        }
    }

    #[test]
    fn which_keys_each_object_format_reads() {
        use ObjectFormat::{Auto, Cloudtrail, Ndjson};
        let digest = Some(SkipReason::Digest);
        let not_read = Some(SkipReason::NotEventLog);
        let table = [
            (
                "AWSLogs/1/CloudTrail-Digest/us-east-1/2020/09/11/x.json.gz",
                [digest; 3],
            ),
            (
                "AWSLogs/1/CloudTrail-Insight/us-east-1/2020/09/11/x.json.gz",
                [None; 3],
            ),
            (
                "AWSLogs/1/CloudTrail/us-east-1/2020/09/11/x.json",
                [None; 3],
            ),
            ("topics/t/partition=0/t+0+0000000000.json.gz", [None; 3]),
            ("logs/2024/05/01/app.ndjson.gz", [not_read, None, None]),
            (
                "firehose/2024/05/01/10/stream-1-2024-05-01-10-00-00-abc",
                [not_read, not_read, None],
            ),
            ("HappyFace.jpg", [not_read, not_read, None]),
            ("AWSLogs/1/CloudTrail/", [not_read; 3]),
        ];
        for (key, expected) in table {
            for (format, expected) in [Cloudtrail, Auto, Ndjson].into_iter().zip(expected) {
                assert_eq!(skip_reason(key, format), expected, "{key} {format:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_line_that_is_no_json_goes_to_the_dead_letter_index_with_its_line() {
        let (tx, mut rx): (_, EventReceiver) = channel(1000, 1 << 20);
        let mut sink = sink(Ticket::new(), tx);
        let config = <crate::config::Config as clap::Parser>::parse_from(["x"]);
        sink.format = Arc::new(object_format(&config.s3, FreeForm::Objects));
        let body = gzip(b"{\"a\":1}\n\nnot json\n{\"b\":2}{\"c\":3}\n");
        let result = tokio::task::spawn_blocking(move || {
            let context = PayloadContext {
                name: "s3://b/k",
                fallback_time: Some(OffsetDateTime::UNIX_EPOCH),
            };
            read_stream(io::Cursor::new(body), &context, &sink)
        })
        .await
        .unwrap()
        .expect("reads");
        assert_eq!((result.events, result.unreadable), (3, 1));
        let mut refused = Vec::new();
        while let Ok(Some(parcel)) =
            tokio::time::timeout(std::time::Duration::from_millis(10), rx.recv()).await
        {
            for pending in &parcel.events {
                let Some(reason) = &pending.refusal else {
                    continue;
                };
                refused.push((pending.origin.fields().cloned(), reason.to_string()));
            }
        }
        let [(fields, reason)] = &refused[..] else {
            panic!("{refused:?}")
        };
        let fields = serde_json::Value::Object(fields.clone().unwrap());
        assert_eq!(
            fields["s3"],
            serde_json::json!({"bucket": "b", "key": "k", "line": 3})
        );
        assert!(reason.starts_with("line 3: not JSON"), "{reason}");
    }

    #[tokio::test]
    async fn corrupt_gzip_is_permanent() {
        let mut body = gzip(LOG);
        let n = body.len();
        body[n / 2] ^= 0xff;
        body.truncate(n - 4);
        let (result, _) = read(io::Cursor::new(body)).await;
        let err = result.expect_err("corrupt");
        assert!(!err.is_transient(), "{err:?}");
    }

    #[tokio::test]
    async fn malformed_json_is_permanent_and_earlier_events_are_sent() {
        let body =
            br#"{"Records":[{"eventID":"a","eventTime":"2020-01-01T00:00:00Z"},{"eventID":}]}"#;
        let (result, events) = read(io::Cursor::new(body.to_vec())).await;
        let err = result.expect_err("malformed");
        assert!(
            matches!(
                err,
                FetchError::Format(FormatError::Record { record: 1, .. })
            ),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert_eq!(events.len(), 1);
    }

    #[tokio::test]
    async fn network_errors_are_transient() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
            }
        }
        let (result, _) = read(NetworkRead(Broken)).await;
        let err = result.expect_err("fails");
        assert!(
            matches!(err, FetchError::Read(_)) && err.is_transient(),
            "{err:?}"
        );
    }
}
