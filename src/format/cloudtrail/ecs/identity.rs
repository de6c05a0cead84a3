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
use crate::format::ecs::{Fields, Object};

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

/// Maps `identity` (the `userIdentity` object) into `fields`.
pub fn map<'a>(identity: &mut Object<'a>, fields: &mut Fields<'a>, related: &mut Related<'a>) {
    let kind = identity.text("type");
    let assumed = matches!(kind.as_deref(), Some("AssumedRole" | "FederatedUser"));
    let mut name = identity.text("userName");
    let mut id = identity.text("principalId");
    let arn = identity.text("arn");
    fields.set_some(slot!("cloud.account.id"), identity.value("accountId"));
    for (key, path) in [
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
    ] {
        fields.set_some(path, identity.value(key));
    }
    if let Some(mut session) = identity.object("sessionContext") {
        if let Some(issuer_name) = session_context(&mut session, fields, assumed) {
            name = Some(issuer_name);
        }
        identity.leave("sessionContext", session.rest());
    }
    let session_name = session_name(kind.as_deref(), arn.as_deref());
    if let Some(mut on_behalf_of) = identity.object("onBehalfOf") {
        let user_id = on_behalf_of.text("userId");
        fields.set_some(
            slot!("aws.cloudtrail.user_identity.on_behalf_of.identity_store_arn"),
            on_behalf_of.value("identityStoreArn"),
        );
        if kind.as_deref() == Some("IdentityCenterUser") && id.is_none() {
            id = user_id.clone();
        }
        fields.set_some(
            slot!("aws.cloudtrail.user_identity.on_behalf_of.user_id"),
            user_id.clone(),
        );
        related.on_behalf_of = user_id;
        identity.leave("onBehalfOf", on_behalf_of.rest());
    }
    fields.texts_of(
        identity,
        "invokedByDelegate",
        &[(
            "accountId",
            slot!("aws.cloudtrail.user_identity.invoked_by_delegate.account_id"),
        )],
    );
    fields.texts_of(identity, "inScopeOf", IN_SCOPE_OF);
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
}

/// Maps `sessionContext`; returns the session issuer's name when it names the user (an
/// assumed role, a federated user).
fn session_context<'a>(
    session: &mut Object<'a>,
    fields: &mut Fields<'a>,
    assumed: bool,
) -> Option<Cow<'a, str>> {
    if let Some(mut attributes) = session.object("attributes") {
        fields.texts(
            &mut attributes,
            &[(
                "mfaAuthenticated",
                slot!("aws.cloudtrail.user_identity.session_context.mfa_authenticated"),
            )],
        );
        if let Some(created) = attributes.get("creationDate").and_then(date) {
            attributes.take("creationDate");
            fields.set(
                slot!("aws.cloudtrail.user_identity.session_context.creation_date"),
                created,
            );
        }
        session.leave("attributes", attributes.rest());
    }
    let mut issuer_name = None;
    if let Some(mut issuer) = session.object("sessionIssuer") {
        fields.texts(&mut issuer, ISSUER);
        if assumed {
            issuer_name = issuer.text("userName");
        }
        session.leave("sessionIssuer", issuer.rest());
    }
    fields.texts(session, SESSION);
    fields.texts_of(
        session,
        "webIdFederationData",
        &[(
            "federatedProvider",
            slot!("aws.cloudtrail.user_identity.session_context.web_id_federation_data.federated_provider"),
        )],
    );
    issuer_name
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
