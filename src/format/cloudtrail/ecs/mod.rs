//! ECS: a CloudTrail event's document -> the document Elastic's AWS integration makes of
//! the record (its `aws.cloudtrail` data stream), for Elastic Security's rules, dashboards
//! and views.
//!
//! Input: the raw document the format made (the record with `@timestamp` spliced in, and its
//! outline), the event's time, and what the worker adds (`event.created`, the data stream,
//! GeoIP answers). Output: one JSON document with the integration's fields, names and types:
//! - `event.*` (`action` = `eventName`, `provider` = `eventSource`, `outcome` (a
//!   `ConsoleLogin`'s own answer), `category`/`type` by event name ([`category`]), `id`,
//!   `kind`, `created`), `@timestamp` = `eventTime` in milliseconds;
//! - `user.*`, `cloud.account.id` and `aws.cloudtrail.user_identity.*` ([`identity`]);
//! - `source.address` as written, `source.ip` only when it is an IP address (never
//!   `AWS Internal` or a service name, which the cluster would refuse), `source.geo` and
//!   `source.as` from the GeoIP databases; `user_agent.original`; `tls.*`; `group.*`;
//!   `user.target.*`; `related.*`;
//! - every other record field in snake case under `aws.cloudtrail`; the free-form objects
//!   twice, as JSON text (`aws.cloudtrail.request_parameters`) and as objects
//!   (`aws.cloudtrail.flattened.request_parameters`, mapped `flattened`);
//! - what the integration does not map, under `aws.cloudtrail.unmapped` with the record's own
//!   names, so no part of a record is lost.
//!
//! Failure policy: a record whose top level cannot be read, or whose objects the mapping looks
//! into are not valid JSON, is an [`EcsError`] (permanent): the sink dead-letters its raw
//! document with the reason.

/// The [`Member`] of a top-level key of [`TOP`], at compile time: `top!("eventName")`.
macro_rules! top {
    ($key:literal) => {
        const { $crate::format::cloudtrail::ecs::TOP.member($key) }
    };
}

pub mod category;
pub mod dates;
pub mod doc;
pub mod identity;
pub mod mapping;

/// The top-level keys of a record the mapping reads: each is found once, as the record's
/// members are read, and looked up by its place.
pub static TOP: Known = known!(&known::plain([
    "@timestamp",
    "eventTime",
    "userIdentity",
    "eventName",
    "eventSource",
    "awsRegion",
    "eventID",
    "errorCode",
    "errorMessage",
    "sourceIPAddress",
    "userAgent",
    "readOnly",
    "recipientAccountId",
    "sharedEventID",
    "sharedEventId",
    "resources",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "serviceEventDetails",
    "tlsDetails",
    "addendum",
    "insightDetails",
    "eventVersion",
    "requestID",
    "eventType",
    "apiVersion",
    "managementEvent",
    "eventCategory",
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "sessionCredentialFromConsole",
]));

use std::borrow::Cow;

use bytes::BytesMut;

use crate::enrich::GeoIp;
use crate::format::ecs::{
    self, known, text, Cursor, Few, Known, Member, Needle, Object, Stream, Strings, Top,
};
use crate::format::{escape, FreeForm};
use doc::{Doc, Kept};

/// The dataset Elastic's integration writes CloudTrail to.
pub const STREAM_DATASET: &str = "aws.cloudtrail";

/// The record's free-form members, in the order of [`Doc::free_form`]: each is written under
/// `aws.cloudtrail` in snake case, as JSON text and as an object under `flattened`.
const FREE_FORM: [Member; 4] = [
    top!("requestParameters"),
    top!("responseElements"),
    top!("additionalEventData"),
    top!("serviceEventDetails"),
];

/// Top-level members copied as text to their `aws.cloudtrail` names, in the order of
/// [`Doc::texts`].
const TEXT: [Member; 9] = [
    top!("eventVersion"),
    top!("requestID"),
    top!("eventType"),
    top!("apiVersion"),
    top!("managementEvent"),
    top!("eventCategory"),
    top!("vpcEndpointId"),
    top!("vpcEndpointAccountId"),
    top!("sessionCredentialFromConsole"),
];

/// How CloudTrail documents are written in ECS.
#[derive(Debug, Clone)]
pub struct Ecs {
    pub stream: Stream,
    /// Whether the cluster stores the flattened objects (`Objects`), or only their text
    /// (`Strings`).
    pub free_form: FreeForm,
    pub geoip: Option<GeoIp>,
}

impl Ecs {
    pub fn new(namespace: &str, free_form: FreeForm, geoip: Option<GeoIp>) -> Self {
        Ecs {
            stream: Stream::new(STREAM_DATASET, namespace),
            free_form,
            geoip,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    #[error("the record's top level is not a JSON object of members")]
    Malformed,
}

impl EcsError {
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// Appends the ECS document of the event whose raw document is `document` (`outline`: its
/// top-level separators, when known), placed at `timestamp` (its time in UTC to the
/// millisecond, as [`dates::millis`] writes it), read at `created`.
pub fn write(
    document: &[u8],
    outline: &[u32],
    timestamp: &str,
    created: &str,
    ecs: &Ecs,
    out: &mut BytesMut,
) -> Result<(), EcsError> {
    // The format checked the record's UTF-8; checked again here, its slices are text. One
    // pass finds whether it is ASCII (most records are: nothing more to check) and whether it
    // holds a backslash (most do not: no string in it has an escape to look for).
    let survey = escape::survey(document);
    let document = if survey.ascii {
        // SAFETY: ASCII bytes (surveyed just above) are UTF-8.
        unsafe { std::str::from_utf8_unchecked(document) }
    } else {
        simdutf8::basic::from_utf8(document).map_err(|_| EcsError::Malformed)?
    };
    let mut record = if outline.is_empty() {
        Top::parse(document, &TOP, survey.backslash)
    } else {
        Top::outlined(document, outline, &TOP, survey.backslash)
    }
    .ok_or(EcsError::Malformed)?;
    let mut resources = Resources::take();
    let strings = &Strings::new();
    let mut doc = Doc::new(&ecs.stream, timestamp, created, strings);
    record.take(top!("@timestamp"));
    record.take(top!("eventTime"));
    // Read once, its session context and the objects in that with it.
    if let Some(raw) = record
        .get(top!("userIdentity"))
        .filter(|raw| raw.starts_with('{'))
    {
        if let Some(rest) = identity::map(raw, &mut doc.identity, &mut doc.related, strings) {
            record.take(top!("userIdentity"));
            record.leave(top!("userIdentity"), rest);
        }
    }
    let signs_in = event(&mut record, &mut doc);
    source(&mut record, &mut doc, ecs.geoip.as_ref());
    record.texts(TEXT, strings, &mut doc.texts);
    if let Some(read_only) = record
        .get(top!("readOnly"))
        .filter(|v| *v == "true" || *v == "false")
    {
        record.take(top!("readOnly"));
        doc.read_only = Some(read_only == "true");
    }
    doc.recipient = record.text(top!("recipientAccountId"), strings);
    // The identity's account first.
    doc.account_id = doc.identity.account_id.or(doc.recipient);
    let shared = record.text(top!("sharedEventID"), strings);
    doc.shared_event_id = shared.or_else(|| record.text(top!("sharedEventId"), strings));
    if let Some(written) = resources.read(&mut record) {
        doc.resources = Some(written);
    }
    free_form(&mut record, &mut doc, ecs.free_form);
    details(&mut record, &mut doc, ecs.free_form);
    users(&record, &mut doc, signs_in);
    if let Some(rest) = record.rest() {
        doc.unmapped = Some(Kept::new(rest, ecs.free_form));
    }
    doc.write(out);
    Ok(())
}

/// `event.*` and `cloud.*` of the record's own fields.
/// Returns whether the event is an Identity Center sign-in (`UserAuthentication`).
fn event<'a>(record: &mut Top<'a>, doc: &mut Doc<'a>) -> bool {
    let strings = doc.strings;
    let action = record.text(top!("eventName"), strings);
    let provider = record.text(top!("eventSource"), strings);
    doc.service = provider.and_then(|p| {
        let service = p.strip_suffix(".amazonaws.com")?;
        Some(p.part(..service.len()))
    });
    doc.provider = provider;
    doc.region = record.text(top!("awsRegion"), strings);
    doc.id = record.text(top!("eventID"), strings);
    doc.error_code = record.text(top!("errorCode"), strings);
    doc.error_message = record.text(top!("errorMessage"), strings);
    if doc.error_code.is_some() || doc.error_message.is_some() {
        doc.outcome = "failure";
    }
    let Some(action) = action else {
        return false;
    };
    if action == "ConsoleLogin" {
        if let Some(answer) = console_login(record, doc) {
            doc.outcome = answer;
        }
    }
    if let Some((category, types)) = category::of(action.as_str()) {
        doc.category = Some(category);
        doc.types = types;
    }
    let signs_in = action == "UserAuthentication";
    doc.action = Some(action);
    signs_in
}

/// A `ConsoleLogin`'s `aws.cloudtrail.console_login.*`; returns its outcome (its own
/// answer, `Success` or `Failure`, in lower case) when it has one.
fn console_login<'a>(record: &Top<'a>, doc: &mut Doc<'a>) -> Option<&'static str> {
    if let Some(data) = record
        .get(top!("additionalEventData"))
        .and_then(Object::scan)
    {
        let flag = |key: &str| data.get(key).and_then(text).map(|v| v != "No");
        doc.mfa_used = flag("MFAUsed");
        doc.mobile_version = flag("MobileVersion");
        doc.login_to = doc.strings.text(data.get("LoginTo").and_then(text));
    }
    let answer = record
        .get(top!("responseElements"))
        .and_then(Object::scan)?
        .get("ConsoleLogin")
        .and_then(text)?;
    match answer.to_ascii_lowercase().as_str() {
        "success" => Some("success"),
        "failure" => Some("failure"),
        _ => None,
    }
}

/// `source.*` and `user_agent.original`: the address as written, and when it is an IP the
/// cluster takes (never `AWS Internal` or a service name), `source.ip`, `related.ip` and the
/// GeoIP answer for it.
fn source<'a>(record: &mut Top<'a>, doc: &mut Doc<'a>, geoip: Option<&GeoIp>) {
    let strings = doc.strings;
    if let Some(address) = record.text(top!("sourceIPAddress"), strings) {
        if let Some(found) = ecs::ip(&address) {
            doc.ip = Some(address);
            doc.geo = geoip.and_then(|g| g.lookup(found));
        }
        doc.address = Some(address);
    }
    doc.user_agent = record.text(top!("userAgent"), strings);
}

/// The members of a resource the mapping reads, each with its place in what it writes.
static RESOURCE: Known<usize> = known!(&[("ARN", 0), ("accountId", 1), ("type", 2)]);

thread_local! {
    /// Each thread's buffer for `aws.cloudtrail.resources`, kept between documents.
    static RESOURCES: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A buffer grown past this by one large record is not kept for the next.
const KEPT_CAPACITY: usize = 64 * 1024;

/// `aws.cloudtrail.resources` of one document, written in the thread's buffer.
struct Resources(Vec<u8>);

impl Resources {
    fn take() -> Self {
        let mut buffer = RESOURCES.try_with(|kept| kept.take()).unwrap_or_default();
        buffer.clear();
        Resources(buffer)
    }

    /// Writes each resource's `ARN`, `accountId` and `type` as `arn`, `account_id` and `type`,
    /// each resource once, and takes `resources` from the record; `None` (and nothing taken)
    /// when there is nothing to write or the list cannot be read.
    fn read<'r>(&'r mut self, record: &mut Top<'_>) -> Option<&'r [u8]> {
        let raw = record.get(top!("resources"))?;
        let out = &mut self.0;
        // Where each resource written starts and ends in `out`.
        let mut written = Spans::default();
        let read = Cursor::each_object(raw, |resource| {
            resource_into(resource, 0, &mut written, out)
        })
        .is_some();
        if !read {
            return None;
        }
        record.take(top!("resources"));
        if out.is_empty() {
            return None;
        }
        out.push(b']');
        Some(&self.0)
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        if self.0.capacity() <= KEPT_CAPACITY {
            let buffer = std::mem::take(&mut self.0);
            let _ = RESOURCES.try_with(|kept| kept.set(buffer));
        }
    }
}

/// Appends `resource` to the list that starts at `list` in `out` (`written`: where the
/// resources written so far are), unless it is empty or written already; gives back where
/// it ends in the record's text.
fn resource_into(
    mut resource: Cursor<'_>,
    list: usize,
    written: &mut Spans,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let start = out.len();
    out.push(if start == list { b'[' } else { b',' });
    let open = out.len();
    let mut taken = [None; 3];
    while let Some(member) = resource.next(&RESOURCE).ok()? {
        match member {
            Some(n) => taken[n] = Some(resource.take()),
            None => resource.leave(),
        }
    }
    let (end, rest) = resource.finish()?;
    for (value, name) in taken
        .into_iter()
        .zip([&b"\"arn\":"[..], b"\"account_id\":", b"\"type\":"])
    {
        if let Some(Some(value)) = value {
            out.push(if out.len() == open { b'{' } else { b',' });
            out.extend_from_slice(name);
            out.extend_from_slice(value.as_bytes());
        }
    }
    if let Some(rest) = rest {
        // Other keys (a lower-case `accountid`) keep their names.
        out.push(if out.len() == open { b'{' } else { b',' });
        out.extend_from_slice(&rest[1..rest.len() - 1]);
    }
    if out.len() == open {
        out.truncate(start);
        return Some(end);
    }
    out.push(b'}');
    if written
        .iter()
        .any(|&(from, to)| out[from..to] == out[open..])
    {
        out.truncate(start);
    } else {
        written.push((open, out.len()));
    }
    Some(end)
}

/// Where each resource written starts and ends in the document: the first four in place
/// (records have one to three resources).
type Spans = Few<(usize, usize), 4>;

/// Whether the text of `requestParameters` holds a key that the mapping reads from it: one
/// search for `Name"`, each find checked against the keys.
fn names_a_user_or_group(raw: &[u8]) -> bool {
    const KEYS: [&[u8]; 3] = [b"\"userName\"", b"\"newUserName\"", b"\"groupName\""];
    static NAME: Needle = Needle::new("Name\"");
    NAME.find_iter(raw)
        .any(|at| KEYS.iter().any(|key| raw[..at + 5].ends_with(key)))
}

/// The free-form objects, as text and as objects, and what the integration reads from them
/// (`group.*`, `user.target.*`, `user.changes.name`, the names `related.user` gets).
fn free_form<'a>(record: &mut Top<'a>, doc: &mut Doc<'a>, kind: FreeForm) {
    static USER: Needle = Needle::new("\"user\"");
    static GROUP: Needle = Needle::new("\"group\"");
    // Read only when they may hold what is looked for: most are large and hold none of it.
    let request = record
        .get(top!("requestParameters"))
        .filter(|raw| names_a_user_or_group(raw.as_bytes()))
        .and_then(Object::scan);
    let response = record
        .get(top!("responseElements"))
        .filter(|raw| USER.found_in(raw) || GROUP.found_in(raw))
        .and_then(Object::scan);
    let strings = doc.strings;
    let named = |object: &Option<Object<'a>>, key: &str| {
        strings.text(object.as_ref().and_then(|o| o.get(key)).and_then(text))
    };
    let nested = |object: &Option<Object<'a>>, outer: &str, key: &str| {
        let inner = object
            .as_ref()
            .and_then(|o| o.get(outer))
            .and_then(Object::scan);
        strings.text(inner.and_then(|o| o.get(key)).and_then(text))
    };
    doc.target_name = named(&request, "userName");
    doc.changed_name = named(&request, "newUserName");
    doc.target_id = nested(&response, "user", "userId");
    for name in [doc.target_name, doc.changed_name, doc.target_id]
        .into_iter()
        .flatten()
    {
        doc.related.user(name);
    }
    doc.group = [
        nested(&response, "group", "groupId"),
        named(&request, "groupName"),
    ];
    for ((key, raw), flattened) in FREE_FORM
        .into_iter()
        .zip(&mut doc.free_form)
        .zip(&mut doc.flattened)
    {
        let Some(taken) = record.take(key) else {
            continue;
        };
        *raw = Some(taken);
        if kind != FreeForm::Strings {
            *flattened = Some(if taken.starts_with('{') {
                Cow::Borrowed(taken.as_bytes())
            } else {
                Cow::Owned([&b"{\"value\":"[..], taken.as_bytes(), b"}"].concat())
            });
        }
    }
}

/// `tls.*`, `addendum`, and the objects of Insights events and CloudTrail Lake.
fn details<'a>(record: &mut Top<'a>, doc: &mut Doc<'a>, kind: FreeForm) {
    let strings = doc.strings;
    if let Some(mut tls) = record.object(top!("tlsDetails")) {
        let [protocol, version, cipher, server_name] = &mut doc.tls;
        match strings.text(tls.text("tlsVersion")) {
            Some(text) if text == "tlsVersion" => {}
            Some(text) => match memchr::memchr(b'v', text.as_bytes()) {
                Some(v) => {
                    *protocol = Some(strings.keep(Cow::Owned(text[..v].to_ascii_lowercase())));
                    *version = Some(text.part(v + 1..));
                }
                None => *version = Some(text),
            },
            None => {}
        }
        *cipher = strings.text(tls.text("cipherSuite"));
        *server_name = strings.text(tls.text("clientProvidedHostHeader"));
        doc.host = server_name.filter(|host| !host.ends_with(".amazonaws.com"));
        doc.key_exchange = strings.text(tls.text("keyExchange"));
        record.leave(top!("tlsDetails"), tls.rest());
    }
    if let Some(mut addendum) = record.object(top!("addendum")) {
        for (key, text) in [
            "reason",
            "updatedFields",
            "originalRequestID",
            "originalEventID",
        ]
        .into_iter()
        .zip(&mut doc.addendum)
        {
            *text = strings.text(addendum.text(key));
        }
        record.leave(top!("addendum"), addendum.rest());
    }
    if let Some(insight) = record.take(top!("insightDetails")) {
        doc.insight = Some(Kept::new(insight.as_bytes(), kind));
    }
}

/// `user.id`, `user.name` (and `user.email` when it is an e-mail address), and
/// `related.user`: the names of the request (the new name of a renamed user among them), then
/// the user's; an Identity Center sign-in (`signs_in`) names its user in its own data.
fn users<'a>(record: &Top<'a>, doc: &mut Doc<'a>, signs_in: bool) {
    let related = &mut doc.related;
    let (id, mut name) = (related.id.take(), related.name.take());
    if name.is_none() && signs_in {
        // An Identity Center sign-in names its user only here.
        let data = record
            .get(top!("additionalEventData"))
            .and_then(Object::scan);
        name = doc
            .strings
            .text(data.and_then(|data| data.get("UserName")).and_then(text))
            .filter(|n| !n.is_empty());
    }
    // The session's name first (see `identity`).
    doc.email = doc.identity.email.take().or_else(|| {
        name.filter(|name| memchr::memchr(b'@', name.as_bytes()).is_some_and(|at| at > 0))
    });
    for user in [name, related.on_behalf_of.take()].into_iter().flatten() {
        related.user(user);
    }
    doc.user_id = id;
    doc.user_name = name;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::cloudtrail::{record_event, Options};
    use dates::millis;
    use serde_json::{json, Value as Json};
    use time::macros::datetime;

    fn ecs_of(record: &str, free_form: FreeForm) -> Json {
        let options = Options {
            free_form: FreeForm::AsWritten,
        };
        let event = record_event(
            record.as_bytes(),
            &options,
            Some(datetime!(2024-01-01 00:00:00 UTC)),
        )
        .expect("an event");
        let mut out = BytesMut::new();
        let ecs = Ecs::new("prod", free_form, None);
        write(
            &event.source,
            &event.outline,
            &millis(event.time),
            "2024-06-01T00:00:00Z",
            &ecs,
            &mut out,
        )
        .expect("a document");
        assert!(!out.contains(&b'\n'));
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn an_address_that_is_no_ip_keeps_its_text_and_has_no_ip() {
        for address in ["AWS Internal", "ec2.amazonaws.com", "010.1.2.3"] {
            let doc = ecs_of(
                &format!(r#"{{"eventTime":"2024-05-01T12:00:00Z","sourceIPAddress":"{address}"}}"#),
                FreeForm::Objects,
            );
            assert_eq!(doc["source"], json!({"address": address}));
            assert!(doc.get("related").is_none());
        }
    }

    #[test]
    fn nothing_of_the_record_is_lost() {
        let doc = ecs_of(
            r#"{"eventTime":"2024-05-01T12:00:00.250Z","eventID":"e","eventName":"PutThing",
                "userIdentity":{"type":"IAMUser","userName":"ann","onBehalfOf":{"userId":"u","extra":1},
                  "sessionContext":{"attributes":{"mfaAuthenticated":"true","other":"x"}}},
                "edgeDeviceDetails":{"a":[1,2]},"readOnly":"maybe","requestParameters":"p",
                "errorCode":"AccessDenied"}"#,
            FreeForm::Objects,
        );
        assert_eq!(doc["@timestamp"], "2024-05-01T12:00:00.250Z");
        assert_eq!(doc["event"]["outcome"], "failure");
        assert_eq!(doc["event"]["type"], json!(["info"]));
        assert_eq!(doc["user"]["name"], "ann");
        assert_eq!(doc["data_stream"]["namespace"], "prod");
        assert_eq!(
            doc["aws"]["cloudtrail"]["unmapped"],
            json!({
                "userIdentity": {"onBehalfOf": {"extra": 1},
                                 "sessionContext": {"attributes": {"other": "x"}}},
                "edgeDeviceDetails": {"a": [1, 2]},
                "readOnly": "maybe",
            })
        );
        assert_eq!(
            doc["aws"]["cloudtrail"]["flattened"]["request_parameters"],
            json!({"value": "p"})
        );
        assert_eq!(doc["aws"]["cloudtrail"]["request_parameters"], "\"p\"");
    }

    #[test]
    fn escaped_text_is_written_escaped_and_plain_text_as_it_is() {
        let doc = ecs_of(
            r#"{"eventTime":"2024-05-01T12:00:00Z","eventName":"Put\"Thing",
                "errorMessage":"line\nbreak \\ \u00e9","userAgent":"plain agent",
                "userIdentity":{"type":"IAMUser","userName":"a\"nn","arn":"arn:aws:iam::1:user/a\"nn"}}"#,
            FreeForm::Objects,
        );
        assert_eq!(doc["event"]["action"], "Put\"Thing");
        assert_eq!(
            doc["aws"]["cloudtrail"]["error_message"],
            "line\nbreak \\ \u{e9}"
        );
        assert_eq!(doc["user_agent"]["original"], "plain agent");
        assert_eq!(doc["user"]["name"], "a\"nn");
        assert_eq!(doc["related"]["user"], json!(["a\"nn"]));
    }

    #[test]
    fn an_identity_is_read_whatever_the_order_of_its_members() {
        let doc = ecs_of(
            r#"{"eventTime":"2024-05-01T12:00:00Z","userIdentity":{
                "sessionContext":{"sessionIssuer":{"userName":"Role","type":"Role","type":"again"},
                                  "attributes":{"creationDate":"not a date","mfaAuthenticated":"false"}},
                "arn":"arn:aws:sts::1:assumed-role/Role/jane","type":"AssumedRole","arn":"second",
                "principalId":"P:jane","sessionContext":{"x":1}}}"#,
            FreeForm::Objects,
        );
        assert_eq!(
            doc["user"]["name"], "Role",
            "the issuer names an assumed role"
        );
        assert_eq!(doc["user"]["id"], "P:jane");
        assert_eq!(doc["related"]["user"], json!(["jane", "Role"]));
        let identity = &doc["aws"]["cloudtrail"]["user_identity"];
        assert_eq!(identity["arn"], "arn:aws:sts::1:assumed-role/Role/jane");
        assert_eq!(
            identity["session_context"]["session_issuer"]["type"],
            "Role"
        );
        assert_eq!(identity["session_context"]["mfa_authenticated"], "false");
        assert_eq!(
            doc["aws"]["cloudtrail"]["unmapped"]["userIdentity"],
            json!({
                "sessionContext": {"sessionIssuer": {"type": "again"},
                                   "attributes": {"creationDate": "not a date"}},
                "arn": "second",
            }),
            "a repeated key is left, the first one's value read; a repeated object too"
        );
    }

    #[test]
    fn an_identity_that_is_no_object_is_kept_whole() {
        let doc = ecs_of(
            r#"{"eventTime":"2024-05-01T12:00:00Z","userIdentity":"text"}"#,
            FreeForm::Objects,
        );
        assert_eq!(doc["aws"]["cloudtrail"]["unmapped"]["userIdentity"], "text");
        assert!(doc.get("user").is_none());
    }

    #[test]
    fn without_flattened_objects_only_text_is_written() {
        let doc = ecs_of(
            r#"{"eventTime":"2024-05-01T12:00:00Z","requestParameters":{"a":1},"newField":{"b":2}}"#,
            FreeForm::Strings,
        );
        let trail = &doc["aws"]["cloudtrail"];
        assert!(trail.get("flattened").is_none());
        assert_eq!(trail["request_parameters"], "{\"a\":1}");
        assert_eq!(trail["unmapped"], "{\"newField\":{\"b\":2}}");
    }

    #[test]
    fn a_console_login_answers_its_own_outcome() {
        let doc = ecs_of(
            r#"{"eventTime":"2024-05-01T12:00:00Z","eventName":"ConsoleLogin","errorMessage":"x",
                "responseElements":{"ConsoleLogin":"Success"},
                "additionalEventData":{"MFAUsed":"Yes","MobileVersion":"No"}}"#,
            FreeForm::Objects,
        );
        assert_eq!(doc["event"]["outcome"], "success");
        assert_eq!(doc["event"]["category"], json!(["authentication"]));
        assert_eq!(
            doc["aws"]["cloudtrail"]["console_login"]["additional_eventdata"],
            json!({"mfa_used": true, "mobile_version": false})
        );
    }

    #[test]
    fn only_requests_that_name_a_user_or_a_group_are_read() {
        for raw in [
            r#"{"userName":"a"}"#,
            r#"{"bucketName":"b","newUserName":"c"}"#,
            r#"{"x":{"groupName":"g"}}"#,
        ] {
            assert!(names_a_user_or_group(raw.as_bytes()), "{raw}");
        }
        for raw in [r#"{"bucketName":"b"}"#, r#"{"roleName":"r"}"#, "Name\"", ""] {
            assert!(!names_a_user_or_group(raw.as_bytes()), "{raw}");
        }
    }

    #[test]
    fn resources_are_written_once_each_however_many() {
        let resource =
            |n: usize| format!(r#"{{"ARN":"arn:aws:s3:::b{n}","type":"AWS::S3::Bucket"}}"#);
        let mut list: Vec<String> = (0..20).map(resource).collect();
        list.extend([
            resource(18),
            resource(3),
            r#"{"accountid":"1"}"#.into(),
            "{}".into(),
        ]);
        let doc = ecs_of(
            &format!(
                r#"{{"eventTime":"2024-05-01T12:00:00Z","resources":[{}]}}"#,
                list.join(",")
            ),
            FreeForm::Objects,
        );
        let mut expected: Vec<Json> = (0..20)
            .map(|n| json!({"arn": format!("arn:aws:s3:::b{n}"), "type": "AWS::S3::Bucket"}))
            .collect();
        expected.push(json!({"accountid": "1"}));
        assert_eq!(doc["aws"]["cloudtrail"]["resources"], Json::Array(expected));
        assert!(doc["aws"]["cloudtrail"].get("unmapped").is_none());
    }

    #[test]
    fn resources_with_nothing_write_nothing_and_unreadable_ones_are_kept() {
        let doc = ecs_of(
            r#"{"eventTime":"2024-05-01T12:00:00Z","resources":[{},{}]}"#,
            FreeForm::Objects,
        );
        assert!(doc["aws"]["cloudtrail"].get("resources").is_none());
        assert!(doc["aws"]["cloudtrail"].get("unmapped").is_none());
        let doc = ecs_of(
            r#"{"eventTime":"2024-05-01T12:00:00Z","resources":[{"ARN":"a"},"text"]}"#,
            FreeForm::Objects,
        );
        assert!(doc["aws"]["cloudtrail"].get("resources").is_none());
        assert_eq!(
            doc["aws"]["cloudtrail"]["unmapped"]["resources"],
            json!([{"ARN": "a"}, "text"])
        );
    }

    #[test]
    fn a_broken_top_level_is_an_error() {
        let ecs = Ecs::new("default", FreeForm::Objects, None);
        let mut out = BytesMut::new();
        let result = write(
            b"{\"a\" 1}",
            &[],
            "2024-01-01T00:00:00.000Z",
            "t",
            &ecs,
            &mut out,
        );
        assert!(matches!(result, Err(EcsError::Malformed)));
    }
}
