//! `cloudtrail-ingest rules test`: detection and drop rules over local log files, without a
//! cluster, for rule authors and their CI.
//!
//! Input: rule files or folders (`--rules`, `--drop-rules`) and log files, folders or
//! standard input, read as the `files` source reads them (the object formats, digests and
//! other names skipped). Output, on standard output, one JSON object per line:
//! - each alert, the document the worker would index (`"kind": "match"`);
//! - per rule, `{"kind": "count", "role": "detection"|"drop", "rule": {...}, "events": N}`:
//!   the events it matched, or would drop;
//! - `{"kind": "total", "files": N, "events": N, "alerts": N, "dropped": N}`.
//!
//! Rules that cannot be used are reported on standard error (as `rules check` words them)
//! and make the exit code 1, as does a file that cannot be read; the rest still runs.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use crate::config::RulesTest;
use crate::detect::alert::{AlertCounters, Alerter, Written};
use crate::detect::{load, Detector, Level};
use crate::format::{Destination, Format, Item, PayloadContext};
use crate::source::{files, s3};

/// Runs `command`, writing to `out` (and the problems to `errors`); returns the exit code.
pub fn test(
    command: &RulesTest,
    out: &mut dyn Write,
    errors: &mut dyn Write,
) -> std::io::Result<u8> {
    let mut code = 0;
    let mut detector = |paths: &[PathBuf]| -> std::io::Result<Option<Detector>> {
        if paths.is_empty() {
            return Ok(None);
        }
        let (loaded, failed) = match load::load(paths) {
            Ok(found) => found,
            Err(err) => {
                writeln!(errors, "FAILED  {err}")?;
                code = 1;
                return Ok(None);
            }
        };
        for skipped in &failed {
            writeln!(errors, "FAILED  {skipped}")?;
            code = 1;
        }
        Ok(Some(Detector::new(loaded, Level::Informational).0))
    };
    let rules = detector(&command.rules)?;
    let drops = detector(&command.drop_rules)?;
    let destinations = s3::destinations_under(&command.s3, crate::config::DEFAULT_INDEX_PREFIX);
    let alerter = rules.map(|detector| alerter(detector, &destinations));
    let format = s3::object_format(&command.s3, crate::format::FreeForm::Objects);
    let mut totals = Totals::default();
    for path in inputs(command, errors)? {
        let read = read(&path, &format, &mut |event| {
            totals.events += 1;
            for alert in alerter
                .as_ref()
                .map(|a| a.alerts(&event))
                .unwrap_or_default()
            {
                totals.alerts += 1;
                out.write_all(&alert.source)?;
                out.write_all(b"\n")?;
            }
            if drops
                .as_ref()
                .is_some_and(|d| !d.examine(&event).is_empty())
            {
                totals.dropped += 1;
            }
            Ok(())
        });
        match read {
            Ok(()) => totals.files += 1,
            Err(err) => {
                writeln!(errors, "FAILED  {}: {err}", path.display())?;
                code = 1;
            }
        }
    }
    if let Some(alerter) = &alerter {
        counts(out, &alerter.detector, "detection")?;
    }
    if let Some(drops) = &drops {
        counts(out, drops, "drop")?;
    }
    let total = json!({"kind": "total", "files": totals.files, "events": totals.events,
                       "alerts": totals.alerts, "dropped": totals.dropped});
    writeln!(out, "{total}")?;
    Ok(code)
}

#[derive(Debug, Default)]
struct Totals {
    files: u64,
    events: u64,
    alerts: u64,
    dropped: u64,
}

/// The alerter of `detector`, naming the indices of `destinations` in its alerts.
fn alerter(detector: Detector, destinations: &[Destination]) -> Alerter {
    let written = Arc::new(Written {
        counters: Arc::new(AlertCounters::default()),
        notifier: None,
    });
    Alerter::new(
        detector,
        crate::format::indices(destinations),
        crate::format::FreeForm::Objects,
        written,
    )
}

/// One line per rule of `detector`: the events it matched.
fn counts(out: &mut dyn Write, detector: &Detector, role: &str) -> std::io::Result<()> {
    for (n, rule) in detector.rules().iter().enumerate() {
        let line = json!({
            "kind": "count",
            "role": role,
            "rule": {"id": rule.id, "title": rule.title, "level": rule.level.as_str(),
                     "file": detector.file(n).display().to_string()},
            "events": detector.matches_of(n),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The files `command` names, folders walked in name order, without what its object format
/// skips (said on `errors` for a file named on its own); `-` is standard input.
fn inputs(command: &RulesTest, errors: &mut dyn Write) -> std::io::Result<Vec<PathBuf>> {
    let mut inputs = Vec::new();
    for path in &command.paths {
        if path.as_os_str() == "-" {
            inputs.push(path.clone());
            continue;
        }
        let named = !path.is_dir();
        let mut found = Vec::new();
        files::walk(path, &mut found)?;
        for file in found {
            match s3::skip_reason(&file.to_string_lossy(), command.s3.object_format) {
                None => inputs.push(file),
                Some(reason) if named => {
                    writeln!(errors, "SKIPPED {}: {}", file.display(), reason.as_str())?;
                }
                Some(_) => {}
            }
        }
    }
    Ok(inputs)
}

/// Reads the file at `path` (`-`: standard input) with `format`, gzipped or not, handing
/// each event to `each`.
fn read(
    path: &Path,
    format: &dyn Format,
    each: &mut dyn FnMut(crate::pipeline::Event) -> std::io::Result<()>,
) -> Result<(), String> {
    let body: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| e.to_string())?)
    };
    let mut input = s3::decoded(BufReader::new(body)).map_err(|e| e.to_string())?;
    let name = path.display().to_string();
    let context = PayloadContext {
        name: &name,
        fallback_time: Some(time::OffsetDateTime::now_utc()),
    };
    let mut failed = None;
    let mut emit = |item: Item| {
        if let Item::Event(event) = item {
            if let Err(err) = each(event) {
                failed = Some(err.to_string());
                return Err(crate::pipeline::Closed);
            }
        }
        Ok(())
    };
    let read = format.read(&mut input, &context, &mut emit);
    if let Some(err) = failed {
        return Err(err);
    }
    read.map(|_| ()).map_err(|e| e.to_string())
}
