//! Doc: the values of one CloudTrail event's ECS document, gathered from the record in any
//! order, then written in one pass in the document's own order ([`Doc::write`]).
//!
//! Each field is a place of its own here, named for its ECS path; the mapping
//! ([`super::write`]) fills them as it reads the record, and where two parts of the record
//! could give one field, the mapping decides which wins before anything is written. Writing
//! is then straight code over [`Nested`]: constant keys, each value copied once, a field's
//! presence the only branch.
//!
//! Pure: no I/O.

use std::borrow::Cow;

use bytes::BytesMut;

use super::identity::{Identity, Related, Text};
use crate::enrich::Answer;
use crate::format::ecs::{Nested, Stream, Strings};
use crate::format::FreeForm;

/// The JSON of a record kept whole in a document (an object of the record, what the mapping
/// left): as it is where the cluster stores free-form objects, as JSON text elsewhere.
#[derive(Debug)]
pub struct Kept<'a> {
    pub json: Cow<'a, [u8]>,
    pub as_text: bool,
}

impl<'a> Kept<'a> {
    pub fn new(json: impl Into<Cow<'a, [u8]>>, free_form: FreeForm) -> Self {
        Kept {
            json: json.into(),
            as_text: free_form == FreeForm::Strings,
        }
    }
}

/// The keys of the free-form objects under `aws.cloudtrail` and under its `flattened`, in the
/// order of [`Doc::free_form`].
const FREE_FORM_KEYS: [&[u8]; 4] = [
    b"\"request_parameters\":",
    b"\"response_elements\":",
    b"\"additional_eventdata\":",
    b"\"service_event_details\":",
];

/// One document's values. `Text` is a record's text, or one decoded or made and held in
/// `strings`: copied, never dropped one by one.
#[derive(Debug)]
pub struct Doc<'a> {
    /// Where the texts decoded or made for this document are held.
    pub strings: &'a Strings,
    /// `@timestamp` and `event.created`: times this worker wrote, with no escape to make.
    pub timestamp: &'a str,
    pub created: &'a str,
    /// `data_stream.*`, `ecs.version`, `event.kind` and `event.dataset`.
    pub stream: &'a Stream,

    /// `event.*`.
    pub action: Text<'a>,
    pub provider: Text<'a>,
    pub id: Text<'a>,
    pub outcome: &'static str,
    /// `event.category` (none when the action has none) and `event.type`.
    pub category: Option<&'static [&'static str]>,
    pub types: &'static [&'static str],

    /// `cloud.*` (`provider` is `aws`).
    pub account_id: Text<'a>,
    pub region: Text<'a>,
    pub service: Text<'a>,

    /// `source.address`, and the same when it is an IP (`source.ip`, `related.ip`).
    pub address: Text<'a>,
    pub ip: Text<'a>,
    /// `source.geo` and `source.as`.
    pub geo: Option<Answer>,
    pub user_agent: Text<'a>,

    /// `user.*`.
    pub user_id: Text<'a>,
    pub user_name: Text<'a>,
    pub email: Text<'a>,
    pub target_id: Text<'a>,
    pub target_name: Text<'a>,
    pub changed_name: Text<'a>,
    /// `group.id`, `group.name`.
    pub group: [Text<'a>; 2],
    /// `related.user` (and the user's id and name, found on the way) and `related.hosts`.
    pub related: Related<'a>,
    pub host: Text<'a>,

    /// `tls.version_protocol`, `tls.version`, `tls.cipher`, `tls.client.server_name`.
    pub tls: [Text<'a>; 4],

    /// `aws.cloudtrail.user_identity.*`.
    pub identity: Identity<'a>,
    /// `aws.cloudtrail.*` copied as text (see [`super::TEXT`]).
    pub texts: [Text<'a>; 9],
    pub error_code: Text<'a>,
    pub error_message: Text<'a>,
    pub read_only: Option<bool>,
    pub recipient: Text<'a>,
    pub shared_event_id: Text<'a>,
    pub key_exchange: Text<'a>,
    /// `aws.cloudtrail.console_login.additional_eventdata.*`: `mfa_used`, `mobile_version`,
    /// `login_to`.
    pub mfa_used: Option<bool>,
    pub mobile_version: Option<bool>,
    pub login_to: Text<'a>,
    /// `aws.cloudtrail.addendum.*`: `reason`, `updated_fields`, `original_request_id`,
    /// `original_event_id`.
    pub addendum: [Text<'a>; 4],
    /// `aws.cloudtrail.resources`, written (a JSON array).
    pub resources: Option<&'a [u8]>,
    /// The free-form objects of [`super::FREE_FORM`], raw (written as JSON text), and as
    /// objects under `flattened`.
    pub free_form: [Option<&'a str>; 4],
    pub flattened: [Option<Cow<'a, [u8]>>; 4],
    pub insight: Option<Kept<'a>>,
    pub unmapped: Option<Kept<'a>>,
}

impl<'a> Doc<'a> {
    pub fn new(
        stream: &'a Stream,
        timestamp: &'a str,
        created: &'a str,
        strings: &'a Strings,
    ) -> Self {
        Doc {
            strings,
            timestamp,
            created,
            stream,
            action: None,
            provider: None,
            id: None,
            outcome: "success",
            category: None,
            types: &["info"],
            account_id: None,
            region: None,
            service: None,
            address: None,
            ip: None,
            geo: None,
            user_agent: None,
            user_id: None,
            user_name: None,
            email: None,
            target_id: None,
            target_name: None,
            changed_name: None,
            group: Default::default(),
            related: Related::default(),
            host: None,
            tls: Default::default(),
            identity: Identity::default(),
            texts: Default::default(),
            error_code: None,
            error_message: None,
            read_only: None,
            recipient: None,
            shared_event_id: None,
            key_exchange: None,
            mfa_used: None,
            mobile_version: None,
            login_to: None,
            addendum: Default::default(),
            resources: None,
            free_form: [None; 4],
            flattened: Default::default(),
            insight: None,
            unmapped: None,
        }
    }

    /// Appends the document.
    pub fn write(&self, out: &mut BytesMut) {
        let mut w = Nested::new(out);
        w.clean(b"\"@timestamp\":", self.timestamp);
        w.object(b"\"event\":{");
        w.text(b"\"action\":", &self.action);
        w.text(b"\"provider\":", &self.provider);
        w.text(b"\"id\":", &self.id);
        if let Some(category) = self.category {
            w.names(b"\"category\":", category);
        }
        w.names(b"\"type\":", self.types);
        w.clean(b"\"outcome\":", self.outcome);
        w.clean(b"\"created\":", self.created);
        w.members(self.stream.event_members());
        w.close();
        w.object(b"\"cloud\":{");
        w.clean(b"\"provider\":", "aws");
        w.text(b"\"region\":", &self.region);
        w.open(b"\"account\":{");
        w.text(b"\"id\":", &self.account_id);
        w.close();
        w.open(b"\"service\":{");
        w.text(b"\"name\":", &self.service);
        w.close();
        w.close();
        self.write_source(&mut w);
        self.write_user(&mut w);
        w.open(b"\"user_agent\":{");
        w.text(b"\"original\":", &self.user_agent);
        w.close();
        w.open(b"\"related\":{");
        w.texts(b"\"user\":", &self.related.users());
        if let Some(ip) = &self.ip {
            w.texts(b"\"ip\":", std::slice::from_ref(ip));
        }
        if let Some(host) = &self.host {
            w.texts(b"\"hosts\":", std::slice::from_ref(host));
        }
        w.close();
        w.open(b"\"tls\":{");
        let [protocol, version, cipher, server_name] = &self.tls;
        w.text(b"\"version_protocol\":", protocol);
        w.text(b"\"version\":", version);
        w.text(b"\"cipher\":", cipher);
        w.open(b"\"client\":{");
        w.text(b"\"server_name\":", server_name);
        w.close();
        w.close();
        w.open(b"\"group\":{");
        let [group_id, group_name] = &self.group;
        w.text(b"\"id\":", group_id);
        w.text(b"\"name\":", group_name);
        w.close();
        w.open(b"\"aws\":{");
        w.open(b"\"cloudtrail\":{");
        self.write_trail(&mut w);
        w.close();
        w.close();
        w.members(self.stream.objects());
        w.finish();
    }

    #[inline(always)]
    fn write_source(&self, w: &mut Nested<'_>) {
        w.open(b"\"source\":{");
        w.text(b"\"address\":", &self.address);
        w.text(b"\"ip\":", &self.ip);
        if let Some(answer) = &self.geo {
            w.members(answer.members());
        }
        w.close();
    }

    #[inline(always)]
    fn write_user(&self, w: &mut Nested<'_>) {
        w.open(b"\"user\":{");
        w.text(b"\"id\":", &self.user_id);
        w.text(b"\"name\":", &self.user_name);
        w.text(b"\"email\":", &self.email);
        w.open(b"\"target\":{");
        w.text(b"\"id\":", &self.target_id);
        w.text(b"\"name\":", &self.target_name);
        w.close();
        w.open(b"\"changes\":{");
        w.text(b"\"name\":", &self.changed_name);
        w.close();
        w.close();
    }

    /// The members of `aws.cloudtrail`.
    #[inline(always)]
    fn write_trail(&self, w: &mut Nested<'_>) {
        let [event_version, request_id, event_type, api_version, management_event, event_category, vpc_endpoint_id, vpc_endpoint_account_id, from_console] =
            &self.texts;
        w.text(b"\"event_version\":", event_version);
        w.text(b"\"event_type\":", event_type);
        w.text(b"\"event_category\":", event_category);
        w.text(b"\"management_event\":", management_event);
        w.bool(b"\"read_only\":", self.read_only);
        w.text(b"\"request_id\":", request_id);
        w.text(b"\"api_version\":", api_version);
        w.text(b"\"recipient_account_id\":", &self.recipient);
        w.text(b"\"shared_event_id\":", &self.shared_event_id);
        w.text(b"\"error_code\":", &self.error_code);
        w.text(b"\"error_message\":", &self.error_message);
        w.text(b"\"vpc_endpoint_id\":", vpc_endpoint_id);
        w.text(b"\"vpc_endpoint_account_id\":", vpc_endpoint_account_id);
        w.text(b"\"session_credential_from_console\":", from_console);
        w.open(b"\"user_identity\":{");
        self.identity.write(w);
        w.close();
        if let Some(resources) = self.resources {
            w.json(b"\"resources\":", resources);
        }
        w.open(b"\"tls_details\":{");
        w.text(b"\"key_exchange\":", &self.key_exchange);
        w.close();
        w.open(b"\"console_login\":{");
        w.open(b"\"additional_eventdata\":{");
        w.bool(b"\"mfa_used\":", self.mfa_used);
        w.bool(b"\"mobile_version\":", self.mobile_version);
        w.text(b"\"login_to\":", &self.login_to);
        w.close();
        w.close();
        w.open(b"\"addendum\":{");
        let [reason, updated_fields, original_request_id, original_event_id] = &self.addendum;
        w.text(b"\"reason\":", reason);
        w.text(b"\"updated_fields\":", updated_fields);
        w.text(b"\"original_request_id\":", original_request_id);
        w.text(b"\"original_event_id\":", original_event_id);
        w.close();
        for (key, raw) in FREE_FORM_KEYS.into_iter().zip(&self.free_form) {
            if let Some(raw) = raw {
                w.escaped(key, raw.as_bytes());
            }
        }
        w.open(b"\"flattened\":{");
        for (key, json) in FREE_FORM_KEYS.into_iter().zip(&self.flattened) {
            if let Some(json) = json {
                w.json(key, json);
            }
        }
        if let Some(insight) = &self.insight {
            kept(w, b"\"insight_details\":", insight);
        }
        w.close();
        if let Some(unmapped) = &self.unmapped {
            kept(w, b"\"unmapped\":", unmapped);
        }
    }
}

/// The member `key` with JSON kept whole.
#[inline(always)]
fn kept(w: &mut Nested<'_>, key: &'static [u8], kept: &Kept<'_>) {
    if kept.as_text {
        w.escaped(key, &kept.json);
    } else {
        w.json(key, &kept.json);
    }
}
