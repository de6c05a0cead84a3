//! ECS: what every format's Elastic Common Schema document shares.
//!
//! A format that writes ECS documents gathers its fields as [`Fields`] ([`fields`]: the dotted
//! paths its documents may have, each named by its slot, written as nested JSON), or, where
//! one record type is hot enough to have its mapping compiled (CloudTrail's), into its own
//! structure that writes the document in one pass with [`Nested`] ([`nested`]), from the
//! record's objects, read as [`Object`]s ([`object`]: members found without a tree, looked up
//! by key) or member by member with a [`Cursor`] ([`cursor`]: one pass, each member handed to
//! the mapping as it comes), both keeping what the mapping leaves, so nothing is lost. The
//! keys a mapping reads are listed once as [`Known`] ([`known`]): a lookup is then an index,
//! and a key repeated in an object is left by the cursor itself. Values are text, numbers,
//! booleans, lists of text, or JSON written as it came (a record's own object). Short lists a
//! mapping gathers per document are [`Few`] ([`few`]); its texts are [`Str`]s, which need no
//! drop ([`strings`]). Also here: what makes an address an IP the cluster accepts ([`ip`]),
//! and the `ecs`, `data_stream` and `event.dataset` fields every document carries
//! ([`Stream`]).
//!
//! Pure: no I/O.

pub mod cursor;
pub mod few;
pub mod fields;
pub mod known;
pub mod nested;
pub mod object;
pub mod strings;
pub mod top;
pub mod value;

use std::borrow::Cow;
use std::net::IpAddr;

use super::document::write_str;
use super::FreeForm;
use crate::enrich::GeoIp;
pub use cursor::{text, Cursor};
pub use few::Few;
pub use fields::{slot, Fields, Layout, Paths};
pub(crate) use known::known;
pub use known::{Known, Member};
pub use nested::Nested;
pub use object::Object;
pub use strings::{Str, Strings};
pub use top::Top;
pub use value::Value;

/// The ECS version the documents follow (that of Elastic's AWS integration).
pub const ECS_VERSION: &str = "8.11.0";

/// A text searched for in a record's values, its searcher built once (for each search,
/// building one costs more than the search in a value of a few hundred bytes).
#[derive(Debug)]
pub struct Needle {
    text: &'static str,
    finder: std::sync::OnceLock<memchr::memmem::Finder<'static>>,
}

impl Needle {
    pub const fn new(text: &'static str) -> Self {
        Needle {
            text,
            finder: std::sync::OnceLock::new(),
        }
    }

    /// Where the text is in `haystack`, each place found.
    pub fn find_iter<'h>(&'static self, haystack: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
        self.finder().find_iter(haystack)
    }

    /// Whether `haystack` holds the text.
    pub fn found_in(&'static self, haystack: &str) -> bool {
        self.finder().find(haystack.as_bytes()).is_some()
    }

    fn finder(&'static self) -> &'static memchr::memmem::Finder<'static> {
        self.finder
            .get_or_init(|| memchr::memmem::Finder::new(self.text))
    }
}

/// `address` as an IP the cluster's `ip` type accepts: IPv4 in dotted decimal without
/// leading zeros, or IPv6; `None` for anything else (`AWS Internal`, a host name).
pub fn ip(address: &str) -> Option<IpAddr> {
    address.parse().ok()
}

/// Sets `source.address` to `address` as written and, when it is an IP address,
/// `source.ip`, `related.ip` and the GeoIP answer for it (`source.geo`, `source.as`).
pub fn source<'a>(address: Cow<'a, str>, geoip: Option<&GeoIp>, fields: &mut Fields<'a>) {
    if let Some(found) = ip(&address) {
        if let Some(answer) = geoip.and_then(|g| g.lookup(found)) {
            fields.set(
                const { slot(&[], "source.geo") },
                Value::Members(answer.members().into()),
            );
        }
        fields.set(const { slot(&[], "source.ip") }, address.clone());
        fields.set(
            const { slot(&[], "related.ip") },
            Value::List(std::slice::from_ref(&address).into()),
        );
    }
    fields.set(const { slot(&[], "source.address") }, address);
}

/// What the worker adds to a vendor's ECS core document (Confluent Cloud's, Konnect's).
#[derive(Debug, Clone, Copy)]
pub struct Added<'a> {
    /// `@timestamp`: the event's time, UTC, milliseconds.
    pub timestamp: &'a str,
    /// `event.created`: when it was read.
    pub created: &'a str,
    pub stream: &'a Stream,
    pub free_form: FreeForm,
    pub geoip: Option<&'a GeoIp>,
}

/// JSON kept whole in a document (a record's own object, what a mapping left): as it is
/// where the cluster stores free-form objects, as JSON text elsewhere.
pub fn kept<'a>(json: impl Into<Cow<'a, [u8]>>, free_form: FreeForm) -> Value<'a> {
    match free_form {
        FreeForm::Strings => Value::JsonText(json.into()),
        FreeForm::Objects | FreeForm::AsWritten => Value::Json(json.into()),
    }
}

/// The typed fields every ECS document here may have (dates, addresses, GeoIP answers); other
/// strings are keywords by the dynamic template of [`crate::format::mapping::dynamic`].
pub fn core_properties() -> serde_json::Map<String, serde_json::Value> {
    use crate::format::mapping::insert;
    use serde_json::json;
    let mut properties = serde_json::Map::new();
    for date in ["@timestamp", "event.created"] {
        insert(&mut properties, date, json!({"type": "date"}));
    }
    insert(&mut properties, "source.ip", json!({"type": "ip"}));
    insert(&mut properties, "related.ip", json!({"type": "ip"}));
    insert(
        &mut properties,
        "source.geo.location",
        json!({"type": "geo_point"}),
    );
    insert(&mut properties, "source.as.number", json!({"type": "long"}));
    insert(&mut properties, "event.severity", json!({"type": "long"}));
    properties
}

/// The mappings of an ECS core document whose record is kept whole at `own`
/// (`confluent.audit`): [`core_properties`], and `own` as the cluster stores free-form objects.
pub fn core_mappings(
    own: &str,
    free_form: crate::format::mapping::FreeFormMapping,
) -> serde_json::Value {
    let mut properties = core_properties();
    crate::format::mapping::insert(&mut properties, own, free_form.to_json());
    crate::format::mapping::dynamic(properties)
}

/// The data stream a dataset's ECS documents belong to (`logs-<dataset>-<namespace>`), which
/// each document names in `data_stream.*` and `event.dataset` as Elastic Agent writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The dataset as Elastic names it (`aws.cloudtrail`).
    dataset: &'static str,
    namespace: String,
    /// What every document of the stream carries, written once: the members of
    /// `data_stream`, of `ecs` and of `event`.
    members: [Box<[u8]>; 3],
    /// `data_stream` and `ecs` as members of a document.
    objects: Box<[u8]>,
}

impl Stream {
    pub fn new(dataset: &'static str, namespace: impl Into<String>) -> Stream {
        let namespace = namespace.into();
        let mut data_stream = Vec::new();
        data_stream.extend_from_slice(b"\"dataset\":");
        write_str(&mut data_stream, dataset);
        data_stream.extend_from_slice(b",\"namespace\":");
        write_str(&mut data_stream, &namespace);
        data_stream.extend_from_slice(b",\"type\":\"logs\"");
        let mut event = b"\"kind\":\"event\",\"dataset\":".to_vec();
        write_str(&mut event, dataset);
        let ecs = format!("\"version\":\"{ECS_VERSION}\"").into_bytes();
        let objects = [
            &b"\"data_stream\":{"[..],
            &data_stream,
            b"},\"ecs\":{",
            &ecs,
            b"}",
        ]
        .concat();
        Stream {
            dataset,
            namespace,
            members: [data_stream.into(), ecs.into(), event.into()],
            objects: objects.into(),
        }
    }

    /// The members `data_stream` and `ecs`, whole (`"data_stream":{...},"ecs":{...}`).
    pub fn objects(&self) -> &[u8] {
        &self.objects
    }

    /// The members of `event` the stream gives (`"kind":"event","dataset":...`).
    pub fn event_members(&self) -> &[u8] {
        &self.members[2]
    }

    /// `logs-<dataset>-<namespace>`.
    pub fn name(&self) -> String {
        format!("logs-{}-{}", self.dataset, self.namespace)
    }

    /// Sets the fields every document carries: `@timestamp`, `event.created`, `event.kind`
    /// (`event`), and this stream's `ecs.version`, `data_stream.*` and `event.dataset`.
    /// `timestamp` and `created` are times this worker wrote (digits, `-`, `:`, `.`, `T`,
    /// `Z`): they are copied with no escape.
    pub fn common<'a>(&'a self, fields: &mut Fields<'a>, timestamp: &'a str, created: &'a str) {
        fields.set(const { slot(&[], "@timestamp") }, Value::Clean(timestamp));
        fields.set(const { slot(&[], "event.created") }, Value::Clean(created));
        self.set(fields);
    }

    /// Sets `ecs.version`, `data_stream.*`, `event.kind` and `event.dataset` (in every
    /// layout's [`fields::COMMON`]), written once when the stream was made.
    pub fn set<'a>(&'a self, fields: &mut Fields<'a>) {
        let [data_stream, ecs, event] = &self.members;
        for (slot, members) in [
            (const { slot(&[], "data_stream.dataset") }, data_stream),
            (const { slot(&[], "ecs.version") }, ecs),
            (const { slot(&[], "event.kind") }, event),
        ] {
            fields.set(slot, Value::Members(Cow::Borrowed(members)));
        }
        fields.held(&[
            const { slot(&[], "data_stream.namespace") },
            const { slot(&[], "data_stream.type") },
            const { slot(&[], "event.dataset") },
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_ip_type_takes_is_an_ip() {
        for good in ["81.2.69.144", "2001:db8::1", "::ffff:1.2.3.4"] {
            assert!(ip(good).is_some(), "{good}");
        }
        for bad in [
            "AWS Internal",
            "ec2.amazonaws.com",
            "010.1.2.3",
            "1.2.3",
            "",
        ] {
            assert!(ip(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_stream_names_itself_in_every_document() {
        static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        let stream = Stream::new("aws.cloudtrail", "prod");
        assert_eq!(stream.name(), "logs-aws.cloudtrail-prod");
        let mut fields = Fields::new(LAYOUT.get_or_init(|| Layout::new(&[])));
        stream.common(&mut fields, "t", "c");
        let mut out = Vec::new();
        fields.write(&mut out);
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["data_stream"]["namespace"], "prod");
        assert_eq!(doc["event"]["dataset"], "aws.cloudtrail");
        assert_eq!(doc["event"]["kind"], "event");
        assert_eq!(doc["ecs"]["version"], ECS_VERSION);
        assert_eq!(doc["@timestamp"], "t");
    }

    #[test]
    fn a_stream_s_fields_are_written_once() {
        static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        let stream = Stream::new("aws.cloudtrail", "prod");
        let mut fields = Fields::new(LAYOUT.get_or_init(|| Layout::new(&[])));
        stream.common(&mut fields, "t", "c");
        for path in ["data_stream.namespace", "data_stream.type", "event.dataset"] {
            fields.set(slot(&[], path), "again");
        }
        let mut out = Vec::new();
        fields.write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("again"), "{text}");
    }
}
