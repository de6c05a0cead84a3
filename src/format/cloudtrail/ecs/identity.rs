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
use crate::format::ecs::{Cursor, Fields};

/// The names `related.user` gathers, in the integration's order, each once, and the user's
/// own id and name, which [`identity`] finds and the names of the request follow.
#[derive(Debug, Default)]
pub struct Related<'a> {
    users: Vec<Cow<'a, str>>,
    pub id: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub on_behalf_of: Option<Cow<'a, str>>,
}

impl<'a> Related<'a> {
    pub fn user(&mut self, name: Cow<'a, str>) {
        if !name.is_empty() && !self.users.contains(&name) {
            self.users.push(name);
        }
    }

    /// The names gathered, in order.
    pub fn users(self) -> Vec<Cow<'a, str>> {
        self.users
    }
}

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
    let mut seen = Seen::default();
    while let Some(key) = cursor.key().ok()? {
        match key.as_ref() {
            "type" if seen.first("type") => kind = cursor.text(),
            "userName" if seen.first("userName") => name = cursor.text(),
            "principalId" if seen.first("principalId") => id = cursor.text(),
            "arn" if seen.first("arn") => arn = cursor.text(),
            "sessionContext" if seen.first("sessionContext") => {
                // The issuer names the user of an assumed role or a federated user. CloudTrail
                // writes `type` first; read ahead for it when it does not.
                let kind = match &kind {
                    Some(kind) => Some(kind.clone()),
                    None if !seen.has("type") => kind_ahead(identity),
                    None => None,
                };
                let assumed = matches!(kind.as_deref(), Some("AssumedRole" | "FederatedUser"));
                if let Some(mut session) = cursor.object() {
                    issuer_name = session_context(&mut session, fields, assumed)?;
                    cursor.close(session)?;
                }
            }
            "onBehalfOf" if seen.first("onBehalfOf") => {
                if let Some(mut inner) = cursor.object() {
                    on_behalf_of = self::on_behalf_of(&mut inner, fields)?;
                    cursor.close(inner)?;
                }
            }
            "invokedByDelegate" if seen.first("invokedByDelegate") => {
                fields.read_texts_of(&mut cursor, INVOKED_BY_DELEGATE)?;
            }
            "inScopeOf" if seen.first("inScopeOf") => {
                fields.read_texts_of(&mut cursor, IN_SCOPE_OF)?;
            }
            key => match OWN.iter().find(|(own, _)| *own == key) {
                Some(&(own, slot)) if seen.first(own) => fields.set_some(slot, cursor.value()),
                _ => cursor.leave(),
            },
        }
    }
    let (_, rest) = cursor.finish()?;
    if issuer_name.is_some() {
        name = issuer_name;
    }
    if kind.as_deref() == Some("IdentityCenterUser") && id.is_none() {
        id = on_behalf_of.clone();
    }
    let session_name = session_name(kind.as_deref(), arn.as_deref());
    fields.set_some(slot!("aws.cloudtrail.user_identity.type"), kind);
    fields.set_some(slot!("aws.cloudtrail.user_identity.arn"), arn);
    if let Some(session) = session_name {
        related.user(session.clone());
        if let Some(at) = session.find('@').filter(|&at| at > 0) {
            related.user(Cow::Owned(session[..at].to_string()));
            fields.set(slot!("user.email"), session);
        }
    }
    related.id = id;
    related.name = name;
    related.on_behalf_of = on_behalf_of;
    Some(rest)
}

/// The keys of one object a mapping took, so that a repeated one is left (each object here
/// has at most 16 keys to take).
#[derive(Default)]
struct Seen {
    keys: [&'static str; 16],
    count: usize,
}

impl Seen {
    /// Whether `key` is met for the first time (and notes it).
    fn first(&mut self, key: &'static str) -> bool {
        if self.has(key) {
            return false;
        }
        if let Some(place) = self.keys.get_mut(self.count) {
            *place = key;
            self.count += 1;
        }
        true
    }

    fn has(&self, key: &str) -> bool {
        self.keys[..self.count].contains(&key)
    }
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

/// The identity's own members copied as text.
const OWN: &[(&str, usize)] = &[
    ("accountId", slot!("cloud.account.id")),
    (
        "accessKeyId",
        slot!("aws.cloudtrail.user_identity.access_key_id"),
    ),
    (
        "invokedBy",
        slot!("aws.cloudtrail.user_identity.invoked_by"),
    ),
    (
        "credentialId",
        slot!("aws.cloudtrail.user_identity.credential_id"),
    ),
    (
        "identityProvider",
        slot!("aws.cloudtrail.user_identity.identity_provider"),
    ),
];

/// `invokedByDelegate`.
const INVOKED_BY_DELEGATE: &[(&str, usize)] = &[(
    "accountId",
    slot!("aws.cloudtrail.user_identity.invoked_by_delegate.account_id"),
)];

/// Maps `onBehalfOf`; returns its `userId`.
fn on_behalf_of<'a>(
    cursor: &mut Cursor<'a>,
    fields: &mut Fields<'a>,
) -> Option<Option<Cow<'a, str>>> {
    let mut user_id = None;
    let mut seen = Seen::default();
    while let Some(key) = cursor.key().ok()? {
        match key.as_ref() {
            "userId" if seen.first("userId") => {
                user_id = cursor.text();
                fields.set_some(
                    slot!("aws.cloudtrail.user_identity.on_behalf_of.user_id"),
                    user_id.clone(),
                );
            }
            "identityStoreArn" if seen.first("identityStoreArn") => fields.set_some(
                slot!("aws.cloudtrail.user_identity.on_behalf_of.identity_store_arn"),
                cursor.value(),
            ),
            _ => cursor.leave(),
        }
    }
    Some(user_id)
}

/// Maps `sessionContext`; returns the session issuer's name when it names the user (an
/// assumed role, a federated user).
fn session_context<'a>(
    session: &mut Cursor<'a>,
    fields: &mut Fields<'a>,
    assumed: bool,
) -> Option<Option<Cow<'a, str>>> {
    let mut issuer_name = None;
    let mut seen = Seen::default();
    while let Some(key) = session.key().ok()? {
        match key.as_ref() {
            "attributes" if seen.first("attributes") => {
                if let Some(mut attributes) = session.object() {
                    self::attributes(&mut attributes, fields)?;
                    session.close(attributes)?;
                }
            }
            "sessionIssuer" if seen.first("sessionIssuer") => {
                if let Some(mut issuer) = session.object() {
                    let mut seen = Seen::default();
                    while let Some(key) = issuer.key().ok()? {
                        let key = key.as_ref();
                        match ISSUER.iter().find(|(own, _)| *own == key) {
                            Some(&(own, slot)) if seen.first(own) => {
                                fields.set_some(slot, issuer.value());
                            }
                            None if key == "userName" && assumed && seen.first("userName") => {
                                issuer_name = issuer.text();
                            }
                            _ => issuer.leave(),
                        }
                    }
                    session.close(issuer)?;
                }
            }
            "webIdFederationData" if seen.first("webIdFederationData") => fields.read_texts_of(
                session,
                &[(
                    "federatedProvider",
                    slot!("aws.cloudtrail.user_identity.session_context.web_id_federation_data.federated_provider"),
                )],
            )?,
            key => match SESSION.iter().find(|(own, _)| *own == key) {
                Some(&(own, slot)) if seen.first(own) => fields.set_some(slot, session.value()),
                _ => session.leave(),
            },
        }
    }
    Some(issuer_name)
}

/// Maps the session's `attributes`: `mfaAuthenticated`, and `creationDate` when it is a date
/// (left otherwise).
fn attributes<'a>(attributes: &mut Cursor<'a>, fields: &mut Fields<'a>) -> Option<()> {
    let mut seen = Seen::default();
    while let Some(key) = attributes.key().ok()? {
        match key.as_ref() {
            "mfaAuthenticated" if seen.first("mfaAuthenticated") => fields.set_some(
                slot!("aws.cloudtrail.user_identity.session_context.mfa_authenticated"),
                attributes.value(),
            ),
            "creationDate" if seen.first("creationDate") => {
                if let Some(raw) = attributes.take() {
                    match date(raw) {
                        Some(created) => fields.set(
                            slot!("aws.cloudtrail.user_identity.session_context.creation_date"),
                            created,
                        ),
                        None => attributes.put_back(raw),
                    }
                }
            }
            _ => attributes.leave(),
        }
    }
    Some(())
}

/// The session issuer's members and their names.
const ISSUER: &[(&str, usize)] = &[
    (
        "type",
        slot!("aws.cloudtrail.user_identity.session_context.session_issuer.type"),
    ),
    (
        "principalId",
        slot!("aws.cloudtrail.user_identity.session_context.session_issuer.principal_id"),
    ),
    (
        "arn",
        slot!("aws.cloudtrail.user_identity.session_context.session_issuer.arn"),
    ),
    (
        "accountId",
        slot!("aws.cloudtrail.user_identity.session_context.session_issuer.account_id"),
    ),
];

/// The session context's own members and their names.
const SESSION: &[(&str, usize)] = &[
    (
        "ec2RoleDelivery",
        slot!("aws.cloudtrail.user_identity.session_context.ec2_role_delivery"),
    ),
    (
        "sourceIdentity",
        slot!("aws.cloudtrail.user_identity.session_context.source_identity"),
    ),
    (
        "assumedRoot",
        slot!("aws.cloudtrail.user_identity.session_context.assumed_root"),
    ),
    (
        "signInSessionArn",
        slot!("aws.cloudtrail.user_identity.session_context.sign_in_session_arn"),
    ),
];

/// `inScopeOf` (root sessions that a service assumed).
const IN_SCOPE_OF: &[(&str, usize)] = &[
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
];

/// The session name of an assumed role, a federated user or an Identity Center user: the
/// part of its `sts` ARN after the last `/`.
fn session_name<'a>(kind: Option<&str>, arn: Option<&str>) -> Option<Cow<'a, str>> {
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
    let name = &arn[arn.rfind('/')? + 1..];
    (!name.is_empty()).then(|| Cow::Owned(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_come_from_sts_arns_only() {
        let arn = "arn:aws:sts::1:assumed-role/Role/jane@example.com";
        assert_eq!(
            session_name(Some("AssumedRole"), Some(arn)).as_deref(),
            Some("jane@example.com")
        );
        assert_eq!(session_name(Some("IAMUser"), Some(arn)), None);
        assert_eq!(
            session_name(Some("AssumedRole"), Some("arn:aws:iam::1:role/R")),
            None
        );
        assert_eq!(
            session_name(
                Some("FederatedUser"),
                Some("arn:aws:sts::1:federated-user/")
            ),
            None
        );
    }
}
