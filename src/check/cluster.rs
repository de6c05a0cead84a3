//! `cluster`, `templates` and `bulk`: the checks every source shares.

use super::report::{Report, Verdict};
use crate::config::{IndexConfig, Shared, TemplateMode};
use crate::format::Destination;
use crate::sink::elasticsearch::response::ItemOutcome;
use crate::sink::elasticsearch::{probe, product, template, Cluster, ClusterInfo};

/// `cluster`, `templates` and `bulk`, the checks every source shares.
pub async fn cluster_checks(
    report: &mut Report,
    client: &Cluster,
    shared: &Shared,
    destinations: &[Destination],
) {
    let index = &shared.index;
    match product::detect(client, shared.cluster.url().as_str()).await {
        Ok(info) => {
            report.add(
                "cluster",
                Verdict::Pass(format!(
                    "{} {} answers with these credentials",
                    info.distribution, info.version
                )),
            );
            let mut destinations =
                crate::format::schema::destinations(&shared.schema, destinations.to_vec());
            report.add(
                "templates",
                templates(client, index, &info, &mut destinations).await,
            );
            report.add("bulk", bulk_probe(client, index).await);
        }
        Err(err) => {
            report.add("cluster", Verdict::Fail(err.to_string()));
            report.add("templates", Verdict::Skip("the cluster is unusable".into()));
            report.add("bulk", Verdict::Skip("the cluster is unusable".into()));
        }
    }
}

async fn templates(
    client: &Cluster,
    index: &IndexConfig,
    info: &ClusterInfo,
    destinations: &mut [Destination],
) -> Verdict {
    if index.index_template == TemplateMode::Skip {
        return Verdict::Skip("--index-template skip".into());
    }
    match template::prepare(client, index, info, destinations).await {
        Ok(free_form) => Verdict::Pass(format!(
            "index templates installed (free-form fields as {free_form:?})"
        )),
        Err(err) => Verdict::Fail(err.to_string()),
    }
}

async fn bulk_probe(client: &Cluster, index: &IndexConfig) -> Verdict {
    let index = format!("{}-preflight", index.prefix());
    match probe::create(client, &index).await {
        Ok(ItemOutcome::Indexed | ItemOutcome::AlreadyIndexed) => {
            Verdict::Pass(format!("bulk create accepted by {index}"))
        }
        Ok(ItemOutcome::Retry { status, reason }) => {
            Verdict::Fail(format!("bulk create answered HTTP {status}: {reason}"))
        }
        Ok(ItemOutcome::Rejected(rejection)) => {
            Verdict::Fail(format!("bulk create refused: {rejection}"))
        }
        Err(err) => Verdict::Fail(err.to_string()),
    }
}
