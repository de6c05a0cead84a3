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
use crate::format::ecs::{known, Cursor, Few, Known, Needle, Nested, Str, Strings};

/// The names `related.user` gathers, in the integration's order, each once, and the user's
/// own id and name, which [`identity`] finds and the names of the request follow.
#[derive(Debug, Default)]
pub struct Related<'a> {
    /// The names so far (a document has at most seven: the session's name and its local
    /// part, three from the request, the user's own and the one it acts for).
    users: Few<Str<'a>, 8>,
    pub id: Text<'a>,
    pub name: Text<'a>,
    pub on_behalf_of: Text<'a>,
}

impl<'a> Related<'a> {
    pub fn user(&mut self, name: Str<'a>) {
        if !name.is_empty() && !self.users.iter().any(|user| *user == name) {
            self.users.push(name);
        }
    }

    /// The names gathered, in order.
    pub fn users(&self) -> Cow<'_, [Str<'a>]> {
        self.users.as_slice()
    }
}

/// A text of the record, or none (see [`Str`]).
pub type Text<'a> = Option<Str<'a>>;

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

/// Members of one object copied as text: each key in the record, with its key in the
/// document. A place of an array of [`Identity`] is the place of its pair here.
type Pairs<const N: usize> = [(&'static str, &'static [u8]); N];

/// `userIdentity`'s own texts, in the order of [`Identity::own`].
const OWN: Pairs<6> = [
    ("type", b"\"type\":"),
    ("arn", b"\"arn\":"),
    ("accessKeyId", b"\"access_key_id\":"),
    ("invokedBy", b"\"invoked_by\":"),
    ("credentialId", b"\"credential_id\":"),
    ("identityProvider", b"\"identity_provider\":"),
];

/// The places of `own` the mapping reads again.
const TYPE: usize = 0;
const ARN: usize = 1;

/// `inScopeOf` (root sessions that a service assumed).
const IN_SCOPE_OF_TEXTS: Pairs<4> = [
    ("issuerType", b"\"issuer_type\":"),
    ("credentialsIssuedTo", b"\"credentials_issued_to\":"),
    ("sourceArn", b"\"source_arn\":"),
    ("sourceAccount", b"\"source_account\":"),
];

/// `invokedByDelegate`.
const DELEGATE_TEXTS: Pairs<1> = [("accountId", b"\"account_id\":")];

/// `onBehalfOf`.
const ON_BEHALF_OF_TEXTS: Pairs<2> = [
    ("userId", b"\"user_id\":"),
    ("identityStoreArn", b"\"identity_store_arn\":"),
];

/// `sessionContext`'s texts, then its `attributes.mfaAuthenticated`.
const SESSION_TEXTS: Pairs<5> = [
    ("ec2RoleDelivery", b"\"ec2_role_delivery\":"),
    ("sourceIdentity", b"\"source_identity\":"),
    ("assumedRoot", b"\"assumed_root\":"),
    ("signInSessionArn", b"\"sign_in_session_arn\":"),
    ("mfaAuthenticated", b"\"mfa_authenticated\":"),
];

/// The place of `attributes.mfaAuthenticated` in `session`.
const MFA: usize = 4;

/// `sessionIssuer`'s texts.
const ISSUER_TEXTS: Pairs<4> = [
    ("type", b"\"type\":"),
    ("principalId", b"\"principal_id\":"),
    ("arn", b"\"arn\":"),
    ("accountId", b"\"account_id\":"),
];

/// `webIdFederationData`.
const FEDERATION_TEXTS: Pairs<1> = [("federatedProvider", b"\"federated_provider\":")];

/// The record keys of `pairs`, each with its place: a list for `known!`.
const fn places<const N: usize>(pairs: &Pairs<N>) -> [(&'static str, usize); N] {
    let mut places = [("", 0); N];
    let mut n = 0;
    while n < N {
        places[n] = (pairs[n].0, n);
        n += 1;
    }
    places
}

/// Writes each text of `values` under its document key in `pairs`.
#[inline(always)]
fn write_texts<const N: usize>(w: &mut Nested<'_>, pairs: &Pairs<N>, values: &[Text<'_>; N]) {
    for ((_, key), value) in pairs.iter().zip(values) {
        w.text(key, value);
    }
}

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
static IDENTITY: Known<Member> = known!(&[
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
    // (each `Own` place is that of its key in `OWN`: a test checks it)
]);

/// Maps `identity` (the raw `userIdentity` object) into `into`, reading it once (texts it
/// decodes or makes are held in `strings`); returns what it did not map (`None` inside:
/// nothing), or `None` when it is not a JSON object of members (the caller then keeps it
/// whole).
pub fn map<'a>(
    identity: &'a str,
    into: &mut Identity<'a>,
    related: &mut Related<'a>,
    strings: &'a Strings,
) -> Option<Option<Vec<u8>>> {
    let mut cursor = Cursor::new(identity)?;
    let (mut name, mut id) = (None, None);
    let (mut issuer_name, mut on_behalf_of) = (None, None);
    let mut typed = false;
    while let Some(member) = cursor.next(&IDENTITY).ok()? {
        match member {
            Some(Member::Own(place)) => {
                typed |= place == TYPE;
                into.own[place] = cursor.text(strings);
            }
            Some(Member::UserName) => name = cursor.text(strings),
            Some(Member::PrincipalId) => id = cursor.text(strings),
            Some(Member::AccountId) => into.account_id = cursor.text(strings),
            Some(Member::SessionContext) => {
                // The issuer names the user of an assumed role or a federated user. CloudTrail
                // writes `type` first; read ahead for it when it does not.
                let kind = match into.own[TYPE] {
                    Some(kind) => Some(kind),
                    None if !typed => kind_ahead(identity, strings),
                    None => None,
                };
                let assumed = matches!(kind.as_deref(), Some("AssumedRole" | "FederatedUser"));
                if let Some(mut session) = cursor.object() {
                    issuer_name = session_context(&mut session, into, assumed, strings)?;
                    cursor.close(session)?;
                }
            }
            Some(Member::OnBehalfOf) => {
                if let Some(mut inner) = cursor.object() {
                    read_texts(&mut inner, &ON_BEHALF_OF, &mut into.on_behalf_of, strings)?;
                    cursor.close(inner)?;
                    on_behalf_of = into.on_behalf_of[0];
                }
            }
            Some(Member::InScopeOf) => {
                read_texts_of(&mut cursor, &IN_SCOPE_OF, &mut into.in_scope_of, strings)?
            }
            Some(Member::InvokedByDelegate) => read_texts_of(
                &mut cursor,
                &INVOKED_BY_DELEGATE,
                &mut into.delegate,
                strings,
            )?,
            None => cursor.leave(),
        }
    }
    let (_, rest) = cursor.finish()?;
    if issuer_name.is_some() {
        name = issuer_name;
    }
    let kind = into.own[TYPE].as_deref();
    if kind == Some("IdentityCenterUser") && id.is_none() {
        id = on_behalf_of;
    }
    if let Some(session) = session_name(kind, into.own[ARN]) {
        related.user(session);
        if let Some(at) = memchr::memchr(b'@', session.as_bytes()).filter(|&at| at > 0) {
            related.user(session.part(..at));
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
        write_texts(w, &OWN, &self.own);
        w.open(b"\"in_scope_of\":{");
        write_texts(w, &IN_SCOPE_OF_TEXTS, &self.in_scope_of);
        w.close();
        w.open(b"\"invoked_by_delegate\":{");
        write_texts(w, &DELEGATE_TEXTS, &self.delegate);
        w.close();
        w.open(b"\"on_behalf_of\":{");
        write_texts(w, &ON_BEHALF_OF_TEXTS, &self.on_behalf_of);
        w.close();
        w.open(b"\"session_context\":{");
        write_texts(w, &SESSION_TEXTS, &self.session);
        if let Some(created) = &self.created {
            w.clean(b"\"creation_date\":", created);
        }
        w.open(b"\"session_issuer\":{");
        write_texts(w, &ISSUER_TEXTS, &self.issuer);
        w.close();
        w.open(b"\"web_id_federation_data\":{");
        write_texts(w, &FEDERATION_TEXTS, &self.federation);
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
    strings: &'a Strings,
) -> Option<()> {
    while let Some(member) = cursor.next(known).ok()? {
        match member {
            Some(place) => into[place] = cursor.text(strings),
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
    strings: &'a Strings,
) -> Option<()> {
    if let Some(mut inner) = cursor.object() {
        read_texts(&mut inner, known, into, strings)?;
        cursor.close(inner)?;
    }
    Some(())
}

/// The `type` of `identity`, read ahead of the member being read.
fn kind_ahead<'a>(identity: &'a str, strings: &'a Strings) -> Text<'a> {
    let mut cursor = Cursor::new(identity)?;
    while let Some(key) = cursor.key().ok()? {
        if key == "type" {
            return cursor.text(strings);
        }
        cursor.take();
    }
    None
}

static INVOKED_BY_DELEGATE: Known<usize> = known!(&places(&DELEGATE_TEXTS));

static ON_BEHALF_OF: Known<usize> = known!(&places(&ON_BEHALF_OF_TEXTS));

/// What a member of `sessionContext` is to the mapping.
#[derive(Debug, Clone, Copy)]
enum Session {
    Attributes,
    Issuer,
    WebIdFederationData,
    /// Copied as text to this place of `session`.
    Text(usize),
}

static SESSION: Known<Session> = known!(&[
    ("attributes", Session::Attributes),
    ("sessionIssuer", Session::Issuer),
    ("webIdFederationData", Session::WebIdFederationData),
    ("ec2RoleDelivery", Session::Text(0)),
    ("sourceIdentity", Session::Text(1)),
    ("assumedRoot", Session::Text(2)),
    ("signInSessionArn", Session::Text(3)),
    // (each `Text` place is that of its key in `SESSION_TEXTS`: a test checks it)
]);

static WEB_ID_FEDERATION_DATA: Known<usize> = known!(&places(&FEDERATION_TEXTS));

/// Maps `sessionContext`; returns the session issuer's name when it names the user (an
/// assumed role, a federated user).
fn session_context<'a>(
    session: &mut Cursor<'a>,
    into: &mut Identity<'a>,
    assumed: bool,
    strings: &'a Strings,
) -> Option<Text<'a>> {
    let mut issuer_name = None;
    while let Some(member) = session.next(&SESSION).ok()? {
        match member {
            Some(Session::Attributes) => {
                if let Some(mut attributes) = session.object() {
                    self::attributes(&mut attributes, into, strings)?;
                    session.close(attributes)?;
                }
            }
            Some(Session::Issuer) => {
                if let Some(mut inner) = session.object() {
                    issuer_name = issuer(&mut inner, &mut into.issuer, assumed, strings)?;
                    session.close(inner)?;
                }
            }
            Some(Session::WebIdFederationData) => read_texts_of(
                session,
                &WEB_ID_FEDERATION_DATA,
                &mut into.federation,
                strings,
            )?,
            Some(Session::Text(place)) => into.session[place] = session.text(strings),
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

static ATTRIBUTES: Known<Attribute> = known!(&[
    ("mfaAuthenticated", Attribute::MfaAuthenticated),
    ("creationDate", Attribute::CreationDate),
]);

/// Maps the session's `attributes`: `mfaAuthenticated`, and `creationDate` when it is a date
/// (left otherwise).
fn attributes<'a>(
    attributes: &mut Cursor<'a>,
    into: &mut Identity<'a>,
    strings: &'a Strings,
) -> Option<()> {
    while let Some(member) = attributes.next(&ATTRIBUTES).ok()? {
        match member {
            Some(Attribute::MfaAuthenticated) => {
                into.session[MFA] = attributes.text(strings);
            }
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

static ISSUER: Known<Issuer> = known!(&[
    ("userName", Issuer::UserName),
    ("type", Issuer::Text(0)),
    ("principalId", Issuer::Text(1)),
    ("arn", Issuer::Text(2)),
    ("accountId", Issuer::Text(3)),
    // (each `Text` place is that of its key in `ISSUER_TEXTS`: a test checks it)
]);

/// Maps `sessionIssuer` into `into`; returns its `userName` when it names the user
/// (`assumed`).
fn issuer<'a>(
    issuer: &mut Cursor<'a>,
    into: &mut [Text<'a>; 4],
    assumed: bool,
    strings: &'a Strings,
) -> Option<Text<'a>> {
    let mut name = None;
    while let Some(member) = issuer.next(&ISSUER).ok()? {
        match member {
            Some(Issuer::Text(place)) => into[place] = issuer.text(strings),
            Some(Issuer::UserName) if assumed => name = issuer.text(strings),
            _ => issuer.leave(),
        }
    }
    Some(name)
}

static IN_SCOPE_OF: Known<usize> = known!(&places(&IN_SCOPE_OF_TEXTS));

/// The session name of an assumed role, a federated user or an Identity Center user: the
/// part of its `sts` ARN after the last `/`.
fn session_name<'a>(kind: Option<&str>, arn: Text<'a>) -> Text<'a> {
    if !matches!(
        kind,
        Some("AssumedRole" | "FederatedUser" | "IdentityCenterUser")
    ) {
        return None;
    }
    let arn = arn?;
    static STS: Needle = Needle::new(":sts:");
    if !arn.starts_with("arn:") || !STS.found_in(&arn) {
        return None;
    }
    let after = memchr::memrchr(b'/', arn.as_bytes())? + 1;
    (after < arn.len()).then(|| arn.part(after..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ecs::known::tag;

    #[test]
    fn related_names_are_kept_once_in_order_past_the_fixed_places() {
        let mut related = Related::default();
        let names: Vec<String> = (0..12).map(|n| format!("user{n}")).collect();
        for name in names.iter().chain(&names) {
            related.user(Str::plain(name));
        }
        related.user(Str::plain(""));
        let users: Vec<&str> = related.users().iter().map(Str::as_str).collect();
        assert_eq!(users, names);
    }

    #[test]
    fn each_text_read_goes_to_the_place_of_its_document_key() {
        fn check<T: Copy>(
            known: &Known<T>,
            pairs: &[(&str, &[u8])],
            place: impl Fn(T) -> Option<usize>,
        ) {
            for (n, (key, _)) in pairs.iter().enumerate() {
                let at = known.find(key.as_bytes(), tag(key.as_bytes()));
                let at = at.unwrap_or_else(|| panic!("{key} is not read"));
                assert_eq!(place(known.meaning(at)), Some(n), "{key}");
            }
        }
        check(&IDENTITY, &OWN, |m| match m {
            Member::Own(n) => Some(n),
            _ => None,
        });
        check(&SESSION, &SESSION_TEXTS[..MFA], |m| match m {
            Session::Text(n) => Some(n),
            _ => None,
        });
        check(&ATTRIBUTES, &SESSION_TEXTS[MFA..], |m| match m {
            Attribute::MfaAuthenticated => Some(0),
            Attribute::CreationDate => None,
        });
        check(&ISSUER, &ISSUER_TEXTS, |m| match m {
            Issuer::Text(n) => Some(n),
            Issuer::UserName => None,
        });
    }

    #[test]
    fn session_names_come_from_sts_arns_only() {
        let arn = |text: &'static str| Some(Str::plain(text));
        let assumed = arn("arn:aws:sts::1:assumed-role/Role/jane@example.com");
        assert_eq!(
            session_name(Some("AssumedRole"), assumed).as_deref(),
            Some("jane@example.com")
        );
        let strings = Strings::new();
        let decoded = strings.text(Some(Cow::Owned(assumed.unwrap().to_string())));
        let session = session_name(Some("AssumedRole"), decoded).expect("a session name");
        assert_eq!(&*session, "jane@example.com");
        assert!(
            session.needs_escape(),
            "a part of a decoded text is escaped"
        );
        assert_eq!(session_name(Some("IAMUser"), assumed), None);
        assert_eq!(
            session_name(Some("AssumedRole"), arn("arn:aws:iam::1:role/R")),
            None
        );
        assert_eq!(
            session_name(Some("FederatedUser"), arn("arn:aws:sts::1:federated-user/")),
            None
        );
    }
}
