//! Identity: a CloudTrail record's `userIdentity` -> `cloud.account.id`, `user.email`,
//! `aws.cloudtrail.user_identity.*`, the session's names in `related.user`, and the user's
//! id and name for the caller to write, as
//! Elastic's AWS integration maps them.
//!
//! - the name: `userName`, or for an assumed role or a federated user the session issuer's
//!   `userName` (the role's name);
//! - the id: `principalId` (an Identity Center user without one: `onBehalfOf.userId`);
//! - a session name (the last part of an `sts` ARN) goes to `related.user`, and when it is
//!   an e-mail address, to `user.email` with its local part in `related.user` too;
//! - everything else keeps its CloudTrail name in snake case under
//!   `aws.cloudtrail.user_identity`.
//!
//! What it does not map stays in the object for the caller's `unmapped` rest.

use std::borrow::Cow;

use super::dates::{date, Stamp};
use crate::format::ecs::{Cursor, Few, Known, Nested};

/// The names `related.user` gathers, in the integration's order, each once, and the user's
/// own id and name, which [`identity`] finds and the names of the request follow.
#[derive(Debug, Default)]
pub struct Related<'a> {
    /// The names so far (a document has at most seven: the session's name and its local
    /// part, three from the request, the user's own and the one it acts for).
    users: Few<Cow<'a, str>, 8>,
    pub id: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub on_behalf_of: Option<Cow<'a, str>>,
}

impl<'a> Related<'a> {
    pub fn user(&mut self, name: Cow<'a, str>) {
        if !name.is_empty() && !self.users.iter().any(|user| *user == name) {
            self.users.push(name);
        }
    }

    /// The names gathered, in order.
    pub fn users(&self) -> Cow<'_, [Cow<'a, str>]> {
        self.users.as_slice()
    }
}

/// A text of the record, or none: borrowed when it needs no escape (see
/// [`crate::format::ecs::Nested::text`]).
pub type Text<'a> = Option<Cow<'a, str>>;

/// What `userIdentity` gives the document, gathered as it is read; [`Identity::write`] writes
/// the members of `aws.cloudtrail.user_identity`.
#[derive(Debug, Default)]
pub struct Identity<'a> {
    /// `type`, `arn`, `access_key_id`, `invoked_by`, `credential_id`, `identity_provider`.
    own: [Text<'a>; 6],
    /// `in_scope_of.*`: `issuer_type`, `credentials_issued_to`, `source_arn`,
    /// `source_account`.
    in_scope_of: [Text<'a>; 4],
    /// `invoked_by_delegate.account_id`.
    delegate: [Text<'a>; 1],
    /// `on_behalf_of.*`: `user_id`, `identity_store_arn`.
    on_behalf_of: [Text<'a>; 2],
    /// `session_context.*`: `ec2_role_delivery`, `source_identity`, `assumed_root`,
    /// `sign_in_session_arn`, `mfa_authenticated`.
    session: [Text<'a>; 5],
    /// `session_context.creation_date`.
    created: Option<Stamp>,
    /// `session_context.session_issuer.*`: `type`, `principal_id`, `arn`, `account_id`.
    issuer: [Text<'a>; 4],
    /// `session_context.web_id_federation_data.federated_provider`.
    federation: [Text<'a>; 1],
    /// `cloud.account.id`.
    pub account_id: Text<'a>,
    /// `user.email`: the session's name, when it is an e-mail address.
    pub email: Text<'a>,
}

/// The places of `own`.
const TYPE: usize = 0;
const ARN: usize = 1;

/// What a member of `userIdentity` is to the mapping.
#[derive(Debug, Clone, Copy)]
enum Member {
    UserName,
    PrincipalId,
    SessionContext,
    OnBehalfOf,
    /// Copied as text to this place of `own`.
    Own(usize),
    AccountId,
    InScopeOf,
    InvokedByDelegate,
}

/// The members of `userIdentity` the mapping reads.
static IDENTITY: Known<Member> = Known::new(&[
    ("type", Member::Own(TYPE)),
    ("userName", Member::UserName),
    ("principalId", Member::PrincipalId),
    ("arn", Member::Own(ARN)),
    ("sessionContext", Member::SessionContext),
    ("onBehalfOf", Member::OnBehalfOf),
    ("invokedByDelegate", Member::InvokedByDelegate),
    ("inScopeOf", Member::InScopeOf),
    ("accountId", Member::AccountId),
    ("accessKeyId", Member::Own(2)),
    ("invokedBy", Member::Own(3)),
    ("credentialId", Member::Own(4)),
    ("identityProvider", Member::Own(5)),
]);

/// Maps `identity` (the raw `userIdentity` object) into `into`, reading it once; returns
/// what it did not map (`None` inside: nothing), or `None` when it is not a JSON object of
/// members (the caller then keeps it whole).
pub fn map<'a>(
    identity: &'a str,
    into: &mut Identity<'a>,
    related: &mut Related<'a>,
) -> Option<Option<Vec<u8>>> {
    let mut cursor = Cursor::new(identity)?;
    let (mut name, mut id) = (None, None);
    let (mut issuer_name, mut on_behalf_of) = (None, None);
    let mut typed = false;
    while let Some(member) = cursor.next(&IDENTITY).ok()? {
        match member {
            Some(Member::Own(place)) => {
                typed |= place == TYPE;
                into.own[place] = cursor.text();
            }
            Some(Member::UserName) => name = cursor.text(),
            Some(Member::PrincipalId) => id = cursor.text(),
            Some(Member::AccountId) => into.account_id = cursor.text(),
            Some(Member::SessionContext) => {
                // The issuer names the user of an assumed role or a federated user. CloudTrail
                // writes `type` first; read ahead for it when it does not.
                let kind = match &into.own[TYPE] {
                    Some(kind) => Some(kind.clone()),
                    None if !typed => kind_ahead(identity),
                    None => None,
                };
                let assumed = matches!(kind.as_deref(), Some("AssumedRole" | "FederatedUser"));
                if let Some(mut session) = cursor.object() {
                    issuer_name = session_context(&mut session, into, assumed)?;
                    cursor.close(session)?;
                }
            }
            Some(Member::OnBehalfOf) => {
                if let Some(mut inner) = cursor.object() {
                    read_texts(&mut inner, &ON_BEHALF_OF, &mut into.on_behalf_of)?;
                    cursor.close(inner)?;
                    on_behalf_of = into.on_behalf_of[0].clone();
                }
            }
            Some(Member::InScopeOf) => {
                read_texts_of(&mut cursor, &IN_SCOPE_OF, &mut into.in_scope_of)?
            }
            Some(Member::InvokedByDelegate) => {
                read_texts_of(&mut cursor, &INVOKED_BY_DELEGATE, &mut into.delegate)?
            }
            None => cursor.leave(),
        }
    }
    let (_, rest) = cursor.finish()?;
    if issuer_name.is_some() {
        name = issuer_name;
    }
    let kind = into.own[TYPE].as_deref();
    if kind == Some("IdentityCenterUser") && id.is_none() {
        id = on_behalf_of.clone();
    }
    if let Some(session) = session_name(kind, into.own[ARN].as_ref()) {
        related.user(session.clone());
        if let Some(at) = session.find('@').filter(|&at| at > 0) {
            related.user(part(&session, ..at));
            into.email = Some(session);
        }
    }
    related.id = id;
    related.name = name;
    related.on_behalf_of = on_behalf_of;
    Some(rest)
}

impl Identity<'_> {
    /// Writes the members of `aws.cloudtrail.user_identity` (into the object open in `w`).
    #[inline(always)]
    pub fn write(&self, w: &mut Nested<'_>) {
        let [kind, arn, access_key_id, invoked_by, credential_id, identity_provider] = &self.own;
        w.text(b"\"type\":", kind);
        w.text(b"\"arn\":", arn);
        w.text(b"\"access_key_id\":", access_key_id);
        w.text(b"\"invoked_by\":", invoked_by);
        w.text(b"\"credential_id\":", credential_id);
        w.text(b"\"identity_provider\":", identity_provider);
        w.open(b"\"in_scope_of\":{");
        let [issuer_type, issued_to, source_arn, source_account] = &self.in_scope_of;
        w.text(b"\"issuer_type\":", issuer_type);
        w.text(b"\"credentials_issued_to\":", issued_to);
        w.text(b"\"source_arn\":", source_arn);
        w.text(b"\"source_account\":", source_account);
        w.close();
        w.open(b"\"invoked_by_delegate\":{");
        w.text(b"\"account_id\":", &self.delegate[0]);
        w.close();
        w.open(b"\"on_behalf_of\":{");
        let [user_id, identity_store_arn] = &self.on_behalf_of;
        w.text(b"\"user_id\":", user_id);
        w.text(b"\"identity_store_arn\":", identity_store_arn);
        w.close();
        w.open(b"\"session_context\":{");
        let [ec2_role_delivery, source_identity, assumed_root, sign_in_session_arn, mfa] =
            &self.session;
        w.text(b"\"mfa_authenticated\":", mfa);
        if let Some(created) = &self.created {
            w.clean(b"\"creation_date\":", created);
        }
        w.text(b"\"ec2_role_delivery\":", ec2_role_delivery);
        w.text(b"\"source_identity\":", source_identity);
        w.text(b"\"assumed_root\":", assumed_root);
        w.text(b"\"sign_in_session_arn\":", sign_in_session_arn);
        w.open(b"\"session_issuer\":{");
        let [issuer_kind, principal_id, issuer_arn, account_id] = &self.issuer;
        w.text(b"\"type\":", issuer_kind);
        w.text(b"\"principal_id\":", principal_id);
        w.text(b"\"arn\":", issuer_arn);
        w.text(b"\"account_id\":", account_id);
        w.close();
        w.open(b"\"web_id_federation_data\":{");
        w.text(b"\"federated_provider\":", &self.federation[0]);
        w.close();
        w.close();
    }
}

/// Reads the text of each member of `known` in the object at `cursor` into its place of
/// `into`, and leaves the other members; `None` when the object cannot be read.
fn read_texts<'a>(
    cursor: &mut Cursor<'a>,
    known: &Known<usize>,
    into: &mut [Text<'a>],
) -> Option<()> {
    while let Some(member) = cursor.next(known).ok()? {
        match member {
            Some(place) => into[place] = cursor.text(),
            None => cursor.leave(),
        }
    }
    Some(())
}

/// [`read_texts`] of the object that is `cursor`'s current member's value (left when it is
/// not an object).
fn read_texts_of<'a>(
    cursor: &mut Cursor<'a>,
    known: &Known<usize>,
    into: &mut [Text<'a>],
) -> Option<()> {
    if let Some(mut inner) = cursor.object() {
        read_texts(&mut inner, known, into)?;
        cursor.close(inner)?;
    }
    Some(())
}

/// The `type` of `identity`, read ahead of the member being read.
fn kind_ahead(identity: &str) -> Option<Cow<'_, str>> {
    let mut cursor = Cursor::new(identity)?;
    while let Some(key) = cursor.key().ok()? {
        if key == "type" {
            return cursor.text();
        }
        cursor.take();
    }
    None
}

/// `invokedByDelegate`.
static INVOKED_BY_DELEGATE: Known<usize> = Known::new(&[("accountId", 0)]);

/// `onBehalfOf`.
static ON_BEHALF_OF: Known<usize> = Known::new(&[("userId", 0), ("identityStoreArn", 1)]);

/// What a member of `sessionContext` is to the mapping.
#[derive(Debug, Clone, Copy)]
enum Session {
    Attributes,
    Issuer,
    WebIdFederationData,
    /// Copied as text to this place of `session`.
    Text(usize),
}

static SESSION: Known<Session> = Known::new(&[
    ("attributes", Session::Attributes),
    ("sessionIssuer", Session::Issuer),
    ("webIdFederationData", Session::WebIdFederationData),
    ("ec2RoleDelivery", Session::Text(0)),
    ("sourceIdentity", Session::Text(1)),
    ("assumedRoot", Session::Text(2)),
    ("signInSessionArn", Session::Text(3)),
]);

static WEB_ID_FEDERATION_DATA: Known<usize> = Known::new(&[("federatedProvider", 0)]);

/// Maps `sessionContext`; returns the session issuer's name when it names the user (an
/// assumed role, a federated user).
fn session_context<'a>(
    session: &mut Cursor<'a>,
    into: &mut Identity<'a>,
    assumed: bool,
) -> Option<Option<Cow<'a, str>>> {
    let mut issuer_name = None;
    while let Some(member) = session.next(&SESSION).ok()? {
        match member {
            Some(Session::Attributes) => {
                if let Some(mut attributes) = session.object() {
                    self::attributes(&mut attributes, into)?;
                    session.close(attributes)?;
                }
            }
            Some(Session::Issuer) => {
                if let Some(mut inner) = session.object() {
                    issuer_name = issuer(&mut inner, &mut into.issuer, assumed)?;
                    session.close(inner)?;
                }
            }
            Some(Session::WebIdFederationData) => {
                read_texts_of(session, &WEB_ID_FEDERATION_DATA, &mut into.federation)?
            }
            Some(Session::Text(place)) => into.session[place] = session.text(),
            None => session.leave(),
        }
    }
    Some(issuer_name)
}

/// What a member of `attributes` is to the mapping.
#[derive(Debug, Clone, Copy)]
enum Attribute {
    MfaAuthenticated,
    CreationDate,
}

static ATTRIBUTES: Known<Attribute> = Known::new(&[
    ("mfaAuthenticated", Attribute::MfaAuthenticated),
    ("creationDate", Attribute::CreationDate),
]);

/// Maps the session's `attributes`: `mfaAuthenticated`, and `creationDate` when it is a date
/// (left otherwise).
fn attributes<'a>(attributes: &mut Cursor<'a>, into: &mut Identity<'a>) -> Option<()> {
    while let Some(member) = attributes.next(&ATTRIBUTES).ok()? {
        match member {
            Some(Attribute::MfaAuthenticated) => into.session[4] = attributes.text(),
            Some(Attribute::CreationDate) => {
                if let Some(raw) = attributes.take() {
                    match date(raw) {
                        Some(created) => into.created = Some(created),
                        None => attributes.put_back(raw),
                    }
                }
            }
            None => attributes.leave(),
        }
    }
    Some(())
}

/// What a member of `sessionIssuer` is to the mapping.
#[derive(Debug, Clone, Copy)]
enum Issuer {
    /// The user's name, when the issuer names the user.
    UserName,
    /// Copied as text to this place of `issuer`.
    Text(usize),
}

static ISSUER: Known<Issuer> = Known::new(&[
    ("userName", Issuer::UserName),
    ("type", Issuer::Text(0)),
    ("principalId", Issuer::Text(1)),
    ("arn", Issuer::Text(2)),
    ("accountId", Issuer::Text(3)),
]);

/// Maps `sessionIssuer` into `into`; returns its `userName` when it names the user
/// (`assumed`).
fn issuer<'a>(
    issuer: &mut Cursor<'a>,
    into: &mut [Text<'a>; 4],
    assumed: bool,
) -> Option<Option<Cow<'a, str>>> {
    let mut name = None;
    while let Some(member) = issuer.next(&ISSUER).ok()? {
        match member {
            Some(Issuer::Text(place)) => into[place] = issuer.text(),
            Some(Issuer::UserName) if assumed => name = issuer.text(),
            _ => issuer.leave(),
        }
    }
    Some(name)
}

/// `inScopeOf` (root sessions that a service assumed).
static IN_SCOPE_OF: Known<usize> = Known::new(&[
    ("issuerType", 0),
    ("credentialsIssuedTo", 1),
    ("sourceArn", 2),
    ("sourceAccount", 3),
]);

/// The session name of an assumed role, a federated user or an Identity Center user: the
/// part of its `sts` ARN after the last `/`.
fn session_name<'a>(kind: Option<&str>, arn: Option<&Cow<'a, str>>) -> Option<Cow<'a, str>> {
    if !matches!(
        kind,
        Some("AssumedRole" | "FederatedUser" | "IdentityCenterUser")
    ) {
        return None;
    }
    let arn = arn?;
    if !arn.starts_with("arn:") || !arn.contains(":sts:") {
        return None;
    }
    let after = arn.rfind('/')? + 1;
    (after < arn.len()).then(|| part(arn, after..))
}

/// The part `range` of `text`, borrowed where `text` is.
fn part<'a>(
    text: &Cow<'a, str>,
    range: impl std::slice::SliceIndex<str, Output = str>,
) -> Cow<'a, str> {
    match text {
        Cow::Borrowed(text) => Cow::Borrowed(&text[range]),
        Cow::Owned(text) => Cow::Owned(text[range].to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_names_are_kept_once_in_order_past_the_fixed_places() {
        let mut related = Related::default();
        let names: Vec<String> = (0..12).map(|n| format!("user{n}")).collect();
        for name in names.iter().chain(&names) {
            related.user(Cow::Borrowed(name));
        }
        related.user(Cow::Borrowed(""));
        assert_eq!(*related.users(), names[..]);
    }

    #[test]
    fn session_names_come_from_sts_arns_only() {
        let arn = |text: &'static str| Cow::Borrowed(text);
        let assumed = arn("arn:aws:sts::1:assumed-role/Role/jane@example.com");
        assert_eq!(
            session_name(Some("AssumedRole"), Some(&assumed)).as_deref(),
            Some("jane@example.com")
        );
        let owned = Cow::Owned(assumed.to_string());
        assert_eq!(
            session_name(Some("AssumedRole"), Some(&owned)).as_deref(),
            Some("jane@example.com")
        );
        assert_eq!(session_name(Some("IAMUser"), Some(&assumed)), None);
        assert_eq!(
            session_name(Some("AssumedRole"), Some(&arn("arn:aws:iam::1:role/R"))),
            None
        );
        assert_eq!(
            session_name(
                Some("FederatedUser"),
                Some(&arn("arn:aws:sts::1:federated-user/"))
            ),
            None
        );
    }
}
