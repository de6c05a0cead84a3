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

use super::dates::date;
use crate::format::ecs::{Cursor, Few, Fields, Known, Value};

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

/// What a member of `userIdentity` is to the mapping.
#[derive(Debug, Clone, Copy)]
enum Identity {
    Type,
    UserName,
    PrincipalId,
    Arn,
    SessionContext,
    OnBehalfOf,
    /// An object whose members are copied as text ([`Fields::read_texts_of`]).
    Texts(&'static Known<usize>),
    /// Copied as text to this slot.
    Text(usize),
}

/// The members of `userIdentity` the mapping reads.
static IDENTITY: Known<Identity> = Known::new(&[
    ("type", Identity::Type),
    ("userName", Identity::UserName),
    ("principalId", Identity::PrincipalId),
    ("arn", Identity::Arn),
    ("sessionContext", Identity::SessionContext),
    ("onBehalfOf", Identity::OnBehalfOf),
    ("invokedByDelegate", Identity::Texts(&INVOKED_BY_DELEGATE)),
    ("inScopeOf", Identity::Texts(&IN_SCOPE_OF)),
    ("accountId", Identity::Text(slot!("cloud.account.id"))),
    (
        "accessKeyId",
        Identity::Text(slot!("aws.cloudtrail.user_identity.access_key_id")),
    ),
    (
        "invokedBy",
        Identity::Text(slot!("aws.cloudtrail.user_identity.invoked_by")),
    ),
    (
        "credentialId",
        Identity::Text(slot!("aws.cloudtrail.user_identity.credential_id")),
    ),
    (
        "identityProvider",
        Identity::Text(slot!("aws.cloudtrail.user_identity.identity_provider")),
    ),
]);

/// Maps `identity` (the raw `userIdentity` object) into `fields`, reading it once; returns
/// what it did not map (`None` inside: nothing), or `None` when it is not a JSON object of
/// members (the caller then keeps it whole).
pub fn map<'a>(
    identity: &'a str,
    fields: &mut Fields<'a>,
    related: &mut Related<'a>,
) -> Option<Option<Vec<u8>>> {
    let mut cursor = Cursor::new(identity)?;
    let (mut kind, mut name, mut id, mut arn) = (None, None, None, None);
    let (mut issuer_name, mut on_behalf_of) = (None, None);
    let mut typed = false;
    while let Some(member) = cursor.next(&IDENTITY).ok()? {
        match member {
            Some(Identity::Type) => {
                typed = true;
                kind = cursor.text();
            }
            Some(Identity::UserName) => name = cursor.text(),
            Some(Identity::PrincipalId) => id = cursor.text(),
            Some(Identity::Arn) => arn = cursor.text(),
            Some(Identity::SessionContext) => {
                // The issuer names the user of an assumed role or a federated user. CloudTrail
                // writes `type` first; read ahead for it when it does not.
                let kind = match &kind {
                    Some(kind) => Some(kind.clone()),
                    None if !typed => kind_ahead(identity),
                    None => None,
                };
                let assumed = matches!(kind.as_deref(), Some("AssumedRole" | "FederatedUser"));
                if let Some(mut session) = cursor.object() {
                    issuer_name = session_context(&mut session, fields, assumed)?;
                    cursor.close(session)?;
                }
            }
            Some(Identity::OnBehalfOf) => {
                if let Some(mut inner) = cursor.object() {
                    on_behalf_of = self::on_behalf_of(&mut inner, fields)?;
                    cursor.close(inner)?;
                }
            }
            Some(Identity::Texts(known)) => fields.read_texts_of(&mut cursor, known)?,
            Some(Identity::Text(slot)) => fields.copy(slot, &mut cursor),
            None => cursor.leave(),
        }
    }
    let (_, rest) = cursor.finish()?;
    if issuer_name.is_some() {
        name = issuer_name;
    }
    if kind.as_deref() == Some("IdentityCenterUser") && id.is_none() {
        id = on_behalf_of.clone();
    }
    let session_name = session_name(kind.as_deref(), arn.as_ref());
    fields.set_some(slot!("aws.cloudtrail.user_identity.type"), kind);
    fields.set_some(slot!("aws.cloudtrail.user_identity.arn"), arn);
    if let Some(session) = session_name {
        related.user(session.clone());
        if let Some(at) = session.find('@').filter(|&at| at > 0) {
            related.user(part(&session, ..at));
            fields.set(slot!("user.email"), session);
        }
    }
    related.id = id;
    related.name = name;
    related.on_behalf_of = on_behalf_of;
    Some(rest)
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
static INVOKED_BY_DELEGATE: Known<usize> = Known::new(&[(
    "accountId",
    slot!("aws.cloudtrail.user_identity.invoked_by_delegate.account_id"),
)]);

/// What a member of `onBehalfOf` is to the mapping.
#[derive(Debug, Clone, Copy)]
enum OnBehalfOf {
    UserId,
    IdentityStoreArn,
}

static ON_BEHALF_OF: Known<OnBehalfOf> = Known::new(&[
    ("userId", OnBehalfOf::UserId),
    ("identityStoreArn", OnBehalfOf::IdentityStoreArn),
]);

/// Maps `onBehalfOf`; returns its `userId`.
fn on_behalf_of<'a>(
    cursor: &mut Cursor<'a>,
    fields: &mut Fields<'a>,
) -> Option<Option<Cow<'a, str>>> {
    let mut user_id = None;
    while let Some(member) = cursor.next(&ON_BEHALF_OF).ok()? {
        match member {
            Some(OnBehalfOf::UserId) => {
                user_id = cursor.text();
                fields.set_some(
                    slot!("aws.cloudtrail.user_identity.on_behalf_of.user_id"),
                    user_id.clone(),
                );
            }
            Some(OnBehalfOf::IdentityStoreArn) => fields.copy(
                slot!("aws.cloudtrail.user_identity.on_behalf_of.identity_store_arn"),
                cursor,
            ),
            None => cursor.leave(),
        }
    }
    Some(user_id)
}

/// What a member of `sessionContext` is to the mapping.
#[derive(Debug, Clone, Copy)]
enum Session {
    Attributes,
    Issuer,
    Texts(&'static Known<usize>),
    Text(usize),
}

static SESSION: Known<Session> = Known::new(&[
    ("attributes", Session::Attributes),
    ("sessionIssuer", Session::Issuer),
    (
        "webIdFederationData",
        Session::Texts(&WEB_ID_FEDERATION_DATA),
    ),
    (
        "ec2RoleDelivery",
        Session::Text(slot!(
            "aws.cloudtrail.user_identity.session_context.ec2_role_delivery"
        )),
    ),
    (
        "sourceIdentity",
        Session::Text(slot!(
            "aws.cloudtrail.user_identity.session_context.source_identity"
        )),
    ),
    (
        "assumedRoot",
        Session::Text(slot!(
            "aws.cloudtrail.user_identity.session_context.assumed_root"
        )),
    ),
    (
        "signInSessionArn",
        Session::Text(slot!(
            "aws.cloudtrail.user_identity.session_context.sign_in_session_arn"
        )),
    ),
]);

static WEB_ID_FEDERATION_DATA: Known<usize> = Known::new(&[(
    "federatedProvider",
    slot!("aws.cloudtrail.user_identity.session_context.web_id_federation_data.federated_provider"),
)]);

/// Maps `sessionContext`; returns the session issuer's name when it names the user (an
/// assumed role, a federated user).
fn session_context<'a>(
    session: &mut Cursor<'a>,
    fields: &mut Fields<'a>,
    assumed: bool,
) -> Option<Option<Cow<'a, str>>> {
    let mut issuer_name = None;
    while let Some(member) = session.next(&SESSION).ok()? {
        match member {
            Some(Session::Attributes) => {
                if let Some(mut attributes) = session.object() {
                    self::attributes(&mut attributes, fields)?;
                    session.close(attributes)?;
                }
            }
            Some(Session::Issuer) => {
                if let Some(mut inner) = session.object() {
                    issuer_name = issuer(&mut inner, fields, assumed)?;
                    session.close(inner)?;
                }
            }
            Some(Session::Texts(known)) => fields.read_texts_of(session, known)?,
            Some(Session::Text(slot)) => fields.copy(slot, session),
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
fn attributes<'a>(attributes: &mut Cursor<'a>, fields: &mut Fields<'a>) -> Option<()> {
    while let Some(member) = attributes.next(&ATTRIBUTES).ok()? {
        match member {
            Some(Attribute::MfaAuthenticated) => fields.copy(
                slot!("aws.cloudtrail.user_identity.session_context.mfa_authenticated"),
                attributes,
            ),
            Some(Attribute::CreationDate) => {
                if let Some(raw) = attributes.take() {
                    match date(raw) {
                        Some(created) => fields.set(
                            slot!("aws.cloudtrail.user_identity.session_context.creation_date"),
                            Value::Clean(&created),
                        ),
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
    Text(usize),
}

static ISSUER: Known<Issuer> = Known::new(&[
    ("userName", Issuer::UserName),
    (
        "type",
        Issuer::Text(slot!(
            "aws.cloudtrail.user_identity.session_context.session_issuer.type"
        )),
    ),
    (
        "principalId",
        Issuer::Text(slot!(
            "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id"
        )),
    ),
    (
        "arn",
        Issuer::Text(slot!(
            "aws.cloudtrail.user_identity.session_context.session_issuer.arn"
        )),
    ),
    (
        "accountId",
        Issuer::Text(slot!(
            "aws.cloudtrail.user_identity.session_context.session_issuer.account_id"
        )),
    ),
]);

/// Maps `sessionIssuer`; returns its `userName` when it names the user (`assumed`).
fn issuer<'a>(
    issuer: &mut Cursor<'a>,
    fields: &mut Fields<'a>,
    assumed: bool,
) -> Option<Option<Cow<'a, str>>> {
    let mut name = None;
    while let Some(member) = issuer.next(&ISSUER).ok()? {
        match member {
            Some(Issuer::Text(slot)) => fields.copy(slot, issuer),
            Some(Issuer::UserName) if assumed => name = issuer.text(),
            _ => issuer.leave(),
        }
    }
    Some(name)
}

/// `inScopeOf` (root sessions that a service assumed).
static IN_SCOPE_OF: Known<usize> = Known::new(&[
    (
        "issuerType",
        slot!("aws.cloudtrail.user_identity.in_scope_of.issuer_type"),
    ),
    (
        "credentialsIssuedTo",
        slot!("aws.cloudtrail.user_identity.in_scope_of.credentials_issued_to"),
    ),
    (
        "sourceArn",
        slot!("aws.cloudtrail.user_identity.in_scope_of.source_arn"),
    ),
    (
        "sourceAccount",
        slot!("aws.cloudtrail.user_identity.in_scope_of.source_account"),
    ),
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
