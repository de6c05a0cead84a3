//! Listing: the bucket -> the units to list ([`units`]) -> the objects to read, in key order
//! ([`list`]).
//!
//! Folders are found with delimited `ListObjectsV2` calls (one page of common prefixes per
//! call), so finding the accounts and regions of a CloudTrail bucket costs a few calls per
//! account, whatever the number of objects; objects are listed only under the units. Every
//! call is counted in `list_requests`. The SDK retries throttling and 5xx itself; an error
//! that survives its retries ends the backfill (nothing is lost: the checkpoint holds what
//! settled).

use std::collections::BTreeSet;

use aws_sdk_s3::error::DisplayErrorContext;
use time::{Date, OffsetDateTime};
use tokio::sync::mpsc;

use super::plan::{self, Days, Folder, Unit};
use crate::config::ObjectFormat;
use crate::source::s3::{skip_reason, ObjectCounters};
use crate::telemetry::Stats;

crate::telemetry::counters! {
    /// What the backfill listed.
    pub struct ListingCounters {
        list_requests: "backfill: S3 ListObjectsV2 requests (folder discovery and object listing)",
        objects_listed: "backfill: objects listed",
    }
}

#[derive(Debug, thiserror::Error)]
#[error("listing s3://{bucket}/{prefix} failed: {message}")]
pub struct ListError {
    pub bucket: String,
    pub prefix: String,
    pub message: String,
}

/// One object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// What the lister hands on, in key order.
#[derive(Debug)]
pub enum Listing {
    Object(Listed),
    /// Every object of a unit was handed on.
    UnitDone,
}

/// The folders directly below `folder` (`ListObjectsV2` with delimiter `/`).
async fn folders(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    folder: &str,
    stats: &Stats,
) -> Result<Vec<String>, ListError> {
    let mut found = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(folder)
        .delimiter("/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        stats.counters::<ListingCounters>().list_requests.add(1);
        let page = page.map_err(|err| ListError {
            bucket: bucket.to_string(),
            prefix: folder.to_string(),
            message: DisplayErrorContext(&err).to_string(),
        })?;
        found.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
    }
    Ok(found)
}

/// The units of one user prefix: without days, the prefix itself; with days, the day folders
/// of every CloudTrail account and region found below it, or (when it holds no CloudTrail
/// layout) the prefix with a LastModified filter.
async fn units_of(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    days: Option<Days>,
    stats: &Stats,
) -> Result<Vec<Unit>, ListError> {
    let Some(days) = days else {
        return Ok(vec![Unit::new(prefix.to_string(), None)]);
    };
    let mut regions = BTreeSet::new();
    let mut stack = vec![(plan::folder_of(prefix).to_string(), 0usize)];
    while let Some((folder, depth)) = stack.pop() {
        match plan::classify(&folder) {
            Folder::Region(region) => {
                regions.insert(region);
                continue;
            }
            Folder::Other => continue,
            Folder::Above if depth > plan::MAX_LEVELS_ABOVE_LOGS => continue,
            Folder::Above | Folder::Logs => {}
        }
        for child in folders(s3, bucket, &folder, stats).await? {
            if plan::may_lead_to(prefix, &child) {
                stack.push((child, depth + 1));
            }
        }
    }
    if regions.is_empty() {
        return Ok(vec![Unit::new(prefix.to_string(), Some(days))]);
    }
    let mut units = BTreeSet::new();
    for region in &regions {
        for folder in day_folders(s3, bucket, region, days, stats).await? {
            if let Some(prefix) = plan::within(prefix, &folder) {
                units.insert(prefix);
            }
        }
    }
    Ok(units.into_iter().map(|p| Unit::new(p, None)).collect())
}

/// The day folders of `region` within `days`: generated for short ranges, else found by
/// looking at the year and month folders that exist.
async fn day_folders(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
    days: Days,
    stats: &Stats,
) -> Result<Vec<String>, ListError> {
    if let Some(folders) = plan::generated_days(region, days) {
        return Ok(folders);
    }
    let number = |folder: &str, parent: &str| -> Option<i32> {
        folder.strip_prefix(parent)?.strip_suffix('/')?.parse().ok()
    };
    let mut found = Vec::new();
    for year_folder in folders(s3, bucket, region, stats).await? {
        let Some(year) = number(&year_folder, region).filter(|y| plan::year_in(*y, days)) else {
            continue;
        };
        for month_folder in folders(s3, bucket, &year_folder, stats).await? {
            let Some(month) = number(&month_folder, &year_folder) else {
                continue;
            };
            let Ok(month) = u8::try_from(month) else {
                continue;
            };
            found.extend(
                plan::days_of_month(year, month, days)
                    .into_iter()
                    .map(|d| format!("{region}{}", plan::day_folder(d))),
            );
        }
    }
    Ok(found)
}

/// The units of a backfill of `prefixes` (normalized) within `days`, in key order.
pub async fn units(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefixes: &[String],
    days: Option<Days>,
    stats: &Stats,
) -> Result<Vec<Unit>, ListError> {
    let mut all = Vec::new();
    for prefix in prefixes {
        all.extend(units_of(s3, bucket, prefix, days, stats).await?);
    }
    all.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    Ok(all)
}

/// Lists every unit in order and hands on the objects to read: not digests or keys the
/// object format does not read (counted as skipped), and within the LastModified days of a
/// unit that has them. Stops early when the receiver is gone.
pub async fn list(
    s3: aws_sdk_s3::Client,
    bucket: String,
    units: Vec<Unit>,
    format: ObjectFormat,
    out: mpsc::Sender<Listing>,
    stats: std::sync::Arc<Stats>,
) -> Result<(), ListError> {
    for unit in &units {
        let mut pages = s3
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&unit.prefix)
            .set_start_after(unit.start_after.clone())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            stats.counters::<ListingCounters>().list_requests.add(1);
            let page = page.map_err(|err| ListError {
                bucket: bucket.clone(),
                prefix: unit.prefix.clone(),
                message: DisplayErrorContext(&err).to_string(),
            })?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let modified = object
                    .last_modified()
                    .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok())
                    .map(OffsetDateTime::date);
                if skip_reason(key, format).is_some() || !in_days(unit.by_last_modified, modified) {
                    stats.counters::<ObjectCounters>().keys_skipped.add(1);
                    continue;
                }
                stats.counters::<ListingCounters>().objects_listed.add(1);
                let listed = Listed {
                    key: key.to_string(),
                    size: object
                        .size()
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                };
                if out.send(Listing::Object(listed)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if out.send(Listing::UnitDone).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn in_days(days: Option<Days>, modified: Option<Date>) -> bool {
    match (days, modified) {
        (None, _) => true,
        (Some(days), Some(day)) => days.contains(day),
        (Some(_), None) => false,
    }
}
