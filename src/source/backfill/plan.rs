//! Plan: which prefixes a backfill lists, in which order, and where a checkpoint resumes.
//!
//! Pure: no I/O. [`crate::source::backfill::listing`] walks the bucket's folders with what
//! [`classify`] says of each, and lists the [`Unit`]s this module makes.
//!
//! Order is what makes the checkpoint small: the units are prefixes none of which is a prefix
//! of another, listed in ascending order, and S3 lists keys in ascending (UTF-8 binary) order,
//! so the keys of the whole backfill come in one ascending sequence. "Every key up to K
//! settled" is then one key, and a resumed backfill skips every unit below K without listing
//! it and lists the unit holding K from just after K ([`resume`]).
//!
//! CloudTrail layouts: `[<trail prefix>/]AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`,
//! and for organization trails `[<trail prefix>/]AWSLogs/<org id>/<account>/CloudTrail/...`
//! (`CloudTrail-Insight` folders likewise). With `--since`/`--until`, only the matching day
//! folders of each account and region are listed.

use time::{Date, Duration, Month};

/// A day folder is generated (not discovered) when the range spans at most this many days;
/// wider ranges look for the year and month folders that exist first.
pub const GENERATE_DAYS_UP_TO: i64 = 400;
/// Folder levels looked through above `AWSLogs/` for a trail's key prefix.
pub const MAX_LEVELS_ABOVE_LOGS: usize = 3;

/// Inclusive UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    pub since: Option<Date>,
    pub until: Date,
}

impl Days {
    pub fn contains(&self, day: Date) -> bool {
        self.since.is_none_or(|since| day >= since) && day <= self.until
    }
}

/// One prefix to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub prefix: String,
    /// Keep only objects whose LastModified falls on these days (prefixes that are not
    /// CloudTrail day folders, with `--since`/`--until`).
    pub by_last_modified: Option<Days>,
    /// List after this key (a resumed backfill).
    pub start_after: Option<String>,
}

impl Unit {
    pub fn new(prefix: String, by_last_modified: Option<Days>) -> Self {
        Unit {
            prefix,
            by_last_modified,
            start_after: None,
        }
    }
}

/// The prefixes to list: sorted, without duplicates or prefixes that another one covers;
/// the whole bucket when none is given.
pub fn normalize(prefixes: &[String]) -> Vec<String> {
    let mut sorted: Vec<String> = prefixes.to_vec();
    if sorted.is_empty() {
        sorted.push(String::new());
    }
    sorted.sort();
    sorted.dedup();
    let mut kept: Vec<String> = Vec::with_capacity(sorted.len());
    for prefix in sorted {
        // Sorted, so a covering prefix comes right before what it covers.
        if kept
            .last()
            .is_some_and(|last| prefix.starts_with(last.as_str()))
        {
            continue;
        }
        kept.push(prefix);
    }
    kept
}

/// What a folder (a prefix ending in `/`, or the empty prefix) is in a CloudTrail layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folder {
    /// Above `AWSLogs/` (perhaps inside a trail's key prefix): look below, a few levels deep.
    Above,
    /// `AWSLogs/`, an organization, an account or its `CloudTrail/` folder: look below.
    Logs,
    /// A region folder (`.../CloudTrail/<region>/`), or a folder inside one: its days are
    /// known without looking.
    Region(String),
    /// Anything else (digests, other services' logs): not a CloudTrail log folder.
    Other,
}

pub fn classify(folder: &str) -> Folder {
    let Some(at) = folder.rfind("AWSLogs/") else {
        return Folder::Above;
    };
    if at > 0 && !folder[..at].ends_with('/') {
        return Folder::Above;
    }
    let base = &folder[..at + "AWSLogs/".len()];
    let segments: Vec<&str> = folder[base.len()..]
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (org, segments) = match segments.split_first() {
        Some((first, rest)) if is_org(first) => (Some(*first), rest),
        _ => (None, &segments[..]),
    };
    match segments {
        [] => Folder::Logs,
        [account] if is_account(account) => Folder::Logs,
        [account, trail] if is_account(account) && is_trail(trail) => Folder::Logs,
        [account, trail, region, ..]
            if is_account(account) && is_trail(trail) && is_region(region) =>
        {
            let org = org.map(|o| format!("{o}/")).unwrap_or_default();
            Folder::Region(format!("{base}{org}{account}/{trail}/{region}/"))
        }
        _ => Folder::Other,
    }
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_org(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|id| {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

fn is_trail(s: &str) -> bool {
    matches!(s, "CloudTrail" | "CloudTrail-Insight")
}

fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `YYYY/MM/DD/` of `day`.
pub fn day_folder(day: Date) -> String {
    format!(
        "{:04}/{:02}/{:02}/",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// Every day from `first` to `last`, inclusive.
pub fn each_day(first: Date, last: Date) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(first), |d| d.next_day()).take_while(move |d| *d <= last)
}

/// The day folders of `region` within `days`, when they can be generated without looking
/// (a `--since` and a span of at most [`GENERATE_DAYS_UP_TO`] days).
pub fn generated_days(region: &str, days: Days) -> Option<Vec<String>> {
    let since = days.since?;
    ((days.until - since) <= Duration::days(GENERATE_DAYS_UP_TO)).then(|| {
        each_day(since, days.until)
            .map(|d| format!("{region}{}", day_folder(d)))
            .collect()
    })
}

/// The days of `year`/`month` within `days`, as folders below the month folder's parent.
pub fn days_of_month(year: i32, month: u8, days: Days) -> Vec<Date> {
    let Ok(month) = Month::try_from(month) else {
        return Vec::new();
    };
    let Ok(first) = Date::from_calendar_date(year, month, 1) else {
        return Vec::new();
    };
    let last = Date::from_calendar_date(year, month, month.length(year)).unwrap_or(first);
    each_day(first, last)
        .filter(|d| days.contains(*d))
        .collect()
}

/// Whether a year folder (`2024`) may hold days within `days`.
pub fn year_in(year: i32, days: Days) -> bool {
    days.since.is_none_or(|s| year >= s.year()) && year <= days.until.year()
}

/// The part of the user's `prefix` that a day folder stands for: the folder when it lies
/// below the prefix, the prefix when it lies below the folder, else nothing.
pub fn within(prefix: &str, folder: &str) -> Option<String> {
    if folder.starts_with(prefix) {
        Some(folder.to_string())
    } else if prefix.starts_with(folder) {
        Some(prefix.to_string())
    } else {
        None
    }
}

/// Whether `folder` (a listed child) can lead to keys under `prefix`.
pub fn may_lead_to(prefix: &str, folder: &str) -> bool {
    folder.starts_with(prefix) || prefix.starts_with(folder)
}

/// The folder part of a prefix: up to its last `/`.
pub fn folder_of(prefix: &str) -> &str {
    &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)]
}

/// The units left once every key up to `done_through` settled: units wholly below it are
/// dropped, the one holding it is listed after it.
pub fn resume(units: Vec<Unit>, done_through: Option<&str>) -> Vec<Unit> {
    let Some(done) = done_through else {
        return units;
    };
    units
        .into_iter()
        .filter_map(|mut unit| {
            if done.starts_with(unit.prefix.as_str()) {
                unit.start_after = Some(done.to_string());
                Some(unit)
            } else if unit.prefix.as_str() < done {
                None // every key under it sorts before `done`
            } else {
                Some(unit)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn prefixes_are_sorted_and_covered_ones_dropped() {
        let given = ["b/", "a/x/", "a/", "b/", "c"].map(String::from);
        assert_eq!(normalize(&given), ["a/", "b/", "c"]);
        assert_eq!(normalize(&[]), [""]);
        assert_eq!(normalize(&["x".into(), String::new()]), [""]);
    }

    #[test]
    fn cloudtrail_folders_are_recognised() {
        let region = |s: &str| Folder::Region(s.to_string());
        let table = [
            ("", Folder::Above),
            ("trail-prefix/", Folder::Above),
            ("AWSLogs/", Folder::Logs),
            ("p/q/AWSLogs/", Folder::Logs),
            ("AWSLogs/123456789012/", Folder::Logs),
            ("AWSLogs/o-abc123def4/", Folder::Logs),
            ("AWSLogs/o-abc123def4/123456789012/", Folder::Logs),
            ("AWSLogs/123456789012/CloudTrail/", Folder::Logs),
            (
                "AWSLogs/123456789012/CloudTrail/eu-west-1/",
                region("AWSLogs/123456789012/CloudTrail/eu-west-1/"),
            ),
            (
                "p/AWSLogs/o-abc123def4/123456789012/CloudTrail-Insight/us-east-1/2024/05/",
                region("p/AWSLogs/o-abc123def4/123456789012/CloudTrail-Insight/us-east-1/"),
            ),
            ("AWSLogs/123456789012/CloudTrail-Digest/", Folder::Other),
            ("AWSLogs/123456789012/Config/", Folder::Other),
            ("AWSLogs/not-an-account/", Folder::Other),
            ("xAWSLogs/", Folder::Above),
        ];
        for (folder, expected) in table {
            assert_eq!(classify(folder), expected, "{folder}");
        }
    }

    #[test]
    fn day_folders_of_a_range() {
        let days = Days {
            since: Some(date!(2024 - 02 - 28)),
            until: date!(2024 - 03 - 01),
        };
        assert_eq!(
            generated_days("R/", days).unwrap(),
            ["R/2024/02/28/", "R/2024/02/29/", "R/2024/03/01/"]
        );
        let wide = Days {
            since: None,
            until: date!(2024 - 03 - 01),
        };
        assert_eq!(generated_days("R/", wide), None, "no start: look first");
        assert_eq!(days_of_month(2024, 3, days), [date!(2024 - 03 - 01)]);
        assert_eq!(days_of_month(2024, 2, wide).len(), 29);
        assert!(days_of_month(2024, 13, wide).is_empty());
        assert!(year_in(2024, days) && !year_in(2023, days) && year_in(2020, wide));
    }

    #[test]
    fn a_prefix_narrows_the_day_folders() {
        assert_eq!(
            within("", "A/2024/05/01/").as_deref(),
            Some("A/2024/05/01/")
        );
        assert_eq!(
            within("A/2024/05/01/123", "A/2024/05/01/").as_deref(),
            Some("A/2024/05/01/123")
        );
        assert_eq!(within("A/2024/06/", "A/2024/05/01/"), None);
        assert!(may_lead_to("AWSLogs/1", "AWSLogs/"));
        assert!(may_lead_to("AWSLogs/", "AWSLogs/123456789012/"));
        assert!(!may_lead_to("AWSLogs/1", "AWSLogs/2/"));
        assert_eq!(folder_of("AWSLogs/12"), "AWSLogs/");
        assert_eq!(folder_of("x"), "");
    }

    #[test]
    fn resuming_skips_what_sorts_before_the_checkpoint() {
        let units: Vec<Unit> = ["a/1/", "a/2/", "a/3/"]
            .iter()
            .map(|p| Unit::new(p.to_string(), None))
            .collect();
        let left = resume(units.clone(), Some("a/2/k-17.json.gz"));
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].prefix, "a/2/");
        assert_eq!(left[0].start_after.as_deref(), Some("a/2/k-17.json.gz"));
        assert_eq!(left[1], units[2]);
        assert_eq!(resume(units.clone(), None), units);
        assert!(resume(units, Some("b")).is_empty());
    }
}
