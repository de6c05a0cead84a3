//! Search: one search identifier of a rule's `detection` -> a test of an event.
//!
//! A search identifier holds (Sigma specification, "Detection"):
//! - a map: every `field|modifier|...: value(s)` must hold (AND); a list of values is OR,
//!   or AND with `all`;
//! - a list of maps: any of them (OR);
//! - a list of strings (or one string): keywords, any of which appears in any value of the
//!   event (a `'|all'` key makes it all of them).
//!
//! Modifiers are applied in the order written. Supported: `contains`, `startswith`,
//! `endswith`, `all`, `exists`, `cased`, `neq`, `windash`, `re` (with `i`, `m`, `s`),
//! `base64`, `base64offset` (with `utf16le`, `utf16be`, `utf16`, `wide`), `lt`, `lte`, `gt`,
//! `gte`, `minute`, `hour`, `day`, `week`, `month`, `year`, `cidr`, `fieldref`. `expand`
//! needs placeholder values this tool does not define: a rule using it is refused, as the
//! specification asks of a tool that cannot expand placeholders.

use std::borrow::Cow;
use std::net::IpAddr;

use base64::Engine as _;
use regex::Regex;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use yaml_rust2::Yaml;

use super::field::{all_scalars, leaves, scalar_text, FieldPath};
use super::pattern::{SigmaString, StringTest};

/// One search identifier, compiled.
#[derive(Debug, Clone)]
pub enum Search {
    /// Any of these groups, each of which holds when all its tests do.
    Fields(Vec<Vec<FieldTest>>),
    Keywords {
        all: bool,
        values: Vec<StringTest>,
    },
}

/// `field|modifiers: value(s)`.
#[derive(Debug, Clone)]
pub struct FieldTest {
    pub field: FieldPath,
    pub matcher: Matcher,
}

#[derive(Debug, Clone)]
pub enum Matcher {
    /// `exists: true|false`
    Exists(bool),
    /// The values; `all` joins them with AND; `negate` (`neq`) holds when they do not.
    Values {
        tests: Vec<ValueTest>,
        all: bool,
        negate: bool,
    },
}

/// One value of a field test (which may stand for several, as `base64offset` does).
#[derive(Debug, Clone)]
pub enum ValueTest {
    /// `null`: the field is absent or null.
    Null,
    /// Any of these string forms.
    Strings(Vec<StringTest>),
    Number {
        op: Compare,
        value: f64,
        part: Option<TimePart>,
    },
    Regex(Regex),
    Cidr(Vec<Network>),
    /// The field equals (or contains, starts or ends with) another field's value.
    FieldRef {
        other: FieldPath,
        how: RefMode,
        cased: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefMode {
    Equals,
    Contains,
    StartsWith,
    EndsWith,
}

/// An IPv4 or IPv6 network of a `cidr` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.trim().parse().ok()?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Network { address, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.address, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        let (network, ip, bits) = match (self.address, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        if shift >= 128 {
            return true;
        }
        (network >> shift) == (ip >> shift)
    }
}

/// Why a search identifier cannot be compiled.
pub type SearchError = String;

impl Search {
    pub fn compile(value: &Yaml) -> Result<Search, SearchError> {
        match value {
            Yaml::Hash(map) => {
                if let Some(keywords) = keyword_map(map)? {
                    return Ok(keywords);
                }
                Ok(Search::Fields(vec![field_tests(map)?]))
            }
            Yaml::Array(items)
                if items.iter().all(|item| matches!(item, Yaml::Hash(_))) && !items.is_empty() =>
            {
                let mut groups = Vec::new();
                for item in items {
                    let Yaml::Hash(map) = item else {
                        unreachable!("checked above")
                    };
                    groups.push(field_tests(map)?);
                }
                Ok(Search::Fields(groups))
            }
            Yaml::Array(items) => {
                let values = items
                    .iter()
                    .map(|item| match item {
                        Yaml::Hash(_) | Yaml::Array(_) => {
                            Err("a list mixes keywords and maps".to_string())
                        }
                        other => keyword(other),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if values.is_empty() {
                    return Err("an empty list".to_string());
                }
                Ok(Search::Keywords { all: false, values })
            }
            Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Err("no value".to_string()),
            scalar => Ok(Search::Keywords {
                all: false,
                values: vec![keyword(scalar)?],
            }),
        }
    }

    pub fn matches(&self, event: &Value) -> bool {
        match self {
            Search::Fields(groups) => groups
                .iter()
                .any(|tests| tests.iter().all(|test| test.matches(event))),
            Search::Keywords { all, values } => {
                let found = |test: &StringTest| all_scalars(event, &mut |text| test.matches(text));
                if *all {
                    values.iter().all(found)
                } else {
                    values.iter().any(found)
                }
            }
        }
    }

    /// The field names this search tests (for an alert's key fields).
    pub fn fields(&self) -> Vec<&FieldPath> {
        match self {
            Search::Fields(groups) => groups.iter().flatten().map(|t| &t.field).collect(),
            Search::Keywords { .. } => Vec::new(),
        }
    }
}

/// A map whose only key is `|all` (or another modifier with no field): keywords.
fn keyword_map(map: &yaml_rust2::yaml::Hash) -> Result<Option<Search>, SearchError> {
    let mut iter = map.iter();
    let (Some((Yaml::String(key), value)), None) = (iter.next(), iter.next()) else {
        return Ok(None);
    };
    let Some(modifiers) = key.strip_prefix('|') else {
        return Ok(None);
    };
    if modifiers != "all" {
        return Err(format!(
            "keywords take only the `all` modifier, not `{key}`"
        ));
    }
    let Yaml::Array(items) = value else {
        return Err("`|all` keywords need a list".to_string());
    };
    let values = items.iter().map(keyword).collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Search::Keywords { all: true, values }))
}

/// A keyword: found anywhere inside a value (Sigma's full-text search), case-insensitive.
fn keyword(value: &Yaml) -> Result<StringTest, SearchError> {
    let text = scalar(value).ok_or_else(|| "a keyword must be a string or a number".to_string())?;
    StringTest::compile(&SigmaString::parse(&text).wrap(true, true), false)
        .map_err(|e| e.to_string())
}

/// A YAML scalar as Sigma reads it: a string (numbers and booleans by their text).
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn field_tests(map: &yaml_rust2::yaml::Hash) -> Result<Vec<FieldTest>, SearchError> {
    map.iter()
        .map(|(key, value)| {
            let Yaml::String(key) = key else {
                return Err(format!("a field name must be a string, not {key:?}"));
            };
            FieldTest::compile(key, value).map_err(|err| format!("`{key}`: {err}"))
        })
        .collect()
}

/// The modifiers of one field test, as they accumulate.
#[derive(Default)]
struct Modifiers {
    all: bool,
    cased: bool,
    negate: bool,
    exists: bool,
    regex: Option<String>,
    cidr: bool,
    compare: Option<Compare>,
    part: Option<TimePart>,
    fieldref: bool,
    /// `contains`, `startswith`, `endswith` (also for `fieldref`).
    ref_mode: Option<RefMode>,
    /// The encoding `base64`/`base64offset` read the text in.
    encoding: Encoding,
    /// String transformations, in order.
    transforms: Vec<Transform>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    #[default]
    Utf8,
    Utf16Le,
    Utf16Be,
    Utf16Bom,
}

#[derive(Clone, Copy)]
enum Transform {
    Contains,
    StartsWith,
    EndsWith,
    Windash,
    Base64(Encoding),
    Base64Offset(Encoding),
}

impl FieldTest {
    pub fn compile(key: &str, value: &Yaml) -> Result<FieldTest, SearchError> {
        let mut parts = key.split('|');
        let field = parts.next().unwrap_or_default();
        if field.is_empty() {
            return Err("a field test needs a field name".to_string());
        }
        let m = Modifiers::parse(parts)?;
        let field = FieldPath::new(field);
        if m.exists {
            return match value {
                Yaml::Boolean(b) => Ok(FieldTest {
                    field,
                    matcher: Matcher::Exists(*b),
                }),
                Yaml::String(s)
                    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
                {
                    Ok(FieldTest {
                        field,
                        matcher: Matcher::Exists(s.eq_ignore_ascii_case("true")),
                    })
                }
                _ => Err("`exists` takes true or false".to_string()),
            };
        }
        let values: Vec<&Yaml> = match value {
            Yaml::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        if values.is_empty() {
            return Err("an empty list of values".to_string());
        }
        let tests = values
            .into_iter()
            .map(|value| m.value_test(value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FieldTest {
            field,
            matcher: Matcher::Values {
                tests,
                all: m.all,
                negate: m.negate,
            },
        })
    }

    pub fn matches(&self, event: &Value) -> bool {
        let found = self.field.values(event);
        match &self.matcher {
            Matcher::Exists(wanted) => found.is_empty() != *wanted,
            Matcher::Values { tests, all, negate } => {
                let one = |test: &ValueTest| test.matches(&found, event);
                let held = if *all {
                    tests.iter().all(one)
                } else {
                    tests.iter().any(one)
                };
                held != *negate
            }
        }
    }
}

impl Modifiers {
    /// The modifiers after a field name (`|contains|all`).
    fn parse<'a>(parts: impl Iterator<Item = &'a str>) -> Result<Modifiers, SearchError> {
        let mut m = Modifiers::default();
        for modifier in parts {
            match modifier {
                "all" => m.all = true,
                "cased" => m.cased = true,
                "neq" => m.negate = true,
                "exists" => m.exists = true,
                "contains" => m.push(Transform::Contains, RefMode::Contains),
                "startswith" => m.push(Transform::StartsWith, RefMode::StartsWith),
                "endswith" => m.push(Transform::EndsWith, RefMode::EndsWith),
                "windash" => m.transforms.push(Transform::Windash),
                "base64" => m.transforms.push(Transform::Base64(m.encoding)),
                "base64offset" => m.transforms.push(Transform::Base64Offset(m.encoding)),
                "utf16le" | "wide" => m.encoding = Encoding::Utf16Le,
                "utf16be" => m.encoding = Encoding::Utf16Be,
                "utf16" => m.encoding = Encoding::Utf16Bom,
                "re" => m.regex = Some(String::new()),
                "i" | "m" | "s" if m.regex.is_some() => {
                    m.regex.as_mut().expect("checked").push_str(modifier)
                }
                "cidr" => m.cidr = true,
                "lt" => m.compare = Some(Compare::Lt),
                "lte" => m.compare = Some(Compare::Lte),
                "gt" => m.compare = Some(Compare::Gt),
                "gte" => m.compare = Some(Compare::Gte),
                "minute" => m.part = Some(TimePart::Minute),
                "hour" => m.part = Some(TimePart::Hour),
                "day" => m.part = Some(TimePart::Day),
                "week" => m.part = Some(TimePart::Week),
                "month" => m.part = Some(TimePart::Month),
                "year" => m.part = Some(TimePart::Year),
                "fieldref" => m.fieldref = true,
                "expand" => {
                    return Err("the `expand` modifier needs placeholder values, which this tool does not define".to_string())
                }
                "" => return Err("an empty modifier".to_string()),
                other => return Err(format!("the modifier `{other}` is not supported")),
            }
        }
        Ok(m)
    }

    fn push(&mut self, transform: Transform, mode: RefMode) {
        self.transforms.push(transform);
        self.ref_mode = Some(mode);
    }

    fn value_test(&self, value: &Yaml) -> Result<ValueTest, SearchError> {
        if matches!(value, Yaml::Null) {
            return if self.transforms.is_empty()
                && self.regex.is_none()
                && !self.cidr
                && self.compare.is_none()
            {
                Ok(ValueTest::Null)
            } else {
                Err("`null` takes no modifiers".to_string())
            };
        }
        let text = scalar(value)
            .ok_or_else(|| format!("a value must be a string, a number or null, not {value:?}"))?;
        if self.fieldref {
            return self.field_ref(&text);
        }
        if let Some(flags) = &self.regex {
            return regex(flags, &text);
        }
        if self.cidr {
            let network =
                Network::parse(&text).ok_or_else(|| format!("`{text}` is not a CIDR network"))?;
            return Ok(ValueTest::Cidr(vec![network]));
        }
        if self.compare.is_some() || self.part.is_some() {
            let number: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("`{text}` is not a number"))?;
            return Ok(ValueTest::Number {
                op: self.compare.unwrap_or(Compare::Eq),
                value: number,
                part: self.part,
            });
        }
        let mut forms = vec![match value {
            Yaml::String(_) => SigmaString::parse(&text),
            _ => SigmaString::plain(text),
        }];
        for transform in &self.transforms {
            forms = forms
                .into_iter()
                .map(|form| apply(form, *transform))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect();
        }
        let tests = forms
            .iter()
            .map(|form| StringTest::compile(form, self.cased).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ValueTest::Strings(tests))
    }

    /// `fieldref`: the value names another field of the same event.
    fn field_ref(&self, text: &str) -> Result<ValueTest, SearchError> {
        if self.transforms.iter().any(|t| {
            matches!(
                t,
                Transform::Windash | Transform::Base64(_) | Transform::Base64Offset(_)
            )
        }) {
            return Err(
                "`fieldref` takes only `contains`, `startswith`, `endswith` and `cased`"
                    .to_string(),
            );
        }
        Ok(ValueTest::FieldRef {
            other: FieldPath::new(text),
            how: self.ref_mode.unwrap_or(RefMode::Equals),
            cased: self.cased,
        })
    }
}

/// `re` (with its `i`, `m`, `s` flags): the value is a regular expression.
fn regex(flags: &str, text: &str) -> Result<ValueTest, SearchError> {
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!("(?{flags})")
    };
    Regex::new(&format!("{flags}{text}"))
        .map(ValueTest::Regex)
        .map_err(|err| {
            format!(
                "the regular expression `{text}` is not supported: {}",
                first_line(&err.to_string())
            )
        })
}

fn first_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

fn apply(form: SigmaString, transform: Transform) -> Result<Vec<SigmaString>, SearchError> {
    Ok(match transform {
        Transform::Contains => vec![form.wrap(true, true)],
        Transform::StartsWith => vec![form.wrap(false, true)],
        Transform::EndsWith => vec![form.wrap(true, false)],
        Transform::Windash => vec![form.windash()],
        Transform::Base64(encoding) => {
            let text = form
                .as_plain()
                .ok_or("`base64` takes a value without wildcards")?;
            vec![SigmaString::plain(
                base64::engine::general_purpose::STANDARD.encode(encode(&text, encoding)),
            )]
        }
        Transform::Base64Offset(encoding) => {
            let text = form
                .as_plain()
                .ok_or("`base64offset` takes a value without wildcards")?;
            base64_offsets(&encode(&text, encoding))
                .into_iter()
                .map(SigmaString::plain)
                .collect()
        }
    })
}

fn encode(text: &str, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Utf8 => text.as_bytes().to_vec(),
        Encoding::Utf16Le => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Encoding::Utf16Be => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        Encoding::Utf16Bom => [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
    }
}

/// The three forms `bytes` takes inside a longer Base64 text, by its offset modulo 3: the
/// characters that depend only on `bytes` (those touching unknown neighbours are cut).
pub fn base64_offsets(bytes: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END_CUT: [usize; 3] = [0, 3, 2];
    let engine = base64::engine::general_purpose::STANDARD;
    (0..3)
        .map(|shift| {
            let mut padded = vec![b' '; shift];
            padded.extend_from_slice(bytes);
            let encoded = engine.encode(&padded);
            let cut = END_CUT[(bytes.len() + shift) % 3];
            let end = encoded.len().saturating_sub(cut);
            encoded
                .get(START[shift]..end)
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

impl ValueTest {
    /// `found`: the values at the field (empty: the field does not exist).
    fn matches(&self, found: &[Cow<'_, Value>], event: &Value) -> bool {
        if let ValueTest::Null = self {
            return found.is_empty() || found.iter().any(|v| v.is_null());
        }
        let mut scalars = Vec::new();
        for value in found {
            leaves(value, &mut scalars);
        }
        match self {
            ValueTest::Null => unreachable!("handled above"),
            ValueTest::Strings(tests) => scalars.iter().any(|value| {
                scalar_text(value).is_some_and(|text| tests.iter().any(|t| t.matches(&text)))
            }),
            ValueTest::Regex(regex) => scalars
                .iter()
                .any(|value| scalar_text(value).is_some_and(|text| regex.is_match(&text))),
            ValueTest::Cidr(networks) => scalars.iter().any(|value| {
                value
                    .as_str()
                    .and_then(|text| text.trim().parse::<IpAddr>().ok())
                    .is_some_and(|ip| networks.iter().any(|n| n.contains(ip)))
            }),
            ValueTest::Number { op, value, part } => scalars.iter().any(|found| {
                let number = match part {
                    None => number_of(found),
                    Some(part) => found.as_str().and_then(|text| time_part(text, *part)),
                };
                number.is_some_and(|n| match op {
                    Compare::Eq => n == *value,
                    Compare::Lt => n < *value,
                    Compare::Lte => n <= *value,
                    Compare::Gt => n > *value,
                    Compare::Gte => n >= *value,
                })
            }),
            ValueTest::FieldRef { other, how, cased } => {
                let others: Vec<String> = other
                    .values(event)
                    .iter()
                    .filter_map(|v| scalar_text(v).map(|t| fold(&t, *cased)))
                    .collect();
                scalars.iter().any(|value| {
                    scalar_text(value).is_some_and(|text| {
                        let text = fold(&text, *cased);
                        others.iter().any(|other| match how {
                            RefMode::Equals => text == *other,
                            RefMode::Contains => text.contains(other.as_str()),
                            RefMode::StartsWith => text.starts_with(other.as_str()),
                            RefMode::EndsWith => text.ends_with(other.as_str()),
                        })
                    })
                })
            }
        }
    }
}

fn fold(text: &str, cased: bool) -> String {
    if cased {
        text.to_string()
    } else {
        text.to_lowercase()
    }
}

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A part of an RFC 3339 time (`eventTime`), in the time's own offset.
fn time_part(text: &str, part: TimePart) -> Option<f64> {
    let time = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    Some(f64::from(match part {
        TimePart::Minute => u32::from(time.minute()),
        TimePart::Hour => u32::from(time.hour()),
        TimePart::Day => u32::from(time.day()),
        TimePart::Week => u32::from(time.iso_week()),
        TimePart::Month => u32::from(u8::from(time.month())),
        TimePart::Year => return Some(f64::from(time.year())),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The first document of `yaml`: a search identifier's value.
    fn search(yaml: &str) -> Search {
        let docs = yaml_rust2::YamlLoader::load_from_str(yaml).unwrap();
        Search::compile(&docs[0]).unwrap()
    }

    fn refusal(yaml: &str) -> String {
        let docs = yaml_rust2::YamlLoader::load_from_str(yaml).unwrap();
        Search::compile(&docs[0]).unwrap_err()
    }

    #[test]
    fn maps_are_and_lists_are_or() {
        // The specification's "Maps" example: EventLog Security and (517 or 1102).
        let s = search("EventLog: Security\nEventID:\n    - 517\n    - 1102\n");
        assert!(s.matches(&json!({"EventLog": "security", "EventID": 1102})));
        assert!(
            s.matches(&json!({"EventLog": "Security", "EventID": "517"})),
            "values are strings"
        );
        assert!(!s.matches(&json!({"EventLog": "Security", "EventID": 4624})));
        assert!(!s.matches(&json!({"EventID": 517})));
        // "Lists" of maps: either one.
        let s = search(
            "- Image|endswith: '\\example.exe'\n- Description|contains: 'Test executable'\n",
        );
        assert!(s.matches(&json!({"Image": "C:\\x\\EXAMPLE.exe"})));
        assert!(s.matches(&json!({"Description": "a test executable here"})));
        assert!(!s.matches(&json!({"Image": "C:\\x\\other.exe"})));
    }

    #[test]
    fn string_modifiers() {
        let cases = [
            ("f|contains: evil", json!({"f": "so EVIL here"}), true),
            ("f|startswith: adm", json!({"f": "Administrator"}), true),
            ("f|startswith: adm", json!({"f": "sysadm"}), false),
            ("f|endswith: '.exe'", json!({"f": "a.EXE"}), true),
            ("f|contains|all: [a, b]", json!({"f": "xbxa"}), true),
            ("f|contains|all: [a, b]", json!({"f": "xa"}), false),
            ("f|cased: Root", json!({"f": "root"}), false),
            ("f|cased: Root", json!({"f": "Root"}), true),
            ("f|contains|cased: Key", json!({"f": "AccessKey"}), true),
            ("f|contains|cased: Key", json!({"f": "accesskey"}), false),
            ("f|neq: Root", json!({"f": "IAMUser"}), true),
            ("f|neq: Root", json!({"f": "root"}), false),
            ("f|neq: Root", json!({}), true),
            (
                "f|windash|contains: ' -enc '",
                json!({"f": "ps /enc x"}),
                true,
            ),
            ("f|re: '^Stop.*ing$'", json!({"f": "StopLogging"}), true),
            ("f|re: '^stop'", json!({"f": "StopLogging"}), false),
            ("f|re|i: '^stop'", json!({"f": "StopLogging"}), true),
            ("f|re: 'a.b'", json!({"f": "a\nb"}), false),
            ("f|re|s: 'a.b'", json!({"f": "a\nb"}), true),
            ("f|re|m: '^b$'", json!({"f": "a\nb"}), true),
            ("f|re: 'ogg'", json!({"f": "StopLogging"}), true),
            ("f: ''", json!({"f": ""}), true),
            ("f: ''", json!({"f": "x"}), false),
            ("f: null", json!({"f": null}), true),
            ("f: null", json!({}), true),
            ("f: null", json!({"f": "x"}), false),
            ("f|exists: true", json!({"f": null}), true),
            ("f|exists: true", json!({}), false),
            ("f|exists: false", json!({}), true),
            ("f: true", json!({"f": true}), true),
            ("f: 'false'", json!({"f": false}), true),
            ("f: 1.10", json!({"f": "1.10"}), true),
            ("f: value", json!({"f": ["a", "Value"]}), true),
            ("f: value", json!({"f": {"value": "value"}}), false),
        ];
        for (yaml, event, expected) in cases {
            assert_eq!(search(yaml).matches(&event), expected, "{yaml} on {event}");
        }
    }

    #[test]
    fn numeric_time_and_network_modifiers() {
        let cases = [
            ("n|gt: 10", json!({"n": 11}), true),
            ("n|gt: 10", json!({"n": 10}), false),
            ("n|gte: 10", json!({"n": "10"}), true),
            ("n|lt: 1.5", json!({"n": 1.25}), true),
            ("n|lte: -1", json!({"n": -1}), true),
            ("n|lt: 5", json!({"n": "many"}), false),
            ("t|hour: 3", json!({"t": "2026-12-02T03:59:00Z"}), true),
            ("t|hour|gte: 22", json!({"t": "2026-12-02T23:10:00Z"}), true),
            ("t|minute: 59", json!({"t": "2026-12-02T03:59:00Z"}), true),
            ("t|day: 2", json!({"t": "2026-12-02T03:59:00Z"}), true),
            ("t|week: 49", json!({"t": "2026-12-02T03:59:00Z"}), true),
            ("t|month: 12", json!({"t": "2026-12-02T03:59:00Z"}), true),
            ("t|year: 2025", json!({"t": "2026-12-02T03:59:00Z"}), false),
            ("ip|cidr: 10.0.0.0/8", json!({"ip": "10.20.30.40"}), true),
            ("ip|cidr: 10.0.0.0/8", json!({"ip": "11.0.0.1"}), false),
            (
                "ip|cidr: [192.168.0.0/16, 2001:db8::/32]",
                json!({"ip": "2001:db8::1"}),
                true,
            ),
            (
                "ip|cidr: 2001:db8::/32",
                json!({"ip": "2001:db9::1"}),
                false,
            ),
            ("ip|cidr: 0.0.0.0/0", json!({"ip": "AWS Internal"}), false),
            ("ip|cidr: 0.0.0.0/0", json!({"ip": "203.0.113.9"}), true),
            (
                "ip|cidr: 127.0.0.0/8",
                json!({"ip": "::ffff:127.0.0.1"}),
                true,
            ),
        ];
        for (yaml, event, expected) in cases {
            assert_eq!(search(yaml).matches(&event), expected, "{yaml} on {event}");
        }
    }

    #[test]
    fn base64_modifiers_follow_the_specification() {
        // `base64offset` of `/bin/bash`: the three forms Sigma documents.
        assert_eq!(
            base64_offsets(b"/bin/bash"),
            vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
        let s = search("c|base64offset|contains: /bin/bash");
        for encoded in [
            "ZWNobyAvYmluL2Jhc2g=",
            "L2Jpbi9iYXNoIC1j",
            "eCAvYmluL2Jhc2g=",
        ] {
            assert!(s.matches(&json!({ "c": encoded })), "{encoded}");
        }
        assert!(!s.matches(&json!({"c": "L2Jpbi9zaA=="})), "/bin/sh");
        let s = search("c|base64: 'cmd'");
        assert!(s.matches(&json!({"c": "Y21k"})));
        let s = search("c|wide|base64: 'cmd'");
        assert!(s.matches(&json!({"c": "YwBtAGQA"})), "UTF-16LE");
        let s = search("c|utf16be|base64: 'cmd'");
        assert!(s.matches(&json!({"c": "AGMAbQBk"})));
        let s = search("c|utf16|base64: 'cmd'");
        assert!(
            s.matches(&json!({"c": "//5jAG0AZAA="})),
            "with a byte order mark"
        );
    }

    #[test]
    fn fieldref_compares_two_fields() {
        let s = search("requestParameters.userName|fieldref: userIdentity.userName");
        let event = |target: &str| json!({"requestParameters": {"userName": target}, "userIdentity": {"userName": "alice"}});
        assert!(s.matches(&event("Alice")));
        assert!(!s.matches(&event("bob")));
        assert!(!s.matches(&json!({"requestParameters": {"userName": "bob"}})));
        let s = search("a|fieldref|startswith: b");
        assert!(s.matches(&json!({"a": "prefix-rest", "b": "prefix"})));
    }

    #[test]
    fn keywords_search_every_value() {
        let s = search("- 'event::clear'\n- 'event::drop'\n");
        assert!(s.matches(&json!({"msg": {"deep": ["mimikatz EVENT::Clear"]}})));
        assert!(!s.matches(&json!({"event::clear": "keys are not values"})));
        let s = search("'|all':\n    - 'OabVirtualDirectory'\n    - ' -ExternalUrl '\n");
        assert!(s.matches(&json!({"a": "Set-OabVirtualDirectory", "b": "x -ExternalUrl y"})));
        assert!(!s.matches(&json!({"a": "Set-OabVirtualDirectory"})));
        let s = search("'4624'");
        assert!(s.matches(&json!({"EventID": 4624})));
    }

    #[test]
    fn what_is_not_supported_is_refused_with_the_reason() {
        for (yaml, reason) in [
            ("f|expand: '%Servers%'", "`expand`"),
            ("f|nope: x", "`nope` is not supported"),
            ("f|re: '(?<=a)b'", "not supported"),
            ("f|cidr: 10.0.0.0/99", "not a CIDR"),
            ("f|gt: ten", "not a number"),
            ("f|exists: maybe", "true or false"),
            ("f|contains: null", "takes no modifiers"),
            ("f|base64: 'a*'", "without wildcards"),
            ("- a\n- {b: c}\n", "mixes keywords and maps"),
            ("'|contains':\n    - x\n", "only the `all` modifier"),
            ("f: []", "empty list"),
            ("f: {a: b}", "must be a string"),
        ] {
            let err = refusal(yaml);
            assert!(err.contains(reason), "{yaml}: {err}");
        }
    }
}
