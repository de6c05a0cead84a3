//! Index: which rules can match an event, read from its bytes before it is parsed.
//!
//! Most rules pin a field to a few plain values that every match must have (CloudTrail rules
//! name their `eventName`, Confluent rules their `data.methodName`). [`pins`] finds such a
//! necessary condition in a rule's detection; the index keeps, per pinned field, which rules
//! each value calls for. For an event, [`scan`] reads only those fields' values out of the
//! raw JSON (walking objects along the pinned paths, skipping everything else, stopping once
//! every path is found), so an event that no rule can match costs a partial scan and a few
//! hash lookups, and only a candidate is parsed and evaluated in full.
//!
//! The index only ever leaves out rules that cannot match: a value it cannot judge from the
//! bytes (a number, an array, a string holding JSON, a key with dots in it, bytes that are not
//! JSON) makes every rule pinned on that field a candidate.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::condition::Condition;
use super::field::FieldPath;
use super::rule::Rule;
use super::search::{Matcher, Search, ValueTest};
use crate::format::scan::{Members, Tokens};

/// A necessary condition of a rule: the field has one of these values (lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub field: FieldPath,
    pub values: BTreeSet<String>,
}

/// Every necessary condition [`Pin`] of `rule` that can be found (each one alone suffices).
pub fn pins(rule: &Rule) -> Vec<Pin> {
    of_condition(&rule.condition, &rule.searches)
}

fn of_condition(condition: &Condition, searches: &[Search]) -> Vec<Pin> {
    match condition {
        Condition::Search(n) => of_search(&searches[*n]),
        Condition::Not(_) => Vec::new(),
        Condition::And(items) => items
            .iter()
            .flat_map(|c| of_condition(c, searches))
            .collect(),
        Condition::All(ids) => ids.iter().flat_map(|n| of_search(&searches[*n])).collect(),
        Condition::Or(items) => any_of(items.iter().map(|c| of_condition(c, searches)).collect()),
        Condition::AtLeast(_, ids) => {
            any_of(ids.iter().map(|n| of_search(&searches[*n])).collect())
        }
    }
}

fn of_search(search: &Search) -> Vec<Pin> {
    let Search::Fields(groups) = search else {
        return Vec::new();
    };
    any_of(
        groups
            .iter()
            .map(|tests| {
                tests
                    .iter()
                    .filter_map(|test| {
                        exact_values(&test.matcher).map(|values| Pin {
                            field: test.field.clone(),
                            values,
                        })
                    })
                    .collect()
            })
            .collect(),
    )
}

/// The plain values a matcher requires one of, if that is all it does.
fn exact_values(matcher: &Matcher) -> Option<BTreeSet<String>> {
    let Matcher::Values {
        tests,
        negate: false,
        ..
    } = matcher
    else {
        return None;
    };
    let mut values = BTreeSet::new();
    for test in tests {
        let ValueTest::Strings(forms) = test else {
            return None;
        };
        for form in forms {
            let value = form.equality()?;
            // `true`, `5`: most likely a JSON boolean or number in the event, which the scan
            // does not judge; such a pin would call for its rules on every event that has it.
            if matches!(value.as_str(), "true" | "false") || value.parse::<f64>().is_ok() {
                return None;
            }
            values.insert(value);
        }
    }
    Some(values)
}

/// The pins that hold whichever alternative matched: fields pinned in every alternative,
/// with all their values.
fn any_of(alternatives: Vec<Vec<Pin>>) -> Vec<Pin> {
    let Some((first, rest)) = alternatives.split_first() else {
        return Vec::new();
    };
    let mut out: Vec<Pin> = Vec::new();
    for pin in first {
        if out.iter().any(|p| p.field == pin.field) {
            continue;
        }
        let mut values = BTreeSet::new();
        let all = std::iter::once(first).chain(rest).all(|alternative| {
            let on_field: Vec<&Pin> = alternative
                .iter()
                .filter(|p| p.field == pin.field)
                .collect();
            on_field
                .iter()
                .for_each(|p| values.extend(p.values.iter().cloned()));
            !on_field.is_empty()
        });
        if all {
            out.push(Pin {
                field: pin.field.clone(),
                values,
            });
        }
    }
    out
}

/// The rules of one dataset, by the field values that can call for them.
#[derive(Debug, Default)]
pub struct RuleIndex {
    paths: Vec<FieldPath>,
    /// Per path: value -> rules.
    keyed: Vec<Keyed>,
    /// Per path: every rule pinned on it.
    pinned: Vec<Vec<usize>>,
    /// Rules without a pin: candidates for every event.
    always: Vec<usize>,
}

impl RuleIndex {
    /// `rules` are (position, rule); the positions are what [`RuleIndex::candidates`] gives.
    /// Each rule is indexed by its most selective pin: the field that the rules together pin
    /// to the most distinct values (`eventName` rather than `eventSource`), then the pin
    /// with the fewest values.
    pub fn new<'r>(rules: impl IntoIterator<Item = (usize, &'r Rule)>) -> RuleIndex {
        let all: Vec<(usize, Vec<Pin>)> =
            rules.into_iter().map(|(n, rule)| (n, pins(rule))).collect();
        let mut distinct: HashMap<&FieldPath, BTreeSet<&str>> = HashMap::new();
        for pin in all.iter().flat_map(|(_, pins)| pins) {
            distinct
                .entry(&pin.field)
                .or_default()
                .extend(pin.values.iter().map(String::as_str));
        }
        let score = |pin: &Pin| {
            (
                distinct[&pin.field].len(),
                std::cmp::Reverse(pin.values.len()),
                std::cmp::Reverse(pin.field.name().to_string()),
            )
        };
        let mut index = RuleIndex::default();
        for (n, pins) in &all {
            let best = pins.iter().max_by_key(|pin| score(pin));
            let Some(pin) = best else {
                index.always.push(*n);
                continue;
            };
            let slot = match index.paths.iter().position(|p| *p == pin.field) {
                Some(slot) => slot,
                None if index.paths.len() == MAX_PATHS => {
                    index.always.push(*n);
                    continue;
                }
                None => {
                    index.paths.push(pin.field.clone());
                    index.keyed.push(HashMap::default());
                    index.pinned.push(Vec::new());
                    index.paths.len() - 1
                }
            };
            for value in &pin.values {
                let key = value.as_bytes().into();
                index.keyed[slot].entry(key).or_default().push(*n);
            }
            index.pinned[slot].push(*n);
        }
        index
    }

    pub fn is_empty(&self) -> bool {
        self.always.is_empty() && self.pinned.is_empty()
    }

    /// The fields the index reads of every event.
    pub fn paths(&self) -> &[FieldPath] {
        &self.paths
    }

    /// How many rules the index holds.
    pub fn rules(&self) -> usize {
        self.always.len() + self.pinned.iter().map(Vec::len).sum::<usize>()
    }

    /// The field rule `n` is indexed by.
    pub fn path_of(&self, n: usize) -> Option<&FieldPath> {
        self.pinned
            .iter()
            .position(|rules| rules.contains(&n))
            .map(|slot| &self.paths[slot])
    }

    /// Rules that are read for every event (no pin found).
    pub fn unpinned(&self) -> &[usize] {
        &self.always
    }

    /// The rules that can match the event `document`, into `out` (cleared first); `outline`
    /// holds its top-level separators when they are known ([`crate::pipeline::Event::outline`]).
    pub fn candidates(&self, document: &[u8], outline: &[u32], out: &mut Vec<usize>) {
        out.clear();
        out.extend_from_slice(&self.always);
        if self.paths.is_empty() {
            return;
        }
        let mut lowered = [0u8; LOWERED];
        for (slot, found) in scan(document, outline, &self.paths).into_iter().enumerate() {
            let rules = match found {
                Found::Absent => None,
                Found::Unknown => Some(&self.pinned[slot]),
                // Values are keyed lowercased; short ASCII ones are lowered on the stack.
                Found::Text(text) if text.is_ascii() && text.len() <= LOWERED => {
                    let lowered = &mut lowered[..text.len()];
                    lowered.copy_from_slice(&text);
                    lowered.make_ascii_lowercase();
                    self.keyed[slot].get(&*lowered)
                }
                Found::Text(text) => match std::str::from_utf8(&text) {
                    Ok(text) => self.keyed[slot].get(text.to_lowercase().as_bytes()),
                    // Not UTF-8: no pinned value (all UTF-8) can be it.
                    Err(_) => None,
                },
            };
            if let Some(rules) = rules {
                out.extend_from_slice(rules);
            }
        }
    }
}

/// Rules by pinned value (lowercased bytes).
type Keyed = HashMap<Box<[u8]>, Vec<usize>, BuildHasherDefault<Fnv>>;

/// FNV-1a: the pinned values are looked up twice or more per event, and they are short, where
/// the default hasher's setup dominates. Only the rules put keys in these maps, so a value
/// chosen to collide can slow its own lookup, never fill a map.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        // FNV-1a's offset basis.
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// Values up to this long are lowercased without allocating.
const LOWERED: usize = 128;

/// What [`scan`] found at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    /// Not there, or `null`, or not an object on the way: no plain value can match.
    Absent,
    /// A string's bytes, decoded (borrowed from the event unless it held escapes); not
    /// checked to be UTF-8 (what is not cannot equal a pinned value, which is).
    Text(Cow<'a, [u8]>),
    /// Something the scan does not judge: only a full evaluation can.
    Unknown,
}

/// The value at each of `paths` (at most [`MAX_PATHS`]) in the JSON object `document`,
/// without parsing the rest: the structural scanner's tokens lead from key to key, and a
/// value that holds nothing wanted is passed by its brackets alone. With the document's
/// `outline` (its top-level separators; empty when not known), the top level is read from it
/// and only the values that paths go on through are scanned.
pub fn scan<'a>(document: &'a [u8], outline: &[u32], paths: &[FieldPath]) -> Vec<Found<'a>> {
    assert!(
        paths.len() <= MAX_PATHS,
        "the index reads at most {MAX_PATHS} paths"
    );
    let mut scanner = Scanner {
        bytes: document,
        tokens: Tokens::new(if outline.is_empty() { document } else { &[] }),
        paths,
        found: vec![None; paths.len()],
        open: if paths.len() == MAX_PATHS {
            u64::MAX
        } else {
            (1u64 << paths.len()) - 1
        },
        whole: if outline.is_empty() { usize::MAX } else { 1 },
        nested: paths
            .iter()
            .enumerate()
            .filter(|(_, path)| path.steps().len() > 1)
            .fold(0, |mask, (p, _)| mask | 1 << p),
    };
    let wanted = scanner.open;
    let outcome = if outline.is_empty() {
        scanner
            .take(scanner.after_whitespace(0), b'{')
            .and_then(|()| scanner.object(wanted, 0))
    } else {
        scanner.outlined(outline, wanted)
    };
    let unresolved = match outcome {
        Ok(()) | Err(Stop::Done) => Found::Absent,
        Err(Stop::Malformed) => Found::Unknown,
    };
    scanner
        .found
        .into_iter()
        .map(|f| f.unwrap_or_else(|| unresolved.clone()))
        .collect()
}

/// The most paths one index reads (a path is one bit of a mask while scanning); rules
/// pinned on further fields are evaluated for every event.
pub const MAX_PATHS: usize = 64;

enum Stop {
    /// Every path is resolved.
    Done,
    Malformed,
}

struct Scanner<'a, 'p> {
    bytes: &'a [u8],
    tokens: Tokens<'a>,
    paths: &'p [FieldPath],
    found: Vec<Option<Found<'a>>>,
    /// Paths not resolved yet, one bit each.
    open: u64,
    /// The depth of an object that is the whole of `bytes` (a top-level value read from the
    /// outline), else none.
    whole: usize,
    /// The paths of more than one step.
    nested: u64,
}

/// Whether `bytes`, a key or a short value, holds `byte`: a plain loop, which beats starting a
/// vector search on a few bytes.
fn has_byte(bytes: &[u8], byte: u8) -> bool {
    bytes.iter().fold(false, |found, &b| found | (b == byte))
}

fn has_backslash(bytes: &[u8]) -> bool {
    has_byte(bytes, b'\\')
}

/// The content of a string value without escapes; `None` for anything else.
fn plain_string(value: &[u8]) -> Option<&[u8]> {
    match value {
        [b'"', inner @ .., b'"'] if !has_backslash(inner) => Some(inner),
        _ => None,
    }
}

/// The paths in `mask`, as positions.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let p = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            p
        })
    })
}

impl<'a> Scanner<'a, '_> {
    /// Where the first byte at or after `at` that is not whitespace is.
    fn after_whitespace(&self, mut at: usize) -> usize {
        while matches!(self.bytes.get(at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            at += 1;
        }
        at
    }

    /// The next token.
    fn token(&mut self) -> Result<(usize, u8), Stop> {
        self.tokens.next_token().ok_or(Stop::Malformed)
    }

    /// Takes the next token, which must be `byte` at `at`.
    fn take(&mut self, at: usize, byte: u8) -> Result<(), Stop> {
        match self.token()? {
            found if found == (at, byte) => Ok(()),
            _ => Err(Stop::Malformed),
        }
    }

    fn resolve(&mut self, p: usize, found: Found<'a>) {
        self.found[p] = Some(found);
        self.open &= !(1u64 << p);
    }

    /// After a string's opening quote at `open`: its content span and whether it holds
    /// escapes; takes its closing quote.
    fn string(&mut self, open: usize) -> Result<(usize, usize, bool), Stop> {
        let (close, _) = self.token()?;
        let escaped = self.tokens.backslash_within(open + 1, close);
        Ok((open + 1, close, escaped))
    }

    /// The content of the string at `span`, decoded when it holds escapes (`None` when those
    /// are not valid).
    fn text(&self, (start, end, escaped): (usize, usize, bool)) -> Option<Cow<'a, [u8]>> {
        let bytes: &'a [u8] = self.bytes;
        if escaped {
            serde_json::from_slice::<String>(&bytes[start - 1..end + 1])
                .ok()
                .map(|text| Cow::Owned(text.into_bytes()))
        } else {
            Some(Cow::Borrowed(&bytes[start..end]))
        }
    }

    /// Passes the value that starts at `at`.
    fn skip_value(&mut self, at: usize) -> Result<(), Stop> {
        match self.bytes.get(at) {
            Some(b'"') => {
                self.take(at, b'"')?;
                self.string(at).map(drop)
            }
            Some(&open @ (b'{' | b'[')) => {
                self.take(at, open)?;
                self.tokens.close(1).map(drop).ok_or(Stop::Malformed)
            }
            // A number, `true`, `false` or `null`: no token of its own.
            Some(_) => Ok(()),
            None => Err(Stop::Malformed),
        }
    }

    /// After an object's `{`: walks the object, resolving the `wanted` paths at step
    /// `depth`, up to and including its `}`.
    fn object(&mut self, wanted: u64, depth: usize) -> Result<(), Stop> {
        let (mut at, mut byte) = self.token()?;
        if byte == b'}' {
            return Ok(());
        }
        loop {
            if depth > 0 && wanted & self.open == 0 {
                if depth == self.whole {
                    // The object is all that is scanned: its end needs no finding.
                    return Ok(());
                }
                // Nothing more to find in this object: jump to its end.
                return self.tokens.close(1).map(drop).ok_or(Stop::Malformed);
            }
            if byte != b'"' {
                return Err(Stop::Malformed);
            }
            let span = self.string(at)?;
            let (colon, separator) = self.token()?;
            if separator != b':' {
                return Err(Stop::Malformed);
            }
            let value_at = self.after_whitespace(colon + 1);
            let here = self.named(span, wanted, depth)?;
            if here == 0 {
                self.skip_value(value_at)?;
            } else {
                self.value(here, depth, value_at)?;
                if self.open == 0 {
                    return Err(Stop::Done);
                }
            }
            match self.token()? {
                (_, b',') => (at, byte) = self.token()?,
                (_, b'}') => {
                    if depth > 0 {
                        // Not in this object: absent (a later duplicate key cannot count).
                        for p in bits(wanted & self.open) {
                            self.resolve(p, Found::Absent);
                        }
                    }
                    return Ok(());
                }
                _ => return Err(Stop::Malformed),
            }
        }
    }

    /// The paths of `wanted` still open whose step `depth` is the key at `span`; those that
    /// a key with dots may spell are resolved as unknown.
    fn named(
        &mut self,
        span: (usize, usize, bool),
        wanted: u64,
        depth: usize,
    ) -> Result<u64, Stop> {
        let paths = self.paths;
        // Keys are compared as bytes; only a key with escapes is decoded first.
        let bytes: &'a [u8] = self.bytes;
        let decoded;
        let key: &[u8] = if span.2 {
            decoded = self.text(span).ok_or(Stop::Malformed)?;
            &decoded[..]
        } else {
            &bytes[span.0..span.1]
        };
        let open = wanted & self.open;
        let here = bits(open)
            .filter(|p| paths[*p].steps()[depth].as_bytes() == key)
            .fold(0u64, |mask, p| mask | 1 << p);
        // Only a path with steps below this key's can be spelled by a key with dots.
        let spellable = depth > 0 || open & self.nested != 0;
        if spellable && has_byte(key, b'.') {
            self.dotted_key(key, open, depth)?;
        }
        Ok(here)
    }

    /// The top level of the document from its outline: key by key, the values that paths
    /// go on through scanned on their own.
    fn outlined(&mut self, outline: &[u32], wanted: u64) -> Result<(), Stop> {
        let document = self.bytes;
        for member in Members::new(document, outline) {
            let member = member.map_err(|_| Stop::Malformed)?;
            let key = &document[member.key.start + 1..member.key.end - 1];
            let span = (member.key.start + 1, member.key.end - 1, has_backslash(key));
            let here = self.named(span, wanted, 0)?;
            if here == 0 {
                continue;
            }
            let value = &document[member.value];
            let paths = self.paths;
            if bits(here).all(|p| paths[p].steps().len() == 1) {
                // Most values read are plain strings (an `eventName`): no scan needed.
                if let Some(text) = plain_string(value) {
                    for p in bits(here) {
                        self.resolve(p, Found::Text(Cow::Borrowed(text)));
                    }
                    if self.open == 0 {
                        return Err(Stop::Done);
                    }
                    continue;
                }
            }
            // The value alone, as a document of its own (what is found borrows from it).
            self.bytes = value;
            self.tokens = Tokens::new(value);
            let outcome = self.value(here, 0, 0);
            self.bytes = document;
            outcome?;
            if self.open == 0 {
                return Err(Stop::Done);
            }
        }
        Ok(())
    }

    /// The value at `at` under a key that the paths in `here` name at step `depth`: those
    /// that end here take it, the others go on below it.
    fn value(&mut self, here: u64, depth: usize, at: usize) -> Result<(), Stop> {
        let paths = self.paths;
        let ending = bits(here)
            .filter(|p| paths[*p].steps().len() == depth + 1)
            .fold(0u64, |mask, p| mask | 1 << p);
        let deeper = here & !ending;
        // Both at once are rare: the value is read twice.
        let again = (ending != 0 && deeper != 0).then(|| self.tokens.clone());
        if ending != 0 {
            let value = self.leaf(at)?;
            for p in bits(ending) {
                self.resolve(p, value.clone());
            }
        }
        if let Some(tokens) = again {
            self.tokens = tokens;
        }
        if deeper != 0 {
            self.descend(deeper, depth, at)?;
        }
        Ok(())
    }

    /// A key with a dot may spell several steps of a path at once (`"a.b": 1` for `a.b.c`):
    /// those paths cannot be told from the bytes alone.
    fn dotted_key(&mut self, key: &[u8], open: u64, depth: usize) -> Result<(), Stop> {
        let key = std::str::from_utf8(key).map_err(|_| Stop::Malformed)?;
        for p in bits(open) {
            let rest = self.paths[p].steps()[depth..].join(".");
            if rest == key || rest.starts_with(&format!("{key}.")) {
                self.resolve(p, Found::Unknown);
            }
        }
        Ok(())
    }

    /// The value at `at` under a key that the `deeper` paths go on through: an object is
    /// searched, a string holding JSON or an array cannot be told, anything else has nothing
    /// below.
    fn descend(&mut self, deeper: u64, depth: usize, at: usize) -> Result<(), Stop> {
        let found = match self.bytes.get(at) {
            Some(b'{') => {
                self.take(at, b'{')?;
                return self.object(deeper, depth + 1);
            }
            Some(b'"') => {
                self.take(at, b'"')?;
                let span = self.string(at)?;
                let inner = &self.bytes[span.0..span.1];
                let embedded = inner
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|b| matches!(b, b'{' | b'['));
                if embedded {
                    Found::Unknown
                } else {
                    Found::Absent
                }
            }
            Some(b'[') => {
                self.skip_value(at)?;
                Found::Unknown
            }
            _ => {
                self.skip_value(at)?;
                Found::Absent
            }
        };
        for p in bits(deeper) {
            self.resolve(p, found.clone());
        }
        Ok(())
    }

    /// The value at a path's end, at `at`; passes it.
    fn leaf(&mut self, at: usize) -> Result<Found<'a>, Stop> {
        match self.bytes.get(at) {
            Some(b'"') => {
                self.take(at, b'"')?;
                let span = self.string(at)?;
                Ok(self.text(span).map_or(Found::Unknown, Found::Text))
            }
            Some(b'n') => {
                self.skip_value(at)?;
                Ok(Found::Absent)
            }
            _ => {
                self.skip_value(at)?;
                Ok(Found::Unknown)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::cloudtrail::split::OwnedRecord;
    use serde_json::json;

    fn rule(detection: &str) -> Rule {
        let text = format!("title: t\nlogsource: {{product: aws}}\ndetection:\n{detection}");
        let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
        Rule::compile(&docs[0], &text).unwrap()
    }

    fn pin_fields(r: &Rule) -> Vec<(String, Vec<String>)> {
        pins(r)
            .into_iter()
            .map(|p| (p.field.name().to_string(), p.values.into_iter().collect()))
            .collect()
    }

    #[test]
    fn pins_are_what_every_match_needs() {
        let r = rule("    selection:\n        eventSource: cloudtrail.amazonaws.com\n        eventName: [StopLogging, DeleteTrail]\n    filter:\n        userIdentity.type: Root\n    condition: selection and not filter\n");
        assert_eq!(
            pin_fields(&r),
            vec![
                (
                    "eventSource".into(),
                    vec!["cloudtrail.amazonaws.com".into()]
                ),
                (
                    "eventName".into(),
                    vec!["deletetrail".into(), "stoplogging".into()]
                ),
            ]
        );
        // Either selection: only a field both pin is necessary, with both values.
        let r = rule("    a:\n        eventName: CreateUser\n        x: 1\n    b:\n        eventName: CreateAccessKey\n    condition: 1 of a*  or b\n");
        assert_eq!(
            pin_fields(&r),
            vec![(
                "eventName".into(),
                vec!["createaccesskey".into(), "createuser".into()]
            )]
        );
        // Nothing necessary: a negation, a wildcard, a keyword, a field only one side pins.
        for detection in [
            "    a:\n        eventName: X\n    condition: not a\n",
            "    a:\n        eventName: Create*\n    condition: a\n",
            "    a:\n        - CreateUser\n    condition: a\n",
            "    a:\n        eventName: X\n    b:\n        other: Y\n    condition: a or b\n",
            "    a:\n        eventName|contains: X\n    condition: a\n",
        ] {
            assert!(pins(&rule(detection)).is_empty(), "{detection}");
        }
    }

    /// What [`scan`] finds in `document`, the same with its outline as without.
    fn scanned<'a>(document: &'a [u8], paths: &[FieldPath]) -> Vec<Found<'a>> {
        let found = scan(document, &[], paths);
        if let Ok(record) = OwnedRecord::parse(document) {
            let outline = record.as_record().separators().to_vec();
            if document.first() == Some(&b'{') && !outline.is_empty() {
                assert_eq!(scan(document, &outline, paths), found, "with its outline");
            }
        }
        found
    }

    #[test]
    fn the_scan_reads_only_the_pinned_paths() {
        let paths: Vec<FieldPath> = [
            "eventName",
            "userIdentity.type",
            "a.b.c",
            "missing",
            "list.x",
            "free.x",
            "num",
            "dotted.key",
        ]
        .iter()
        .map(|p| FieldPath::new(p))
        .collect();
        let document = json!({
            "@timestamp": "t",
            "userIdentity": {"arn": "x\"y", "type": "Ro\\u006ft", "nested": {"type": "no"}},
            "skip": [1, {"eventName": "not this"}, "a]b"],
            "eventName": "StopLogging",
            "a": {"b": {"c": "deep"}},
            "list": [{"x": 1}],
            "free": "{\"x\": 1}",
            "num": 5,
            "dotted.key": "v"
        })
        .to_string()
        .replace("Ro\\\\u006ft", "Ro\\u006ft");
        assert_eq!(
            scanned(document.as_bytes(), &paths),
            vec![
                Found::Text(Cow::Borrowed(b"StopLogging")),
                Found::Text(Cow::Borrowed(b"Root")),
                Found::Text(Cow::Borrowed(b"deep")),
                Found::Absent,
                Found::Unknown,
                Found::Unknown,
                Found::Unknown,
                Found::Unknown,
            ]
        );
        assert_eq!(
            scanned(b"{\"eventName\": \"X\", broken", &paths[..2]),
            vec![Found::Text(Cow::Borrowed(b"X")), Found::Unknown]
        );
        assert_eq!(scanned(b"not json", &paths[..1]), vec![Found::Unknown]);
        assert_eq!(
            scanned(b"{\"eventName\": null}", &paths[..1]),
            vec![Found::Absent]
        );
        assert_eq!(
            scanned(b"{\"userIdentity\": \"plain\"}", &paths[1..2]),
            vec![Found::Absent]
        );
    }

    #[test]
    fn candidates_come_from_the_pinned_values_or_the_unpinned_rules() {
        let rules = [
            rule("    s:\n        eventName: StopLogging\n    condition: s\n"),
            rule("    s:\n        eventName: [DeleteTrail, StopLogging]\n    condition: s\n"),
            rule("    s:\n        userIdentity.type: Root\n    condition: s\n"),
            rule("    s:\n        - anything\n    condition: s\n"),
        ];
        let index = RuleIndex::new(rules.iter().enumerate());
        assert_eq!(index.unpinned(), &[3]);
        let mut out = Vec::new();
        let mut of = |doc: serde_json::Value| {
            index.candidates(doc.to_string().as_bytes(), &[], &mut out);
            out.sort();
            out.clone()
        };
        assert_eq!(of(json!({"eventName": "stoplogging"})), vec![0, 1, 3]);
        assert_eq!(
            of(json!({"eventName": "DeleteTrail", "userIdentity": {"type": "Root"}})),
            vec![1, 2, 3]
        );
        assert_eq!(of(json!({"eventName": "GetObject"})), vec![3]);
        assert_eq!(
            of(json!({"eventName": ["StopLogging"]})),
            vec![0, 1, 3],
            "an array is judged in full"
        );
    }
}
