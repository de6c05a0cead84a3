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

/// The slot of a path of [`PATHS`], at compile time: `slot!("event.action")`.
macro_rules! slot {
    ($path:literal) => {
        const { $crate::format::ecs::slot($crate::format::cloudtrail::ecs::PATHS, $path) }
    };
}

/// The [`Member`] of a top-level key of [`TOP`], at compile time: `top!("eventName")`.
macro_rules! top {
    ($key:literal) => {
        const { $crate::format::cloudtrail::ecs::TOP.member($key) }
    };
}

pub mod category;
pub mod dates;
pub mod identity;
pub mod mapping;

/// Every field of CloudTrail's ECS documents.
pub const PATHS: Paths = &[
    "aws.cloudtrail.addendum.original_event_id",
    "aws.cloudtrail.addendum.original_request_id",
    "aws.cloudtrail.addendum.reason",
    "aws.cloudtrail.addendum.updated_fields",
    "aws.cloudtrail.additional_eventdata",
    "aws.cloudtrail.api_version",
    "aws.cloudtrail.console_login.additional_eventdata.login_to",
    "aws.cloudtrail.console_login.additional_eventdata.mfa_used",
    "aws.cloudtrail.console_login.additional_eventdata.mobile_version",
    "aws.cloudtrail.error_code",
    "aws.cloudtrail.error_message",
    "aws.cloudtrail.event_category",
    "aws.cloudtrail.event_type",
    "aws.cloudtrail.event_version",
    "aws.cloudtrail.flattened.additional_eventdata",
    "aws.cloudtrail.flattened.insight_details",
    "aws.cloudtrail.flattened.request_parameters",
    "aws.cloudtrail.flattened.response_elements",
    "aws.cloudtrail.flattened.service_event_details",
    "aws.cloudtrail.management_event",
    "aws.cloudtrail.read_only",
    "aws.cloudtrail.recipient_account_id",
    "aws.cloudtrail.request_id",
    "aws.cloudtrail.request_parameters",
    "aws.cloudtrail.resources",
    "aws.cloudtrail.response_elements",
    "aws.cloudtrail.service_event_details",
    "aws.cloudtrail.session_credential_from_console",
    "aws.cloudtrail.shared_event_id",
    "aws.cloudtrail.tls_details.key_exchange",
    "aws.cloudtrail.unmapped",
    "aws.cloudtrail.user_identity.access_key_id",
    "aws.cloudtrail.user_identity.arn",
    "aws.cloudtrail.user_identity.credential_id",
    "aws.cloudtrail.user_identity.identity_provider",
    "aws.cloudtrail.user_identity.in_scope_of.credentials_issued_to",
    "aws.cloudtrail.user_identity.in_scope_of.issuer_type",
    "aws.cloudtrail.user_identity.in_scope_of.source_account",
    "aws.cloudtrail.user_identity.in_scope_of.source_arn",
    "aws.cloudtrail.user_identity.invoked_by",
    "aws.cloudtrail.user_identity.invoked_by_delegate.account_id",
    "aws.cloudtrail.user_identity.on_behalf_of.identity_store_arn",
    "aws.cloudtrail.user_identity.on_behalf_of.user_id",
    "aws.cloudtrail.user_identity.session_context.assumed_root",
    "aws.cloudtrail.user_identity.session_context.creation_date",
    "aws.cloudtrail.user_identity.session_context.ec2_role_delivery",
    "aws.cloudtrail.user_identity.session_context.mfa_authenticated",
    "aws.cloudtrail.user_identity.session_context.session_issuer.account_id",
    "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
    "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id",
    "aws.cloudtrail.user_identity.session_context.session_issuer.type",
    "aws.cloudtrail.user_identity.session_context.sign_in_session_arn",
    "aws.cloudtrail.user_identity.session_context.source_identity",
    "aws.cloudtrail.user_identity.session_context.web_id_federation_data.federated_provider",
    "aws.cloudtrail.user_identity.type",
    "aws.cloudtrail.vpc_endpoint_account_id",
    "aws.cloudtrail.vpc_endpoint_id",
    "cloud.account.id",
    "cloud.provider",
    "cloud.region",
    "cloud.service.name",
    "group.id",
    "group.name",
    "related.hosts",
    "tls.cipher",
    "tls.client.server_name",
    "tls.version",
    "tls.version_protocol",
    "user.changes.name",
    "user.target.id",
    "user.target.name",
];

/// The top-level keys of a record the mapping reads: each is found once, as the record's
/// members are read, and looked up by its place.
pub static TOP: Known = Known::new(&known::plain([
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

/// The layout of [`PATHS`], made once.
fn layout() -> &'static Layout {
    static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(|| Layout::new(PATHS))
}

use std::borrow::Cow;

use crate::enrich::GeoIp;
use crate::format::ecs::{
    self, known, text, Cursor, Few, Fields, Known, Layout, Member, Object, Paths, Stream, Take,
    Top, Value,
};
use crate::format::FreeForm;
use identity::Related;

/// The dataset Elastic's integration writes CloudTrail to.
pub const STREAM_DATASET: &str = "aws.cloudtrail";

/// The record's free-form members and their names under `aws.cloudtrail`.
const FREE_FORM: [(Member, usize, usize); 4] = [
    (
        top!("requestParameters"),
        slot!("aws.cloudtrail.request_parameters"),
        slot!("aws.cloudtrail.flattened.request_parameters"),
    ),
    (
        top!("responseElements"),
        slot!("aws.cloudtrail.response_elements"),
        slot!("aws.cloudtrail.flattened.response_elements"),
    ),
    (
        top!("additionalEventData"),
        slot!("aws.cloudtrail.additional_eventdata"),
        slot!("aws.cloudtrail.flattened.additional_eventdata"),
    ),
    (
        top!("serviceEventDetails"),
        slot!("aws.cloudtrail.service_event_details"),
        slot!("aws.cloudtrail.flattened.service_event_details"),
    ),
];

/// Top-level members copied as text to their `aws.cloudtrail` names.
const TEXT: [(Member, usize); 9] = [
    (top!("eventVersion"), slot!("aws.cloudtrail.event_version")),
    (top!("requestID"), slot!("aws.cloudtrail.request_id")),
    (top!("eventType"), slot!("aws.cloudtrail.event_type")),
    (top!("apiVersion"), slot!("aws.cloudtrail.api_version")),
    (
        top!("managementEvent"),
        slot!("aws.cloudtrail.management_event"),
    ),
    (
        top!("eventCategory"),
        slot!("aws.cloudtrail.event_category"),
    ),
    (
        top!("vpcEndpointId"),
        slot!("aws.cloudtrail.vpc_endpoint_id"),
    ),
    (
        top!("vpcEndpointAccountId"),
        slot!("aws.cloudtrail.vpc_endpoint_account_id"),
    ),
    (
        top!("sessionCredentialFromConsole"),
        slot!("aws.cloudtrail.session_credential_from_console"),
    ),
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
    out: &mut Vec<u8>,
) -> Result<(), EcsError> {
    // The format checked the record's UTF-8; checked again here (a SIMD pass, a few hundred
    // instructions for most records), its slices are text.
    let document = simdutf8::basic::from_utf8(document).map_err(|_| EcsError::Malformed)?;
    let mut record = if outline.is_empty() {
        Top::parse(document, &TOP)
    } else {
        Top::outlined(document, outline, &TOP)
    }
    .ok_or(EcsError::Malformed)?;
    let mut fields = Fields::read_from(layout(), document);
    let mut related = Related::default();
    record.take(top!("@timestamp"));
    record.take(top!("eventTime"));
    ecs.stream.common(&mut fields, timestamp, created);
    fields.set(slot!("cloud.provider"), Value::Clean("aws"));
    // Read once, its session context and the objects in that with it.
    if let Some(raw) = record
        .get(top!("userIdentity"))
        .filter(|raw| raw.starts_with('{'))
    {
        if let Some(rest) = identity::map(raw, &mut fields, &mut related) {
            record.take(top!("userIdentity"));
            record.leave(top!("userIdentity"), rest);
        }
    }
    let signs_in = event(&mut record, &mut fields);
    source(&mut record, &mut fields, ecs.geoip.as_ref());
    for (key, path) in TEXT {
        fields.copy_of(path, &mut record, key);
    }
    if let Some(read_only) = record
        .get(top!("readOnly"))
        .filter(|v| *v == "true" || *v == "false")
    {
        record.take(top!("readOnly"));
        fields.set(
            slot!("aws.cloudtrail.read_only"),
            Value::Bool(read_only == "true"),
        );
    }
    let recipient = record.text(top!("recipientAccountId"));
    if !fields.has(slot!("cloud.account.id")) {
        fields.set_some(slot!("cloud.account.id"), recipient.clone());
    }
    fields.set_some(slot!("aws.cloudtrail.recipient_account_id"), recipient);
    let shared = record.text(top!("sharedEventID"));
    fields.set_some(
        slot!("aws.cloudtrail.shared_event_id"),
        shared.or_else(|| record.text(top!("sharedEventId"))),
    );
    resources(&mut record, &mut fields);
    free_form(&mut record, &mut fields, &mut related, ecs.free_form);
    details(&mut record, &mut fields, ecs.free_form);
    users(&record, &mut fields, related, signs_in);
    if let Some(rest) = record.rest() {
        fields.set(
            slot!("aws.cloudtrail.unmapped"),
            ecs::kept(rest, ecs.free_form),
        );
    }
    fields.write(out);
    Ok(())
}

/// `event.*` and `cloud.*` of the record's own fields.
/// Returns whether the event is an Identity Center sign-in (`UserAuthentication`).
fn event<'a>(record: &mut Top<'a>, fields: &mut Fields<'a>) -> bool {
    let action = record.text(top!("eventName"));
    let provider = record.text(top!("eventSource"));
    let service = match &provider {
        Some(Cow::Borrowed(p)) => p.strip_suffix(".amazonaws.com").map(Cow::Borrowed),
        Some(Cow::Owned(p)) => p
            .strip_suffix(".amazonaws.com")
            .map(|s| Cow::Owned(s.to_string())),
        None => None,
    };
    fields.set_some(slot!("cloud.service.name"), service);
    fields.set_some(slot!("event.provider"), provider);
    fields.copy_of(slot!("cloud.region"), record, top!("awsRegion"));
    fields.copy_of(slot!("event.id"), record, top!("eventID"));
    let error_code = record.text(top!("errorCode"));
    let error_message = record.text(top!("errorMessage"));
    let mut outcome = if error_code.is_some() || error_message.is_some() {
        "failure"
    } else {
        "success"
    };
    fields.set_some(slot!("aws.cloudtrail.error_code"), error_code);
    fields.set_some(slot!("aws.cloudtrail.error_message"), error_message);
    if let Some(action) = action {
        if action == "ConsoleLogin" {
            if let Some(answer) = console_login(record, fields) {
                outcome = answer;
            }
        }
        match category::of(&action) {
            Some((category, types)) => {
                fields.set(slot!("event.category"), Value::Names(category));
                fields.set(slot!("event.type"), Value::Names(types));
            }
            None => fields.set(slot!("event.type"), Value::Names(&["info"])),
        }
        fields.set(slot!("event.outcome"), outcome);
        let signs_in = action == "UserAuthentication";
        fields.set(slot!("event.action"), action);
        signs_in
    } else {
        fields.set(slot!("event.type"), Value::Names(&["info"]));
        fields.set(slot!("event.outcome"), outcome);
        false
    }
}

/// A `ConsoleLogin`'s `aws.cloudtrail.console_login.*`; returns its outcome (its own
/// answer, `Success` or `Failure`, in lower case) when it has one.
fn console_login<'a>(record: &Top<'a>, fields: &mut Fields<'a>) -> Option<&'static str> {
    if let Some(data) = record
        .get(top!("additionalEventData"))
        .and_then(Object::scan)
    {
        let flag = |key: &str| data.get(key).and_then(text).map(|v| v != "No");
        if let Some(used) = flag("MFAUsed") {
            fields.set(
                slot!("aws.cloudtrail.console_login.additional_eventdata.mfa_used"),
                Value::Bool(used),
            );
        }
        if let Some(mobile) = flag("MobileVersion") {
            fields.set(
                slot!("aws.cloudtrail.console_login.additional_eventdata.mobile_version"),
                Value::Bool(mobile),
            );
        }
        fields.set_some(
            slot!("aws.cloudtrail.console_login.additional_eventdata.login_to"),
            data.get("LoginTo").and_then(text),
        );
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

/// `source.*` and `user_agent.original`.
fn source<'a>(record: &mut Top<'a>, fields: &mut Fields<'a>, geoip: Option<&GeoIp>) {
    if let Some(address) = record.text(top!("sourceIPAddress")) {
        ecs::source(address, geoip, fields);
    }
    fields.copy_of(slot!("user_agent.original"), record, top!("userAgent"));
}

/// The members of a resource the mapping reads, each with its place in what it writes.
static RESOURCE: Known<usize> = Known::new(&[("ARN", 0), ("accountId", 1), ("type", 2)]);

/// `aws.cloudtrail.resources`: each resource's `ARN`, `accountId` and `type` as `arn`,
/// `account_id` and `type`, each resource once, written straight into the document.
fn resources<'a>(record: &mut Top<'a>, fields: &mut Fields<'a>) {
    let Some(raw) = record.get(top!("resources")) else {
        return;
    };
    let mut read = false;
    fields.set_with(slot!("aws.cloudtrail.resources"), |out| {
        let list = out.len();
        // Where each resource written starts and ends in `out`.
        let mut written = Spans::default();
        read = Cursor::each_object(raw, |resource| {
            resource_into(resource, list, &mut written, out)
        })
        .is_some();
        if !read || out.len() == list {
            out.truncate(list);
            return false;
        }
        out.push(b']');
        true
    });
    if read {
        record.take(top!("resources"));
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
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
        std::sync::OnceLock::new();
    let finder = FINDER.get_or_init(|| memchr::memmem::Finder::new("Name\""));
    finder
        .find_iter(raw)
        .any(|at| KEYS.iter().any(|key| raw[..at + 5].ends_with(key)))
}

/// The free-form objects, as text and as objects, and what the integration reads from them
/// (`group.*`, `user.target.*`, `user.changes.name`, the names `related.user` gets).
fn free_form<'a>(
    record: &mut Top<'a>,
    fields: &mut Fields<'a>,
    related: &mut Related<'a>,
    kind: FreeForm,
) {
    // Read only when they may hold what is looked for: most are large and hold none of it.
    let request = record
        .get(top!("requestParameters"))
        .filter(|raw| names_a_user_or_group(raw.as_bytes()))
        .and_then(Object::scan);
    let response = record
        .get(top!("responseElements"))
        .filter(|raw| raw.contains("\"user\"") || raw.contains("\"group\""))
        .and_then(Object::scan);
    let named = |object: &Option<Object<'a>>, key: &str| {
        object.as_ref().and_then(|o| o.get(key)).and_then(text)
    };
    let nested = |object: &Option<Object<'a>>, outer: &str, key: &str| {
        object
            .as_ref()
            .and_then(|o| o.get(outer))
            .and_then(Object::scan)
            .and_then(|o| o.get(key))
            .and_then(text)
    };
    let user_name = named(&request, "userName");
    let new_user_name = named(&request, "newUserName");
    let target_id = nested(&response, "user", "userId");
    for name in [&user_name, &new_user_name, &target_id]
        .into_iter()
        .flatten()
    {
        related.user(name.clone());
    }
    fields.set_some(slot!("group.id"), nested(&response, "group", "groupId"));
    fields.set_some(slot!("group.name"), named(&request, "groupName"));
    fields.set_some(slot!("user.target.id"), target_id);
    fields.set_some(slot!("user.target.name"), user_name);
    fields.set_some(slot!("user.changes.name"), new_user_name);
    for (key, text_path, object_path) in FREE_FORM {
        let Some(raw) = record.take(key) else {
            continue;
        };
        fields.set(text_path, Value::JsonText(raw.as_bytes().into()));
        if kind != FreeForm::Strings {
            let value = if raw.starts_with('{') {
                Cow::Borrowed(raw.as_bytes())
            } else {
                Cow::Owned([&b"{\"value\":"[..], raw.as_bytes(), b"}"].concat())
            };
            fields.set(object_path, Value::Json(value));
        }
    }
}

/// `tls.*`, `addendum`, and the objects of Insights events and CloudTrail Lake.
fn details<'a>(record: &mut Top<'a>, fields: &mut Fields<'a>, kind: FreeForm) {
    if let Some(mut tls) = record.object(top!("tlsDetails")) {
        match tls.text("tlsVersion") {
            Some(version) if version == "tlsVersion" => {}
            Some(version) => match version.find('v') {
                Some(v) => {
                    fields.set(
                        slot!("tls.version_protocol"),
                        version[..v].to_ascii_lowercase(),
                    );
                    fields.set(slot!("tls.version"), version[v + 1..].to_string());
                }
                None => fields.set(slot!("tls.version"), version),
            },
            None => {}
        }
        fields.copy_of(slot!("tls.cipher"), &mut tls, "cipherSuite");
        let host = tls.text("clientProvidedHostHeader");
        if let Some(host) = host.as_ref().filter(|h| !h.ends_with(".amazonaws.com")) {
            fields.set(
                slot!("related.hosts"),
                Value::List(std::slice::from_ref(host).into()),
            );
        }
        fields.set_some(slot!("tls.client.server_name"), host);
        fields.copy_of(
            slot!("aws.cloudtrail.tls_details.key_exchange"),
            &mut tls,
            "keyExchange",
        );
        record.leave(top!("tlsDetails"), tls.rest());
    }
    fields.texts_of(
        record,
        top!("addendum"),
        &[
            ("reason", slot!("aws.cloudtrail.addendum.reason")),
            (
                "updatedFields",
                slot!("aws.cloudtrail.addendum.updated_fields"),
            ),
            (
                "originalRequestID",
                slot!("aws.cloudtrail.addendum.original_request_id"),
            ),
            (
                "originalEventID",
                slot!("aws.cloudtrail.addendum.original_event_id"),
            ),
        ],
    );
    if let Some(insight) = record.take(top!("insightDetails")) {
        fields.set(
            slot!("aws.cloudtrail.flattened.insight_details"),
            ecs::kept(insight.as_bytes(), kind),
        );
    }
}

/// `user.id`, `user.name` (and `user.email` when it is an e-mail address), and
/// `related.user`: the names of the request (the new name of a renamed user among them), then
/// the user's; an Identity Center sign-in (`signs_in`) names its user in its own data.
fn users<'a>(record: &Top<'a>, fields: &mut Fields<'a>, mut related: Related<'a>, signs_in: bool) {
    let (id, mut name) = (related.id.take(), related.name.take());
    if name.is_none() && signs_in {
        // An Identity Center sign-in names its user only here.
        name = record
            .get(top!("additionalEventData"))
            .and_then(Object::scan)
            .and_then(|data| data.get("UserName"))
            .and_then(text)
            .filter(|n| !n.is_empty());
    }
    if let Some(name) = &name {
        if !fields.has(slot!("user.email")) && name.find('@').is_some_and(|at| at > 0) {
            fields.set(slot!("user.email"), name.clone());
        }
    }
    fields.set_some(slot!("user.id"), id.clone());
    fields.set_some(slot!("user.name"), name.clone());
    for user in [name, related.on_behalf_of.take()].into_iter().flatten() {
        related.user(user);
    }
    let users = related.users();
    if !users.is_empty() {
        fields.set(slot!("related.user"), Value::List(users));
    }
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
        let mut out = Vec::new();
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
        let mut out = Vec::new();
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
