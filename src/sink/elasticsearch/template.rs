//! Template: the index templates that make every event fit its daily index, generated for
//! the cluster that answered and installed at start.
//!
//! Input: the detected [`ClusterInfo`], the configuration and the format's
//! [`Mappings`] (each format declares its own, next to it). Output: the templates for
//! `<prefix>-*` and for the dead-letter indices, installed (or skipped), and the
//! [`FreeForm`] layout the documents must use to match them.
//!
//! Per flavor:
//! - Elasticsearch >= 7.8 and every OpenSearch use the composable `_index_template` API;
//!   Elasticsearch 7.0-7.7 the legacy `_template` API. Elasticsearch 6 and older is refused.
//! - The free-form objects are `flattened` on Elasticsearch >= 7.3 (not in the OSS build of
//!   7.x), `flat_object` on OpenSearch >= 2.7, and JSON strings mapped as `text` elsewhere
//!   or with `--free-form-fields as-string`.
//! - The rules every format's mappings follow are in [`crate::format::mapping`].

use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::Method;
use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::client::Cluster;
use super::product::{ClusterInfo, Distribution};
use crate::config::{FreeFormFields, IndexConfig, TemplateMode};
use crate::format::mapping::{keywords, object, text_with_keyword, FreeFormMapping, Mappings};
use crate::format::{Destination, FreeForm};

/// Bumped whenever the generated templates change; stored in the template's `version`.
pub const TEMPLATE_VERSION: u64 = 3;
/// Priorities of the composable templates; the dead-letter pattern overlaps the events'
/// pattern and must win.
const EVENTS_PRIORITY: u64 = 200;
const DEAD_LETTER_PRIORITY: u64 = 201;
/// Above the dead-letter template: a destination whose indices another destination's
/// pattern also covers (`<prefix>-alerts-*` under `<prefix>-*`) gets this, plus one per
/// further level (see [`priority`]).
const NESTED_PRIORITY: u64 = 202;
const _: () = assert!(DEAD_LETTER_PRIORITY < NESTED_PRIORITY);
/// A data stream's template: above Elasticsearch's stock `logs` template (100) and the one
/// Elastic's integration installs for its own data stream (200), whose default ingest
/// pipeline must not run on documents that are already mapped.
const STREAM_PRIORITY: u64 = 250;
/// The pipeline a write names to run none (not even the index's default one).
const NO_PIPELINE: &str = "_none";

/// The priority of `destination`'s template among `all`: the events' priority, or, when its
/// prefix lies under other destinations' patterns, above each of them.
fn priority(destination: &Destination, all: &[Destination]) -> u64 {
    let covering = all
        .iter()
        .filter(|other| {
            destination
                .prefix
                .strip_prefix(other.prefix.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        })
        .count() as u64;
    match covering {
        0 => EVENTS_PRIORITY,
        n => NESTED_PRIORITY + n - 1,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0} {1} is not supported: Elasticsearch 7.0 or newer, or OpenSearch 1.0 or newer, is required")]
    Unsupported(Distribution, String),
    #[error("cannot read --index-template-file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("--ingest-pipeline hands records to a data stream's ingest pipeline, and {0} {1} has no data streams: Elasticsearch 7.9 or newer is required")]
    NoDataStreams(Distribution, String),
    #[error("installing index template {name} failed: {reason} (grant the manage_index_templates privilege, or run with --index-template skip and manage templates yourself)")]
    Install { name: String, reason: String },
}

/// What the cluster can do, as far as the templates are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub distribution: Distribution,
    /// The `_index_template` API exists.
    pub composable: bool,
    /// The native type for free-form objects, if there is one.
    pub free_form_type: Option<&'static str>,
    /// Data streams are used: Elasticsearch 7.9 or newer. (OpenSearch has them too, but
    /// its events stay in daily indices: see [`prepare`].)
    pub data_streams: bool,
}

impl Capabilities {
    pub fn of(info: &ClusterInfo) -> Result<Self, TemplateError> {
        let (major, minor) = major_minor(&info.version);
        let unsupported = || TemplateError::Unsupported(info.distribution, info.version.clone());
        match info.distribution {
            Distribution::Elasticsearch => {
                if major < 7 {
                    return Err(unsupported());
                }
                let at_least = |m, n| (major, minor) >= (m, n);
                let oss = info.build_flavor.as_deref() == Some("oss");
                Ok(Capabilities {
                    distribution: info.distribution,
                    composable: at_least(7, 8),
                    free_form_type: (at_least(7, 3) && !oss).then_some("flattened"),
                    data_streams: at_least(7, 9) && !oss,
                })
            }
            Distribution::OpenSearch => {
                if major < 1 {
                    return Err(unsupported());
                }
                // `compatibility.override_main_response_version` makes OpenSearch 1.x and 2.x
                // answer 7.10.2: the real version is unknown, so no `flat_object`.
                let real = major < 7;
                if !real {
                    tracing::warn!(version = %info.version, "OpenSearch reports an Elasticsearch version (compatibility.override_main_response_version): free-form fields are stored as JSON strings, since flat_object may be missing");
                }
                Ok(Capabilities {
                    distribution: info.distribution,
                    composable: true,
                    free_form_type: (real && (major, minor) >= (2, 7)).then_some("flat_object"),
                    data_streams: false,
                })
            }
            // Index templates exist; `flat_object` is not documented for collections, so the
            // free-form fields are JSON strings.
            Distribution::Serverless => Ok(Capabilities {
                distribution: info.distribution,
                composable: true,
                free_form_type: None,
                data_streams: false,
            }),
        }
    }

    /// How documents write the free-form fields, given the user's choice.
    pub fn free_form(&self, choice: FreeFormFields) -> FreeForm {
        match (choice, self.free_form_type) {
            (FreeFormFields::Auto, Some(_)) => FreeForm::Objects,
            _ => FreeForm::Strings,
        }
    }

    /// How the template maps the free-form fields, given the user's choice.
    pub fn free_form_mapping(&self, choice: FreeFormFields) -> FreeFormMapping {
        match (self.free_form(choice), self.free_form_type) {
            (FreeForm::Objects, Some("flattened")) => FreeFormMapping::Flattened,
            (FreeForm::Objects, Some(_)) => FreeFormMapping::FlatObject,
            _ => FreeFormMapping::Text,
        }
    }
}

/// Leading `major.minor` of a version such as `8.15.0` or `3.0.0-alpha1`.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    });
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Index settings the user can set; `None` leaves the cluster's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSettings {
    pub shards: Option<u32>,
    pub replicas: Option<u32>,
    pub refresh_interval: Option<String>,
    /// ILM policy (Elasticsearch) or ISM policy (OpenSearch).
    pub lifecycle_policy: Option<String>,
}

impl IndexSettings {
    pub fn from_config(config: &IndexConfig) -> Self {
        IndexSettings {
            shards: Some(config.index_shards),
            replicas: config.index_replicas,
            refresh_interval: config.index_refresh_interval.clone(),
            lifecycle_policy: config.lifecycle_policy.clone(),
        }
    }

    fn to_json(&self, distribution: Distribution, total_fields: Option<u64>) -> Value {
        let mut settings = Map::new();
        if distribution == Distribution::Serverless {
            // Shards, replicas, refresh and lifecycle are the collection's to manage.
            if let Some(limit) = total_fields {
                settings.insert("index.mapping.total_fields.limit".into(), json!(limit));
            }
            return Value::Object(settings);
        }
        if let Some(shards) = self.shards {
            settings.insert("index.number_of_shards".into(), json!(shards));
        }
        if let Some(replicas) = self.replicas {
            settings.insert("index.number_of_replicas".into(), json!(replicas));
        }
        if let Some(interval) = &self.refresh_interval {
            settings.insert("index.refresh_interval".into(), json!(interval));
        }
        if let Some(policy) = &self.lifecycle_policy {
            let key = match distribution {
                Distribution::Elasticsearch => "index.lifecycle.name",
                Distribution::OpenSearch | Distribution::Serverless => {
                    "index.plugins.index_state_management.policy_id"
                }
            };
            settings.insert(key.into(), json!(policy));
        }
        if let Some(limit) = total_fields {
            settings.insert("index.mapping.total_fields.limit".into(), json!(limit));
        }
        Value::Object(settings)
    }
}

/// The mappings of the dead-letter indices: see [`super::dead_letter`].
pub fn dead_letter_mappings() -> Value {
    let mut error = keywords(&["type"]);
    error.insert("reason".into(), text_with_keyword());
    error.insert("status".into(), json!({"type": "short"}));
    json!({
        "dynamic": false,
        "properties": {
            "@timestamp": {"type": "date"},
            "dead_lettered_at": {"type": "date"},
            "record": {"type": "text"},
            "error": object(error),
            "target": object(keywords(&["index", "id"])),
            "s3": {"properties": {
                "bucket": {"type": "keyword"},
                "key": {"type": "keyword"},
                "line": {"type": "long"},
            }},
            "sqs": object(keywords(&["message_id"])),
            "webhook": {"properties": {
                "remote": {"type": "keyword"},
                "received_at": {"type": "date"},
                "entry": {"type": "integer"},
            }},
            "kafka": {"properties": {
                "topic": {"type": "keyword"},
                "partition": {"type": "integer"},
                "offset": {"type": "long"},
            }},
        }
    })
}

/// A template body for the cluster's API.
fn template_body(
    caps: &Capabilities,
    pattern: String,
    priority: u64,
    settings: Value,
    mappings: Value,
) -> Value {
    if caps.composable {
        json!({
            "index_patterns": [pattern],
            "priority": priority,
            "version": TEMPLATE_VERSION,
            "_meta": {"managed_by": "cloudtrail-ingest"},
            "template": {"settings": settings, "mappings": mappings},
        })
    } else {
        json!({
            "index_patterns": [pattern],
            "order": priority,
            "version": TEMPLATE_VERSION,
            "settings": settings,
            "mappings": mappings,
        })
    }
}

/// The template for `<prefix>-*`, with the format's mappings.
pub fn event_template(
    caps: &Capabilities,
    prefix: &str,
    priority: u64,
    free_form: FreeFormMapping,
    settings: &IndexSettings,
    mappings: Mappings,
) -> Value {
    template_body(
        caps,
        format!("{prefix}-*"),
        priority,
        settings.to_json(caps.distribution, Some(2000)),
        mappings(free_form),
    )
}

/// The template of the data stream `name`, with its destination's mappings.
pub fn stream_template(
    caps: &Capabilities,
    name: &str,
    free_form: FreeFormMapping,
    settings: &IndexSettings,
    mappings: Mappings,
) -> Value {
    let mut body = template_body(
        caps,
        name.to_string(),
        STREAM_PRIORITY,
        settings.to_json(caps.distribution, Some(2000)),
        mappings(free_form),
    );
    body["data_stream"] = json!({});
    body
}

/// The template for `<dead-letter prefix>-*`.
pub fn dead_letter_template(caps: &Capabilities, prefix: &str, settings: &IndexSettings) -> Value {
    template_body(
        caps,
        format!("{prefix}-*"),
        DEAD_LETTER_PRIORITY,
        settings.to_json(caps.distribution, None),
        dead_letter_mappings(),
    )
}

/// Decides the document layout for this cluster and installs the templates the
/// configuration asks for: one per destination, with its mappings (`--index-template-file`
/// replaces the first one's), and the dead-letter one. Returns the layout documents must use.
///
/// A destination with a data stream keeps it on Elasticsearch 7.9 and newer, with this
/// tool's template for it unless an ingest pipeline maps its events (then the template is the
/// integration's, whose mappings fit that pipeline's documents); elsewhere it goes to its
/// daily indices, or, when a pipeline was to map its events, the start fails: on OpenSearch, whose data streams are optional, the daily indices
/// keep `--index-prefix`, the retention users already run on them, and one `_id` per event
/// however late it comes back (a data stream rolls over, and a redelivered event would land in
/// a new backing index beside its first copy).
pub async fn prepare(
    client: &Cluster,
    config: &IndexConfig,
    info: &ClusterInfo,
    destinations: &mut [Destination],
) -> Result<FreeForm, TemplateError> {
    let caps = Capabilities::of(info)?;
    let free_form = caps.free_form(config.free_form_fields);
    info!(
        free_form = ?free_form,
        native_type = caps.free_form_type.unwrap_or("none"),
        composable = caps.composable,
        data_streams = caps.data_streams,
        "document layout chosen for this cluster"
    );
    if !caps.data_streams {
        for destination in destinations.iter_mut() {
            let Some(stream) = destination.stream.take() else {
                continue;
            };
            if stream.pipeline.as_deref() != Some(NO_PIPELINE) {
                return Err(TemplateError::NoDataStreams(
                    info.distribution,
                    info.version.clone(),
                ));
            }
            info!(stream = stream.name, prefix = %destination.prefix, "no data streams on this cluster: daily indices instead");
        }
    }
    if config.index_template == TemplateMode::Skip {
        info!("--index-template skip: index templates are left as they are");
        return Ok(free_form);
    }
    let settings = IndexSettings::from_config(config);
    if caps.distribution == Distribution::Serverless
        && (settings.replicas.is_some()
            || settings.refresh_interval.is_some()
            || settings.lifecycle_policy.is_some())
    {
        warn!("OpenSearch Serverless manages replicas, refresh and lifecycle itself (data lifecycle policies): --index-replicas, --index-refresh-interval and --lifecycle-policy are not put in its templates");
    }
    let mapping = caps.free_form_mapping(config.free_form_fields);
    for (n, destination) in destinations.iter().enumerate() {
        let (name, body) = match (&config.index_template_file, n, &destination.stream) {
            (_, _, Some(stream)) if stream.pipeline.as_deref() != Some(NO_PIPELINE) => {
                info!(stream = stream.name, "an ingest pipeline maps this data stream's events: its template is the integration's");
                continue;
            }
            (_, _, Some(stream)) => (
                stream.name.clone(),
                stream_template(
                    &caps,
                    &stream.name,
                    mapping,
                    &settings,
                    destination.mappings,
                ),
            ),
            (Some(path), 0, None) => (destination.prefix.clone(), read_template_file(path)?),
            _ => (
                destination.prefix.clone(),
                event_template(
                    &caps,
                    &destination.prefix,
                    priority(destination, destinations),
                    mapping,
                    &settings,
                    destination.mappings,
                ),
            ),
        };
        install(client, &caps, &format!("cloudtrail-ingest-{name}"), &body).await?;
    }
    if let Some(prefix) = config.dead_letter_prefix() {
        let name = format!("cloudtrail-ingest-{prefix}");
        let body = dead_letter_template(&caps, &prefix, &settings);
        install(client, &caps, &name, &body).await?;
    }
    Ok(free_form)
}

fn read_template_file(path: &std::path::Path) -> Result<Value, TemplateError> {
    let error = |reason: String| TemplateError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let body: Value = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
    if !body.is_object() {
        return Err(error("not a JSON object".into()));
    }
    Ok(body)
}

/// `PUT _index_template/<name>` (or `_template` on clusters without it). Idempotent.
async fn install(
    client: &Cluster,
    caps: &Capabilities,
    name: &str,
    body: &Value,
) -> Result<(), TemplateError> {
    let path = if caps.composable {
        format!("/_index_template/{name}")
    } else {
        format!("/_template/{name}")
    };
    let error = |reason: String| TemplateError::Install {
        name: name.to_string(),
        reason,
    };
    let response = client
        .send(
            Method::Put,
            &path,
            HeaderMap::new(),
            Some(bytes::Bytes::from(body.to_string())),
        )
        .await
        .map_err(|e| error(e.to_string()))?;
    let status = response.status_code().as_u16();
    if !(200..300).contains(&status) {
        let text = response.text().await.unwrap_or_default();
        return Err(error(format!(
            "HTTP {status}: {}",
            text.chars().take(500).collect::<String>()
        )));
    }
    info!(name, path, "index template installed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_under_another_pattern_gets_a_higher_priority() {
        let at = |prefix: &str| Destination {
            dataset: crate::pipeline::Dataset::new("d", None, None),
            prefix: prefix.into(),
            mappings: crate::format::cloudtrail::mapping::mappings,
            stream: None,
        };
        let all = [
            at("cloudtrail"),
            at("cloudtrail-alerts"),
            at("cloudtrailer"),
            at("ndjson"),
        ];
        let priorities: Vec<u64> = all.iter().map(|d| priority(d, &all)).collect();
        // `cloudtrail-*` covers `cloudtrail-alerts-*`, not `cloudtrailer-*`.
        assert_eq!(
            priorities,
            [EVENTS_PRIORITY, 202, EVENTS_PRIORITY, EVENTS_PRIORITY]
        );
    }

    /// `GET /` as each flavor answers it (fields as in the projects' documentation and test
    /// suites; names and hashes shortened) -> (composable templates, free-form type).
    #[test]
    fn every_flavor_gets_the_templates_it_accepts() {
        /// Composable templates, and the free-form type; `None`: refused.
        type Expected = Option<(bool, Option<&'static str>)>;
        let table: [(&str, &str, Expected); 12] = [
            (
                "Elasticsearch 6.8",
                r#"{"name":"n","cluster_name":"c","version":{"number":"6.8.23","build_flavor":"default","lucene_version":"7.7.3"},"tagline":"You Know, for Search"}"#,
                None,
            ),
            (
                "Elasticsearch 7.2 (before flattened)",
                r#"{"version":{"number":"7.2.1","build_flavor":"default","build_type":"docker"},"tagline":"You Know, for Search"}"#,
                Some((false, None)),
            ),
            (
                "Elasticsearch 7.7 (legacy _template)",
                r#"{"version":{"number":"7.7.1","build_flavor":"default"},"tagline":"You Know, for Search"}"#,
                Some((false, Some("flattened"))),
            ),
            (
                "Elasticsearch 7.10 OSS (also AWS Elasticsearch 7.10 domains)",
                r#"{"version":{"number":"7.10.2","build_flavor":"oss","build_type":"tar"},"tagline":"You Know, for Search"}"#,
                Some((true, None)),
            ),
            (
                "Elasticsearch 7.17",
                r#"{"version":{"number":"7.17.25","build_flavor":"default","minimum_wire_compatibility_version":"6.8.0"},"tagline":"You Know, for Search"}"#,
                Some((true, Some("flattened"))),
            ),
            (
                "Elasticsearch 8.x",
                r#"{"name":"es01","cluster_name":"docker-cluster","version":{"number":"8.15.3","build_flavor":"default","build_type":"docker","lucene_version":"9.11.1"},"tagline":"You Know, for Search"}"#,
                Some((true, Some("flattened"))),
            ),
            (
                "Elasticsearch 9.x",
                r#"{"version":{"number":"9.1.5","build_flavor":"default","lucene_version":"10.2.2"},"tagline":"You Know, for Search"}"#,
                Some((true, Some("flattened"))),
            ),
            (
                "OpenSearch 1.3",
                r#"{"version":{"distribution":"opensearch","number":"1.3.20","build_type":"tar","lucene_version":"8.10.1","minimum_wire_compatibility_version":"6.8.0"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#,
                Some((true, None)),
            ),
            (
                "OpenSearch 2.5 (before flat_object)",
                r#"{"version":{"distribution":"opensearch","number":"2.5.0"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#,
                Some((true, None)),
            ),
            (
                "Amazon OpenSearch Service 2.11",
                r#"{"name":"f1b2","cluster_name":"123456789012:trail-logs","cluster_uuid":"x","version":{"distribution":"opensearch","number":"2.11.0","build_type":"tar","build_hash":"unknown","build_snapshot":false,"lucene_version":"9.7.0","minimum_wire_compatibility_version":"7.10.0","minimum_index_compatibility_version":"7.0.0"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#,
                Some((true, Some("flat_object"))),
            ),
            (
                "OpenSearch 3.x",
                r#"{"version":{"distribution":"opensearch","number":"3.3.0","lucene_version":"10.3.1"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#,
                Some((true, Some("flat_object"))),
            ),
            (
                "OpenSearch with override_main_response_version",
                r#"{"version":{"distribution":"opensearch","number":"7.10.2","build_type":"tar"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#,
                Some((true, None)),
            ),
        ];
        let serverless = Capabilities::of(&ClusterInfo {
            distribution: Distribution::Serverless,
            version: "search collection".into(),
            build_flavor: None,
        })
        .unwrap();
        assert!(serverless.composable && serverless.free_form_type.is_none());
        let settings = IndexSettings {
            shards: Some(3),
            replicas: Some(1),
            refresh_interval: Some("30s".into()),
            lifecycle_policy: Some("hot-warm".into()),
        };
        assert_eq!(
            settings.to_json(Distribution::Serverless, Some(2000)),
            json!({"index.mapping.total_fields.limit": 2000}),
            "what the collection manages is left out"
        );
        for (flavor, root, expected) in table {
            let info = super::super::product::parse_root(root)
                .unwrap_or_else(|| panic!("{flavor}: GET / parses"));
            let caps = Capabilities::of(&info);
            match expected {
                None => assert!(caps.is_err(), "{flavor} is refused"),
                Some((composable, free_form)) => {
                    let caps = caps.unwrap_or_else(|e| panic!("{flavor}: {e}"));
                    assert_eq!(caps.composable, composable, "{flavor}");
                    assert_eq!(caps.free_form_type, free_form, "{flavor}");
                }
            }
        }
    }

    fn info(distribution: Distribution, version: &str, flavor: Option<&str>) -> ClusterInfo {
        ClusterInfo {
            distribution,
            version: version.into(),
            build_flavor: flavor.map(Into::into),
        }
    }

    fn caps(distribution: Distribution, version: &str) -> Capabilities {
        Capabilities::of(&info(distribution, version, Some("default"))).unwrap()
    }

    #[test]
    fn capabilities_follow_version_boundaries() {
        use Distribution::*;
        let table = [
            (Elasticsearch, "7.0.0", false, None),
            (Elasticsearch, "7.2.1", false, None),
            (Elasticsearch, "7.3.0", false, Some("flattened")),
            (Elasticsearch, "7.7.1", false, Some("flattened")),
            (Elasticsearch, "7.8.0", true, Some("flattened")),
            (Elasticsearch, "7.17.25", true, Some("flattened")),
            (Elasticsearch, "8.15.0", true, Some("flattened")),
            (Elasticsearch, "9.1.0", true, Some("flattened")),
            (OpenSearch, "1.3.19", true, None),
            (OpenSearch, "2.6.0", true, None),
            (OpenSearch, "2.7.0", true, Some("flat_object")),
            (OpenSearch, "2.19.1", true, Some("flat_object")),
            (OpenSearch, "3.0.0-alpha1", true, Some("flat_object")),
        ];
        for (distribution, version, composable, native) in table {
            let c = caps(distribution, version);
            assert_eq!(c.composable, composable, "{distribution} {version}");
            assert_eq!(c.free_form_type, native, "{distribution} {version}");
        }
        let oss = Capabilities::of(&info(Elasticsearch, "7.10.2", Some("oss"))).unwrap();
        assert_eq!(oss.free_form_type, None, "the OSS build has no flattened");
        for (d, v) in [(Elasticsearch, "6.8.23"), (OpenSearch, "0.9")] {
            assert!(matches!(
                Capabilities::of(&info(d, v, None)),
                Err(TemplateError::Unsupported(..))
            ));
        }
    }

    #[test]
    fn data_streams_from_elasticsearch_7_9_only() {
        use Distribution::*;
        for (distribution, version, streams) in [
            (Elasticsearch, "7.8.1", false),
            (Elasticsearch, "7.9.0", true),
            (Elasticsearch, "8.15.0", true),
            (OpenSearch, "2.19.1", false),
        ] {
            assert_eq!(
                caps(distribution, version).data_streams,
                streams,
                "{distribution} {version}"
            );
        }
        let oss = Capabilities::of(&info(Elasticsearch, "7.10.2", Some("oss"))).unwrap();
        assert!(!oss.data_streams);
    }

    #[test]
    fn a_stream_template_names_its_stream_and_wins_over_the_stock_ones() {
        let body = stream_template(
            &caps(Distribution::Elasticsearch, "8.15.0"),
            "logs-aws.cloudtrail-default",
            FreeFormMapping::Flattened,
            &IndexSettings {
                lifecycle_policy: Some("logs".into()),
                ..IndexSettings::default()
            },
            crate::format::cloudtrail::ecs::mapping::mappings,
        );
        assert_eq!(
            body["index_patterns"],
            json!(["logs-aws.cloudtrail-default"])
        );
        assert_eq!(body["data_stream"], json!({}));
        assert!(body["priority"].as_u64().unwrap() > 200);
        assert_eq!(body["template"]["settings"]["index.lifecycle.name"], "logs");
        assert_eq!(
            body["template"]["mappings"]["properties"]["source"]["properties"]["ip"]["type"],
            "ip"
        );
    }

    #[test]
    fn free_form_layout_follows_the_cluster_and_the_user() {
        let native = caps(Distribution::OpenSearch, "2.11.0");
        let old = caps(Distribution::OpenSearch, "2.5.0");
        assert_eq!(native.free_form(FreeFormFields::Auto), FreeForm::Objects);
        assert_eq!(
            native.free_form(FreeFormFields::AsString),
            FreeForm::Strings
        );
        assert_eq!(old.free_form(FreeFormFields::Auto), FreeForm::Strings);
    }

    #[test]
    fn free_form_mapping_per_flavor() {
        use FreeFormFields::*;
        let field = |c: &Capabilities, choice| c.free_form_mapping(choice).to_json();
        let es = caps(Distribution::Elasticsearch, "8.15.0");
        assert_eq!(field(&es, Auto)["type"], "flattened");
        assert_eq!(field(&es, Auto)["ignore_above"], 8191);
        assert_eq!(field(&es, AsString), json!({"type": "text"}));
        let os = caps(Distribution::OpenSearch, "2.11.0");
        assert_eq!(field(&os, Auto), json!({"type": "flat_object"}));
        assert_eq!(field(&os, AsString), json!({"type": "text"}));
        let old = caps(Distribution::Elasticsearch, "7.2.0");
        assert_eq!(field(&old, Auto), json!({"type": "text"}));
    }

    #[test]
    fn composable_and_legacy_bodies() {
        let settings = IndexSettings {
            shards: Some(1),
            replicas: Some(0),
            refresh_interval: Some("30s".into()),
            lifecycle_policy: Some("cloudtrail-90d".into()),
        };
        let new = event_template(
            &caps(Distribution::Elasticsearch, "8.15.0"),
            "ct",
            EVENTS_PRIORITY,
            FreeFormMapping::Flattened,
            &settings,
            crate::format::cloudtrail::mapping::mappings,
        );
        assert_eq!(new["index_patterns"], json!(["ct-*"]));
        assert_eq!(new["priority"], 200);
        let s = &new["template"]["settings"];
        assert_eq!(s["index.number_of_shards"], 1);
        assert_eq!(s["index.number_of_replicas"], 0);
        assert_eq!(s["index.refresh_interval"], "30s");
        assert_eq!(s["index.lifecycle.name"], "cloudtrail-90d");
        assert!(new["template"]["mappings"]["properties"].is_object());

        let legacy = event_template(
            &caps(Distribution::Elasticsearch, "7.5.0"),
            "ct",
            EVENTS_PRIORITY,
            FreeFormMapping::Text,
            &settings,
            crate::format::cloudtrail::mapping::mappings,
        );
        assert_eq!(legacy["order"], 200);
        assert!(legacy.get("template").is_none());
        assert!(legacy["mappings"]["properties"]["eventName"].is_object());

        let os = event_template(
            &caps(Distribution::OpenSearch, "2.11.0"),
            "ct",
            EVENTS_PRIORITY,
            FreeFormMapping::Flattened,
            &settings,
            crate::format::cloudtrail::mapping::mappings,
        );
        assert_eq!(
            os["template"]["settings"]["index.plugins.index_state_management.policy_id"],
            "cloudtrail-90d"
        );
        assert!(os["template"]["settings"]
            .get("index.lifecycle.name")
            .is_none());

        let unset = event_template(
            &caps(Distribution::OpenSearch, "2.11.0"),
            "ct",
            EVENTS_PRIORITY,
            FreeFormMapping::FlatObject,
            &IndexSettings::default(),
            crate::format::cloudtrail::mapping::mappings,
        );
        assert_eq!(
            unset["template"]["settings"],
            json!({"index.mapping.total_fields.limit": 2000})
        );

        let dead = dead_letter_template(
            &caps(Distribution::OpenSearch, "2.11.0"),
            "ct-dead-letter",
            &settings,
        );
        assert_eq!(dead["index_patterns"], json!(["ct-dead-letter-*"]));
        assert_eq!(
            dead["priority"], 201,
            "must outrank the events' ct-* pattern"
        );
        assert_eq!(
            dead["template"]["mappings"]["properties"]["record"]["type"],
            "text"
        );
    }

    #[test]
    fn versions_parse_leniently() {
        assert_eq!(major_minor("8.15.0"), (8, 15));
        assert_eq!(major_minor("3.0.0-alpha1"), (3, 0));
        assert_eq!(major_minor("7"), (7, 0));
        assert_eq!(major_minor("garbage"), (0, 0));
    }
}
