//! Document flags, shared by every source: the schema documents are stored in, the data
//! stream they go to with the Elastic Common Schema, and the GeoIP databases that enrich
//! their source addresses.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct SchemaConfig {
    /// The fields documents are stored with: `raw` keeps each record's own field names
    /// (what Sigma rules and OpenSearch Security Analytics read); `ecs` writes CloudTrail
    /// records as the Elastic Common Schema documents of Elastic's AWS integration (what
    /// Elastic Security's rules, dashboards and views read), and Confluent Cloud and Konnect
    /// records as an ECS core with the record under `confluent.audit` / `kong.konnect`.
    /// Detection rules always see the record as written.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_SCHEMA",
        value_enum,
        default_value_t = Schema::Raw,
        value_name = "SCHEMA"
    )]
    pub schema: Schema,

    /// With `--schema ecs` on Elasticsearch 7.9 or later, CloudTrail events go to the data
    /// stream `logs-aws.cloudtrail-<namespace>`.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_DATA_STREAM_NAMESPACE",
        default_value = "default",
        value_name = "NAMESPACE"
    )]
    pub data_stream_namespace: String,

    /// With `--schema ecs` on Elasticsearch: hand each CloudTrail record to this ingest
    /// pipeline as Elastic Agent does (the record as text in `message`) and let it do the
    /// mapping, e.g. Elastic's AWS integration's `logs-aws.cloudtrail-<version>`; `default`
    /// runs the data stream's own default pipeline. The data stream's template is then left
    /// to the integration. Without it, records are mapped here and no pipeline runs.
    #[arg(long, env = "CLOUDTRAIL_INGEST_INGEST_PIPELINE", value_name = "NAME")]
    pub ingest_pipeline: Option<String>,

    /// A MaxMind database (GeoIP2/GeoLite2 City or Country, and ASN) whose answers for each
    /// event's source address are added as `source.geo` and `source.as`. Repeat for more;
    /// the environment variable takes a comma-separated list. Each file's own metadata says
    /// which kind it is; a file replaced on disk (as `geoipupdate` does) is read again
    /// within a minute.
    #[arg(
        long = "geoip-database",
        env = "CLOUDTRAIL_INGEST_GEOIP_DATABASE",
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub geoip_databases: Vec<PathBuf>,
}

/// See `--schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schema {
    Raw,
    Ecs,
}

impl SchemaConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        let namespace = &self.data_stream_namespace;
        // Elasticsearch's rules for the namespace part of a data stream's name.
        let invalid = namespace.is_empty()
            || namespace.len() > 100
            || namespace
                .chars()
                .any(|c| c.is_ascii_uppercase() || "\\/*?\"<>| ,#:-".contains(c));
        if invalid {
            problems.push(format!(
                "--data-stream-namespace {namespace:?} must be 1 to 100 lower-case characters, \
                 without \\ / * ? \" < > | , # : - or spaces"
            ));
        }
        if self.ingest_pipeline.is_some() && self.schema != Schema::Ecs {
            problems.push("--ingest-pipeline needs --schema ecs".into());
        }
        if self.ingest_pipeline.as_deref() == Some("") {
            problems.push("--ingest-pipeline needs a pipeline's name, or default".into());
        }
        for path in &self.geoip_databases {
            if !path.is_file() {
                problems.push(format!("--geoip-database {}: no such file", path.display()));
            }
        }
    }

    /// For the start-up summary.
    pub fn summary(&self) -> String {
        let geoip: Vec<String> = self
            .geoip_databases
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "schema={:?} data_stream_namespace={} ingest_pipeline={} geoip_databases=[{}]",
            self.schema,
            self.data_stream_namespace,
            self.ingest_pipeline.as_deref().unwrap_or("-"),
            geoip.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(namespace: &str) -> SchemaConfig {
        SchemaConfig {
            schema: Schema::Ecs,
            data_stream_namespace: namespace.into(),
            ingest_pipeline: None,
            geoip_databases: vec![PathBuf::from("/no/such.mmdb")],
        }
    }

    #[test]
    fn namespaces_follow_elasticsearch_rules_and_databases_must_exist() {
        let mut problems = Vec::new();
        config("prod_eu").validate(&mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("/no/such.mmdb"));
        for bad in ["", "Prod", "a-b", "a b", &"x".repeat(101)] {
            let mut problems = Vec::new();
            config(bad).validate(&mut problems);
            assert_eq!(problems.len(), 2, "{bad:?}: {problems:?}");
        }
        let mut raw = config("default");
        raw.schema = Schema::Raw;
        raw.ingest_pipeline = Some("logs-aws.cloudtrail-2.17.0".into());
        let mut problems = Vec::new();
        raw.validate(&mut problems);
        assert!(
            problems.iter().any(|p| p.contains("needs --schema ecs")),
            "{problems:?}"
        );
    }
}
