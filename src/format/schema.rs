//! Schema: the fields documents are stored with, decided after detection saw each record as
//! its producer wrote it.
//!
//! - `raw`: the format's document as it is; with GeoIP databases, a CloudTrail document gets
//!   `source.geo` and `source.as` beside the record's own fields (a top-level `source`
//!   object, which CloudTrail records do not have);
//! - `ecs`: CloudTrail documents become the Elastic Common Schema documents of Elastic's AWS
//!   integration ([`super::cloudtrail::ecs`]), and go to the data stream
//!   `logs-aws.cloudtrail-<namespace>` where the cluster has data streams; or, with
//!   `--ingest-pipeline`, CloudTrail records go there as Elastic Agent sends them (the record
//!   as text in `message`) for that pipeline to map; Confluent Cloud's and Konnect's records
//!   become an ECS core with the record kept whole ([`super::confluent::ecs`],
//!   [`super::konnect::ecs`]), in their daily indices.
//!
//! [`Shaper`] is the [`Shape`] the runtime places after the stages; [`destinations`] says
//! where each dataset's documents go and with which mappings. Other datasets pass unchanged.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use super::cloudtrail::{self, ecs::Ecs};
use super::document::write_str;
use super::ecs::{ip, text, Object};
use super::mapping::Mappings;
use super::{confluent, konnect};
use super::{Destination, FreeForm};
use crate::config::{Schema, SchemaConfig};
use crate::enrich::GeoIp;
use crate::pipeline::{Dataset, Event, EventSender, Shape, Stream};

/// Rewrites documents into the configured schema.
#[derive(Debug)]
pub struct Shaper {
    /// The CloudTrail ECS mapping, with `--schema ecs`.
    ecs: Option<Ecs>,
    /// GeoIP for raw CloudTrail documents.
    geoip: Option<GeoIp>,
    /// With `--ingest-pipeline`: CloudTrail records go as Elastic Agent sends them, for the
    /// pipeline to map (the data stream they name).
    agent: Option<super::ecs::Stream>,
    /// What each of [`CORES`]' documents name as their dataset, in its order.
    streams: Vec<super::ecs::Stream>,
}

/// A format whose records get an ECS core (no Elastic integration to follow): its dataset,
/// the dataset its documents name, their mappings and how they are written.
struct Core {
    dataset: Dataset,
    names: &'static str,
    mappings: Mappings,
    write: CoreWriter,
}

/// Every format with an ECS core.
const CORES: [Core; 2] = [
    Core {
        dataset: confluent::DATASET,
        names: confluent::ecs::STREAM_DATASET,
        mappings: confluent::ecs::mappings,
        write: confluent::ecs::write,
    },
    Core {
        dataset: konnect::DATASET,
        names: konnect::ecs::STREAM_DATASET,
        mappings: konnect::ecs::mappings,
        write: konnect::ecs::write,
    },
];

impl Shaper {
    /// The shape `config` asks for (`free_form`: how the cluster stores free-form objects),
    /// or `None` when documents stay as their formats made them.
    pub fn new(config: &SchemaConfig, free_form: FreeForm, geoip: Option<GeoIp>) -> Option<Self> {
        let streams = CORES
            .iter()
            .map(|core| super::ecs::Stream::new(core.names, &config.data_stream_namespace))
            .collect();
        let ecs = Ecs::new(&config.data_stream_namespace, free_form, geoip.clone());
        match config.schema {
            Schema::Ecs => Some(Shaper {
                agent: config.ingest_pipeline.is_some().then(|| stream(config)),
                ecs: Some(ecs),
                geoip: None,
                streams,
            }),
            Schema::Raw => geoip.map(|geoip| Shaper {
                ecs: None,
                geoip: Some(geoip),
                agent: None,
                streams,
            }),
        }
    }
}

impl Shape for Shaper {
    fn shape(&self, event: &mut Event, now: SystemTime) -> Result<(), String> {
        let trail = event.dataset == cloudtrail::DATASET;
        if let (Some(stream), true) = (&self.agent, trail) {
            let (source, ()) =
                super::document::chunks::write(event.source.len() * 2 + 256, |out| {
                    as_agent_sends(out, event, stream)
                });
            event.source = source;
            event.outline = Vec::new();
        } else if let Some(ecs) = &self.ecs {
            self.ecs_document(event, ecs, now)?;
        } else if let (Some(geoip), true) = (&self.geoip, trail) {
            if let Some(members) = raw_source(event, geoip) {
                let (source, ()) = super::document::chunks::write(
                    event.source.len() + members.len() + 16,
                    |out| splice_source(out, &event.source, &members),
                );
                event.source = source;
                event.outline = Vec::new();
            }
        }
        Ok(())
    }
}

impl Shaper {
    /// `event` as its dataset's ECS document; events of other datasets pass unchanged.
    fn ecs_document(&self, event: &mut Event, ecs: &Ecs, now: SystemTime) -> Result<(), String> {
        let created = cloudtrail::ecs::dates::created_at(now);
        let timestamp = cloudtrail::ecs::dates::millis(event.time);
        let size = event.source.len() * 2 + 512;
        let not_json = || format!("{} record is not one JSON object", event.dataset);
        let core = |stream: &super::ecs::Stream, write: CoreWriter| {
            let record = without_spliced_timestamp(&event.source, &event.timestamp);
            let record = std::str::from_utf8(&record).map_err(|_| not_json())?;
            let added = super::ecs::Added {
                timestamp: &timestamp,
                created: &created,
                stream,
                free_form: ecs.free_form,
                geoip: ecs.geoip.as_ref(),
            };
            let (source, written) =
                super::document::chunks::write(size, |out| write(record, &added, out));
            written.ok_or_else(not_json).map(|()| source)
        };
        let source = if event.dataset == cloudtrail::DATASET {
            let (source, written) = super::document::chunks::write_bytes(size, |out| {
                cloudtrail::ecs::write(
                    &event.source,
                    &event.outline,
                    &timestamp,
                    &created,
                    ecs,
                    out,
                )
            });
            written.map_err(|e| e.to_string())?;
            source
        } else if let Some(n) = CORES.iter().position(|c| c.dataset == event.dataset) {
            core(&self.streams[n], CORES[n].write)?
        } else {
            return Ok(());
        };
        event.timestamp = timestamp;
        event.source = source;
        event.outline = Vec::new();
        Ok(())
    }
}

/// How a vendor's ECS core document is written (see [`confluent::ecs::write`]).
type CoreWriter = fn(&str, &super::ecs::Added<'_>, &mut Vec<u8>) -> Option<()>;

/// The data stream of CloudTrail's ECS documents under `config`.
fn stream(config: &SchemaConfig) -> super::ecs::Stream {
    super::ecs::Stream::new(
        cloudtrail::ecs::STREAM_DATASET,
        &config.data_stream_namespace,
    )
}

/// The document Elastic Agent's S3 input makes of a record, for its integration's ingest
/// pipeline: the record as text in `message` (without the `@timestamp` the format spliced
/// in), `@timestamp` (which the pipeline replaces with `eventTime`), `ecs.version`,
/// `data_stream.*` and `event.dataset`.
fn as_agent_sends(out: &mut Vec<u8>, event: &Event, stream: &super::ecs::Stream) {
    use super::ecs::{Fields, Layout, Paths, Value};
    const PATHS: Paths = &["message"];
    static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
    let record = without_spliced_timestamp(&event.source, &event.timestamp);
    let mut fields = Fields::new(LAYOUT.get_or_init(|| Layout::new(PATHS)));
    fields.set(
        const { super::ecs::slot(PATHS, "@timestamp") },
        event.timestamp.as_str(),
    );
    fields.set(
        const { super::ecs::slot(PATHS, "message") },
        Value::JsonText(record),
    );
    stream.set(&mut fields);
    fields.write(out);
}

/// `document` without the `"@timestamp":"<timestamp>"` member a format splices in first.
fn without_spliced_timestamp<'a>(document: &'a [u8], timestamp: &str) -> Cow<'a, [u8]> {
    let mut member = b"{\"@timestamp\":".to_vec();
    write_str(&mut member, timestamp);
    let Some(rest) = document.strip_prefix(member.as_slice()) else {
        return Cow::Borrowed(document);
    };
    match rest.first() {
        Some(b',') => Cow::Owned([&b"{"[..], &rest[1..]].concat()),
        Some(b'}') => Cow::Borrowed(&b"{}"[..]),
        _ => Cow::Borrowed(document),
    }
}

/// The GeoIP answer for a raw CloudTrail document's `sourceIPAddress`, when it has one and
/// no `source` of its own.
fn raw_source(event: &Event, geoip: &GeoIp) -> Option<Vec<u8>> {
    let source = std::str::from_utf8(&event.source).ok()?;
    let document = if event.outline.is_empty() {
        Object::parse(source)
    } else {
        Object::outlined(source, &event.outline)
    }?;
    if document.get("source").is_some() {
        return None;
    }
    let address = document.get("sourceIPAddress").and_then(text)?;
    Some(geoip.lookup(ip(&address)?)?.members().to_vec())
}

/// `document` with `"source":{<members>},` after its opening brace.
fn splice_source(out: &mut Vec<u8>, document: &[u8], members: &[u8]) {
    let open = document
        .iter()
        .position(|&b| b == b'{')
        .expect("a document is a JSON object");
    out.extend_from_slice(&document[..=open]);
    write_str(out, "source");
    out.extend_from_slice(b":{");
    out.extend_from_slice(members);
    out.push(b'}');
    let empty = document[open + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        == Some(&b'}');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&document[open + 1..]);
}

/// `events`, shaped into the schema `config` asks for (`free_form`: how the cluster stores
/// free-form objects), and how the sources must write free-form values for it: as written
/// when the shape rewrites them.
pub fn attach(
    events: EventSender,
    config: &SchemaConfig,
    free_form: FreeForm,
    geoip: Option<GeoIp>,
) -> (EventSender, FreeForm) {
    let read_as = match config.schema {
        Schema::Ecs => FreeForm::AsWritten,
        Schema::Raw => free_form,
    };
    match Shaper::new(config, free_form, geoip) {
        Some(shaper) => (events.shaped(Arc::new(shaper)), read_as),
        None => (events, read_as),
    }
}

/// Where each destination's documents go under `config`: with `--schema ecs`, CloudTrail's
/// get the ECS mappings and, where the cluster has data streams, the data stream
/// `logs-aws.cloudtrail-<namespace>` (the sink falls back to the daily indices elsewhere).
pub fn destinations(config: &SchemaConfig, destinations: Vec<Destination>) -> Vec<Destination> {
    if config.schema == Schema::Raw {
        return destinations;
    }
    destinations
        .into_iter()
        .map(|mut destination| {
            if let Some(core) = CORES.iter().find(|c| c.dataset == destination.dataset) {
                destination.mappings = core.mappings;
            } else if destination.dataset == cloudtrail::DATASET {
                destination.mappings = cloudtrail::ecs::mapping::mappings;
                destination.stream = Some(Stream {
                    name: stream(config).name(),
                    pipeline: match config.ingest_pipeline.as_deref() {
                        None => Some("_none".to_string()),
                        Some("default") => None,
                        Some(name) => Some(name.to_string()),
                    },
                });
            }
            destination
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::cloudtrail::{record_event, Options};

    fn geoip() -> GeoIp {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/geoip/");
        GeoIp::open(&[
            format!("{dir}GeoLite2-City-Test.mmdb").into(),
            format!("{dir}GeoLite2-ASN-Test.mmdb").into(),
        ])
        .expect("the test databases")
    }

    fn config(schema: Schema) -> SchemaConfig {
        SchemaConfig {
            schema,
            data_stream_namespace: "default".into(),
            ingest_pipeline: None,
            geoip_databases: Vec::new(),
        }
    }

    fn event(record: &str, free_form: FreeForm) -> Event {
        record_event(record.as_bytes(), &Options { free_form }, None).expect("an event")
    }

    fn json(event: &Event) -> serde_json::Value {
        serde_json::from_slice(&event.source).expect("valid JSON")
    }

    #[test]
    fn raw_documents_get_geoip_beside_their_fields() {
        let shaper = Shaper::new(&config(Schema::Raw), FreeForm::Objects, Some(geoip()))
            .expect("a shaper for GeoIP");
        let mut found = event(
            r#"{"eventTime":"2024-05-01T12:00:00Z","sourceIPAddress":"89.160.20.156"}"#,
            FreeForm::Objects,
        );
        shaper.shape(&mut found, SystemTime::now()).unwrap();
        let doc = json(&found);
        assert_eq!(doc["source"]["geo"]["country_iso_code"], "SE");
        assert_eq!(doc["source"]["as"]["number"], 29518);
        assert_eq!(doc["sourceIPAddress"], "89.160.20.156");
        for unknown in ["AWS Internal", "10.0.0.1"] {
            let record =
                format!(r#"{{"eventTime":"2024-05-01T12:00:00Z","sourceIPAddress":"{unknown}"}}"#);
            let mut unchanged = event(&record, FreeForm::Objects);
            let before = unchanged.source.clone();
            shaper.shape(&mut unchanged, SystemTime::now()).unwrap();
            assert_eq!(unchanged.source, before, "{unknown}");
        }
        assert!(Shaper::new(&config(Schema::Raw), FreeForm::Objects, None).is_none());
    }

    #[test]
    fn ecs_documents_replace_cloudtrail_ones_and_others_pass() {
        let shaper = Shaper::new(&config(Schema::Ecs), FreeForm::Objects, Some(geoip())).unwrap();
        let mut found = event(
            r#"{"eventTime":"2024-05-01T12:00:00Z","eventID":"e","sourceIPAddress":"89.160.20.156"}"#,
            FreeForm::AsWritten,
        );
        shaper.shape(&mut found, SystemTime::now()).unwrap();
        let doc = json(&found);
        assert_eq!(doc["event"]["id"], "e");
        assert_eq!(doc["source"]["geo"]["city_name"], "Link\u{f6}ping");
        assert_eq!(found.timestamp, "2024-05-01T12:00:00.000Z");
        assert!(found.outline.is_empty());
        let mut other = found.clone();
        other.dataset = crate::format::json::DATASET;
        other.source = bytes::Bytes::from_static(b"{\"a\":1}");
        shaper.shape(&mut other, SystemTime::now()).unwrap();
        assert_eq!(&other.source[..], b"{\"a\":1}");
    }

    #[test]
    fn for_an_ingest_pipeline_records_go_as_elastic_agent_sends_them() {
        let mut config = config(Schema::Ecs);
        config.ingest_pipeline = Some("logs-aws.cloudtrail-2.17.0".into());
        let shaper = Shaper::new(&config, FreeForm::Objects, None).unwrap();
        let record = r#"{"eventTime":"2024-05-01T12:00:00Z","eventID":"e","x":"a\"b"}"#;
        let mut found = event(record, FreeForm::AsWritten);
        shaper.shape(&mut found, SystemTime::now()).unwrap();
        let doc = json(&found);
        assert_eq!(doc["@timestamp"], "2024-05-01T12:00:00Z");
        assert_eq!(doc["data_stream"]["dataset"], "aws.cloudtrail");
        let message: serde_json::Value =
            serde_json::from_str(doc["message"].as_str().unwrap()).unwrap();
        assert_eq!(
            message,
            serde_json::from_str::<serde_json::Value>(record).unwrap()
        );
        assert_eq!(
            &without_spliced_timestamp(br#"{"@timestamp":"t"}"#, "t")[..],
            b"{}"
        );
        assert_eq!(
            &without_spliced_timestamp(br#"{"@timestamp":"u","a":1}"#, "t")[..],
            br#"{"@timestamp":"u","a":1}"#
        );
    }

    #[test]
    fn only_cloudtrail_destinations_change_with_ecs() {
        let all = vec![
            Destination::new(cloudtrail::DATASET, "ct", cloudtrail::mapping::mappings),
            Destination::new(
                crate::format::json::DATASET,
                "nd",
                crate::format::json::mappings,
            ),
        ];
        let raw = destinations(&config(Schema::Raw), all.clone());
        assert!(raw.iter().all(|d| d.stream.is_none()));
        let ecs = destinations(&config(Schema::Ecs), all);
        let stream = ecs[0].stream.as_ref().expect("a data stream");
        assert_eq!(stream.name, "logs-aws.cloudtrail-default");
        assert_eq!(stream.pipeline.as_deref(), Some("_none"));
        let mut by_pipeline = config(Schema::Ecs);
        by_pipeline.ingest_pipeline = Some("default".into());
        let handed = destinations(&by_pipeline, ecs.clone());
        assert_eq!(handed[0].stream.as_ref().unwrap().pipeline, None);
        assert_eq!(
            ecs[0].prefix, "ct",
            "daily indices where there are no data streams"
        );
        assert!(ecs[1].stream.is_none());
    }
}
