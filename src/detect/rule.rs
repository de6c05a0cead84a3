//! Rule: one Sigma detection rule (a YAML document) -> its metadata and compiled detection.
//!
//! What is read: `title` (required), `id` (else `name`, else a hash of the document: an
//! alert's `_id` needs a stable rule id), `status`, `description`, `level`, `tags`,
//! `references`, `fields`, `logsource` (`product`, `service`, `category`) and `detection`
//! (the search identifiers and `condition`). Anything else is kept out of the way, as the
//! specification allows custom fields.
//!
//! Refused, with the reason: correlation rules (`correlation`), filters (`filter` with
//! `rules`), rule collections (`action`), a rule whose status is `unsupported`, and any
//! detection or condition [`super::search`] and [`super::condition`] cannot compile.

use serde_json::Value;
use sha2::{Digest, Sha256};
use yaml_rust2::Yaml;

use super::condition::Condition;
use super::field::FieldPath;
use super::search::Search;

pub use crate::config::Level;

/// `logsource`, lowercased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub level: Level,
    /// `level` was missing: [`Level::Medium`] is assumed.
    pub level_assumed: bool,
    pub status: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    /// `fields`: what an analyst wants to see of a matched event.
    pub fields: Vec<FieldPath>,
    pub logsource: LogSource,
    /// The search identifiers, in the order written, and their compiled tests.
    pub names: Vec<String>,
    pub searches: Vec<Search>,
    pub condition: Condition,
}

impl Rule {
    /// Compiles one YAML document; `text` is the document's source, for a rule without `id`.
    pub fn compile(document: &Yaml, text: &str) -> Result<Rule, String> {
        let Yaml::Hash(map) = document else {
            return Err("a rule is a YAML map".to_string());
        };
        let get = |key: &str| map.get(&Yaml::String(key.to_string()));
        if get("correlation").is_some() {
            return Err("correlation rules are not supported".to_string());
        }
        if get("action").is_some() {
            return Err("rule collections (`action`) are not supported".to_string());
        }
        if get("filter").is_some() && get("rules").is_some() {
            return Err("Sigma filters are not supported".to_string());
        }
        let title = string(get("title")).ok_or("no `title`")?;
        let status = string(get("status"));
        if status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("unsupported"))
        {
            return Err("its status is `unsupported`".to_string());
        }
        let id = string(get("id"))
            .or_else(|| string(get("name")))
            .unwrap_or_else(|| {
                let digest = Sha256::digest(text.as_bytes());
                digest[..8].iter().map(|b| format!("{b:02x}")).collect()
            });
        let (level, level_assumed) = match string(get("level")) {
            None => (Level::Medium, true),
            Some(text) => (
                Level::parse(&text)
                    .ok_or_else(|| format!("`level: {text}` is not a Sigma level"))?,
                false,
            ),
        };
        let logsource = log_source(get("logsource"))?;
        let Some(Yaml::Hash(detection)) = get("detection") else {
            return Err("no `detection` map".to_string());
        };
        let (names, searches, condition) = compile_detection(detection)?;
        Ok(Rule {
            id,
            title,
            level,
            level_assumed,
            status,
            description: string(get("description")),
            tags: strings(get("tags")),
            references: strings(get("references")),
            fields: strings(get("fields"))
                .iter()
                .map(|f| FieldPath::new(f))
                .collect(),
            logsource,
            names,
            searches,
            condition,
        })
    }

    /// Whether the rule matches `event`; each search is evaluated at most once.
    pub fn matches(&self, event: &Value) -> bool {
        let mut known: Vec<Option<bool>> = vec![None; self.searches.len()];
        self.condition
            .eval(&mut |n| *known[n].get_or_insert_with(|| self.searches[n].matches(event)))
    }

    /// The fields an alert shows: the rule's `fields`, then those its detection tests.
    pub fn key_fields(&self) -> Vec<&FieldPath> {
        let mut out: Vec<&FieldPath> = Vec::new();
        for field in self
            .fields
            .iter()
            .chain(self.searches.iter().flat_map(Search::fields))
        {
            if !out.contains(&field) {
                out.push(field);
            }
        }
        out
    }
}

fn string(value: Option<&Yaml>) -> Option<String> {
    match value? {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn strings(value: Option<&Yaml>) -> Vec<String> {
    match value {
        Some(Yaml::Array(items)) => items.iter().filter_map(|i| string(Some(i))).collect(),
        Some(single) => string(Some(single)).into_iter().collect(),
        None => Vec::new(),
    }
}

/// `logsource`: which events a rule is for (none: every event).
fn log_source(value: Option<&Yaml>) -> Result<LogSource, String> {
    Ok(match value {
        Some(Yaml::Hash(source)) => {
            let part = |key: &str| {
                string(source.get(&Yaml::String(key.to_string()))).map(|s| s.to_lowercase())
            };
            LogSource {
                product: part("product"),
                service: part("service"),
                category: part("category"),
            }
        }
        None => LogSource::default(),
        Some(_) => return Err("`logsource` is not a map".to_string()),
    })
}

/// `detection`: the named searches, in order, and the condition over their names.
fn compile_detection(
    detection: &yaml_rust2::yaml::Hash,
) -> Result<(Vec<String>, Vec<Search>, Condition), String> {
    let mut names = Vec::new();
    let mut searches = Vec::new();
    let mut condition = None;
    for (key, value) in detection {
        let Yaml::String(key) = key else {
            return Err(format!("a search identifier must be a string, not {key:?}"));
        };
        if key == "condition" {
            condition = Some(value);
            continue;
        }
        if key == "timeframe" {
            return Err("`timeframe` belongs to correlation rules; not supported".to_string());
        }
        let search = Search::compile(value).map_err(|err| format!("search `{key}`: {err}"))?;
        names.push(key.clone());
        searches.push(search);
    }
    let condition = match condition {
        None => return Err("no `condition`".to_string()),
        Some(Yaml::String(text)) => Condition::parse(text, &names)?,
        Some(Yaml::Array(items)) if !items.is_empty() => {
            let parsed = items
                .iter()
                .map(|item| match item {
                    Yaml::String(text) => Condition::parse(text, &names),
                    _ => Err("a condition must be a string".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Condition::Or(parsed)
        }
        Some(_) => return Err("a condition must be a string or a list of strings".to_string()),
    };
    Ok((names, searches, condition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(text: &str) -> Result<Rule, String> {
        let docs = yaml_rust2::YamlLoader::load_from_str(text).unwrap();
        Rule::compile(&docs[0], text)
    }

    const STOP_LOGGING: &str = "title: CloudTrail stopped
id: 0f4b2c8e-0000-4000-8000-000000000001
status: test
level: high
tags: [attack.defense-evasion, attack.t1562.008]
fields: [userIdentity.arn]
logsource:
    product: AWS
    service: cloudtrail
detection:
    selection:
        eventSource: cloudtrail.amazonaws.com
        eventName:
            - StopLogging
            - DeleteTrail
    filter_console:
        userIdentity.invokedBy: cloudformation.amazonaws.com
    condition: selection and not 1 of filter_*
";

    #[test]
    fn a_rule_reads_its_metadata_and_matches() {
        let rule = compile(STOP_LOGGING).unwrap();
        assert_eq!(rule.id, "0f4b2c8e-0000-4000-8000-000000000001");
        assert_eq!((rule.level, rule.level_assumed), (Level::High, false));
        assert_eq!(rule.logsource.product.as_deref(), Some("aws"), "lowercased");
        assert_eq!(rule.tags.len(), 2);
        let names: Vec<&str> = rule.key_fields().iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "userIdentity.arn",
                "eventSource",
                "eventName",
                "userIdentity.invokedBy"
            ]
        );
        let event = |name: &str, by: Option<&str>| json!({"eventSource": "cloudtrail.amazonaws.com", "eventName": name, "userIdentity": {"invokedBy": by}});
        assert!(rule.matches(&event("StopLogging", None)));
        assert!(rule.matches(&event("deletetrail", Some("console"))));
        assert!(!rule.matches(&event("StartLogging", None)));
        assert!(!rule.matches(&event("StopLogging", Some("cloudformation.amazonaws.com"))));
    }

    #[test]
    fn a_rule_without_id_or_level_gets_stable_ones() {
        let text = "title: t\ndetection:\n    s: {a: b}\n    condition: [s, not s]\n";
        let (a, b) = (compile(text).unwrap(), compile(text).unwrap());
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), 16);
        assert_eq!((a.level, a.level_assumed), (Level::Medium, true));
        assert!(a.matches(&json!({})), "a list of conditions is any of them");
    }

    #[test]
    fn what_cannot_be_used_is_refused_with_the_reason() {
        for (text, reason) in [
            ("detection: {s: {a: b}, condition: s}", "no `title`"),
            ("title: t\ndetection: {s: {a: b}}", "no `condition`"),
            ("title: t", "no `detection`"),
            (
                "title: t\nlevel: severe\ndetection: {s: {a: b}, condition: s}",
                "not a Sigma level",
            ),
            (
                "title: t\nstatus: unsupported\ndetection: {s: {a: b}, condition: s}",
                "unsupported",
            ),
            (
                "title: t\ncorrelation: {type: event_count}",
                "correlation rules",
            ),
            ("title: t\naction: global", "collections"),
            (
                "title: t\ndetection: {s: {a|foo: b}, condition: s}",
                "search `s`: `a|foo`",
            ),
            (
                "title: t\ndetection: {s: {a: b}, timeframe: 5m, condition: s}",
                "timeframe",
            ),
            (
                "title: t\ndetection: {s: {a: b}, condition: s | count() > 3}",
                "aggregates",
            ),
            ("- not a map", "a YAML map"),
        ] {
            let err = compile(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
