//! The files source: local files, folders (read recursively, in name order) and standard
//! input (`-`) -> the object formats -> events -> sink, each file counted once every event
//! of it settled, then exit.
//!
//! `cloudtrail-ingest files [OPTIONS] PATH...` reads what the S3 path reads, the same way:
//! CloudTrail logs (`.json`, `.json.gz`; gzip is told by its magic bytes), JSON lines and
//! Confluent audit records by `--object-format`, with the same documents, `_id`s, indices,
//! detection and flags; digests and names the object format does not read are skipped as
//! they are on S3 (a skipped path given by name says so). Every path is checked before
//! anything is read: one that does not exist is a configuration error. Files are read
//! `--concurrency` at a time; a file that cannot be read or whose events fail for good is
//! reported (`FAILED <path>: <reason>` on standard output) and the others go on. Progress
//! is one line, as backfill prints it. Exit 0 when every file settled, 1 when any failed,
//! 130 when stopped (SIGTERM/SIGINT) before the end.
//!
//! Uses: loading an export (a synced copy of a trail bucket, a CloudTrail Lake export, a
//! Konnect dump), an air-gapped site, replaying a sample through the rules.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::{ConfigError, S3Config, Shared};
use crate::format::{Destination, Format, PayloadContext, RecordCounters};
use crate::pipeline::{Failure, Origin, StageError, Ticket};
use crate::source::backfill::progress;
use crate::source::s3::{self, FetchError, ObjectSink, ObjectSummary};
use crate::source::{Context, Ended, Source, SourceError};
use crate::telemetry::Stats;

/// The origin field that names a file (`file.path`; `file.line` of a record).
const PLACE: &str = "file";
/// The path that names standard input.
const STDIN: &str = "-";

/// `cloudtrail-ingest files [OPTIONS] PATH...`: the whole configuration of the files
/// source.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("s3_force_path_style", |arg| arg.hide(true)))]
#[command(mut_arg("alert_if_silent", |arg| arg.hide(true)))]
pub struct FilesCommand {
    /// Files, folders (read recursively, in name order) or `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Files read at once.
    #[arg(
        long,
        env = "CLOUDTRAIL_INGEST_CONCURRENCY",
        default_value_t = 4,
        value_name = "N"
    )]
    pub concurrency: usize,

    #[command(flatten)]
    pub s3: S3Config,

    #[command(flatten)]
    pub shared: Shared,
}

impl FilesCommand {
    /// Checks every field and every path, and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.shared.validate(&mut problems);
        self.s3.validate(&self.shared.index, &mut problems);
        if self.concurrency == 0 {
            problems.push("--concurrency must be at least 1".into());
        }
        self.shared
            .detect
            .refuse_silence_alarm("files ends when every file is read", &mut problems);
        if self.paths.iter().filter(|p| p.as_os_str() == STDIN).count() > 1 {
            problems.push("- (standard input) can be read only once".into());
        }
        for path in self.paths.iter().filter(|p| p.as_os_str() != STDIN) {
            if let Err(err) = std::fs::metadata(path) {
                problems.push(format!("{}: {err}", path.display()));
            }
        }
        ConfigError::check(problems)
    }

    /// A one-line summary for the start-up log; never contains secrets.
    pub fn redacted_summary(&self) -> String {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        format!(
            "paths={:?} concurrency={} {} {}",
            paths,
            self.concurrency,
            self.s3.summary(),
            self.shared.summary()
        )
    }
}

crate::telemetry::counters! {
    /// What the files source read.
    pub struct FileCounters {
        files_read: "files read to the end",
        files_failed: "files that could not be read, or whose events failed for good",
        files_skipped: "files not read: digests and names the object format does not read",
        file_bytes_read: "bytes read from files, as stored",
    }
}

/// The files source.
pub struct Files {
    command: FilesCommand,
}

impl Source for Files {
    type Command = FilesCommand;
    const AWS: bool = false;

    fn shared(command: &FilesCommand) -> &Shared {
        &command.shared
    }

    fn new(command: &FilesCommand, _: Option<&aws_config::SdkConfig>) -> Result<Self, SourceError> {
        Ok(Files {
            command: command.clone(),
        })
    }

    fn describe(&self) -> String {
        "files".to_string()
    }

    fn destinations(&self) -> Vec<Destination> {
        s3::destinations(&self.command.s3, &self.command.shared.index)
    }

    fn register(stats: &Stats) {
        stats.counters::<FileCounters>();
        stats.counters::<RecordCounters>();
    }

    /// Reads every file, `--concurrency` at a time, until all settled or stopping is asked
    /// for (then the files in flight get the grace period).
    async fn run(self, context: Context) -> Result<Ended, SourceError> {
        let counters = context.stats.counters::<FileCounters>();
        // Walking a large export is file system work: off the async threads.
        let inputs = {
            let (command, counters) = (self.command.clone(), counters.clone());
            tokio::task::spawn_blocking(move || inputs(&command, &counters))
                .await
                .expect("the walk does not panic")
                .map_err(SourceError::new)?
        };
        let stats = &context.stats;
        stats.set(&stats.source_reachable, true);
        info!(files = inputs.len(), "files started");
        stats.set(&stats.started, true);
        let reader = Arc::new(Reader {
            format: Arc::new(s3::object_format(&self.command.s3, context.free_form)),
            events: context.events,
            stats: context.stats.clone(),
            counters,
        });
        let mut run = Run {
            progress: Progress::new(inputs.len()),
            ended: Ended::default(),
        };
        let shutdown = context.shutdown;
        let mut inputs = inputs.into_iter().peekable();
        let mut tasks = JoinSet::new();
        let mut report = tokio::time::interval(run.progress.every());
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while tasks.len() < self.command.concurrency && !shutdown.is_requested() {
                let Some(input) = inputs.next() else { break };
                let reader = reader.clone();
                tasks.spawn(async move { reader.read(input).await });
            }
            let more = inputs.peek().is_some() && !shutdown.is_requested();
            if tasks.is_empty() && !more {
                break;
            }
            tokio::select! {
                Some(joined) = tasks.join_next() => match joined {
                    Ok(read) => run.settle(read),
                    Err(err) if err.is_cancelled() => {}
                    Err(err) => std::panic::resume_unwind(err.into_panic()),
                },
                _ = report.tick() => run.progress.report(),
                () = shutdown.give_up_token().cancelled(), if !run.ended.abandoned => {
                    warn!(unsettled = tasks.len(), "grace period over; the files in flight are not counted as read");
                    tasks.abort_all();
                    run.ended.abandoned = true;
                }
            }
        }
        run.ended.interrupted = shutdown.is_requested();
        Ok(run.finish())
    }
}

/// What the files read so far came to.
struct Run {
    progress: Progress,
    ended: Ended,
}

impl Run {
    fn settle(&mut self, (name, read): (String, Result<ObjectSummary, String>)) {
        match read {
            Ok(summary) => self.progress.file_done(summary.events),
            Err(reason) => {
                self.progress.failed += 1;
                self.ended.failed_total += 1;
                self.ended.failed.push((name, Some(reason)));
            }
        }
    }

    fn finish(self) -> Ended {
        self.progress.report();
        self.progress.finish();
        match (self.ended.interrupted, self.ended.failed_total) {
            (true, _) => warn!("files interrupted before every file was read"),
            (false, 0) => info!("files complete"),
            (false, failed) => error!(
                failed,
                "files finished; some files failed for good (listed on standard output)"
            ),
        }
        self.ended
    }
}

/// One thing to read: a file or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::File(path) => path.display().to_string(),
            Input::Stdin => STDIN.to_string(),
        }
    }
}

/// Every input `command` names, folders walked recursively in name order, without what the
/// object format skips.
fn inputs(command: &FilesCommand, counters: &FileCounters) -> std::io::Result<Vec<Input>> {
    let format = command.s3.object_format;
    let mut inputs = Vec::new();
    for path in &command.paths {
        if path.as_os_str() == STDIN {
            inputs.push(Input::Stdin);
            continue;
        }
        let named = !path.is_dir();
        let mut files = Vec::new();
        walk(path, &mut files)?;
        for file in files {
            match s3::skip_reason(&file.to_string_lossy(), format) {
                None => inputs.push(Input::File(file)),
                Some(reason) => {
                    counters.files_skipped.add(1);
                    if named {
                        warn!(path = %file.display(), reason = reason.as_str(), "not a file this object format reads; skipped (see --object-format)");
                    }
                }
            }
        }
    }
    Ok(inputs)
}

/// `path` itself when it is a file; every file under it, in name order, when a folder.
pub fn walk(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !path.is_dir() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    for entry in entries {
        walk(&entry, files)?;
    }
    Ok(())
}

/// A file that could not be read to the end.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {error}")]
struct FileFailure {
    path: String,
    error: FetchError,
}

impl StageError for FileFailure {
    fn is_transient(&self) -> bool {
        self.error.is_transient()
    }
}

/// What every file task shares.
struct Reader {
    format: Arc<dyn Format>,
    events: crate::pipeline::EventSender,
    stats: Arc<Stats>,
    counters: Arc<FileCounters>,
}

impl Reader {
    /// Reads one input until its events settled; returns its name and what it came to.
    async fn read(&self, input: Input) -> (String, Result<ObjectSummary, String>) {
        let name = input.name();
        let ticket = Ticket::new();
        let sink = ObjectSink {
            origin: Arc::new(Origin::new(
                name.clone(),
                serde_json::json!({PLACE: {"path": name}}),
            )),
            place: PLACE,
            format: self.format.clone(),
            ticket: ticket.clone(),
            events: self.events.clone(),
        };
        let path = name.clone();
        let read = tokio::task::spawn_blocking(move || read_input(&input, &path, &sink))
            .await
            .expect("the read task does not panic");
        let summary = match read {
            Ok(summary) => Some(summary),
            Err(error) => {
                let path = name.clone();
                ticket.fail(Failure::new(FileFailure { path, error }));
                None
            }
        };
        let outcome = match (ticket.settle().await, summary) {
            (Ok(()), Some(summary)) => Ok(summary),
            (Ok(()), None) => unreachable!("a failed read fails its ticket"),
            (Err(failure), _) => Err(failure.to_string()),
        };
        self.count(&name, &outcome);
        (name, outcome)
    }

    fn count(&self, name: &str, outcome: &Result<ObjectSummary, String>) {
        match outcome {
            Ok(summary) => {
                self.counters.files_read.add(1);
                self.counters.file_bytes_read.add(summary.stored_bytes);
                let records = self.stats.counters::<RecordCounters>();
                records.records_unreadable.add(summary.unreadable);
                records
                    .records_fallback_time
                    .add(summary.fallback_time_events);
            }
            Err(reason) => {
                self.counters.files_failed.add(1);
                error!(path = name, reason, "file failed for good");
            }
        }
    }
}

/// The synchronous part: open the input and read it as an object (on a blocking thread).
fn read_input(input: &Input, name: &str, sink: &ObjectSink) -> Result<ObjectSummary, FetchError> {
    let (body, modified): (Box<dyn Read>, Option<OffsetDateTime>) = match input {
        Input::Stdin => (Box::new(std::io::stdin().lock()), None),
        Input::File(path) => {
            let file = std::fs::File::open(path).map_err(FetchError::Read)?;
            let modified = file.metadata().and_then(|m| m.modified()).ok();
            (Box::new(file), modified.map(OffsetDateTime::from))
        }
    };
    let context = PayloadContext {
        name,
        fallback_time: modified,
    };
    s3::read_stream(body, &context, sink)
}

/// One line saying how far the files are, rewritten in place every second on a terminal,
/// logged every five seconds otherwise (as backfill's).
struct Progress {
    started: Instant,
    terminal: bool,
    total: usize,
    done: u64,
    failed: u64,
    events: u64,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress {
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            total,
            done: 0,
            failed: 0,
            events: 0,
        }
    }

    fn every(&self) -> Duration {
        Duration::from_secs(if self.terminal { 1 } else { 5 })
    }

    fn file_done(&mut self, events: u64) {
        self.done += 1;
        self.events += events;
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let settled = self.done + self.failed;
        let left = (self.total as u64).saturating_sub(settled);
        let eta = if settled == 0 {
            "unknown".to_string()
        } else {
            let eta = left as f64 * secs / settled as f64;
            humantime::format_duration(Duration::from_secs(eta.round() as u64)).to_string()
        };
        format!(
            "files: {} of {} done, {} failed, {} events; {:.1} files/s, {:.0} events/s; ETA {eta}",
            self.done,
            self.total,
            self.failed,
            self.events,
            self.done as f64 / secs,
            self.events as f64 / secs,
        )
    }

    fn report(&self) {
        progress::show(&self.line(), self.terminal);
    }

    fn finish(&self) {
        progress::end(self.terminal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_in_name_order() {
        let dir = std::env::temp_dir().join(format!("files-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for name in [
            "b/2.json",
            "b/1.json.gz",
            "a.json",
            "c/CloudTrail-Digest/d.json.gz",
        ] {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"{}").unwrap();
        }
        let mut files = Vec::new();
        walk(&dir, &mut files).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "a.json",
                "b/1.json.gz",
                "b/2.json",
                "c/CloudTrail-Digest/d.json.gz"
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn progress_counts_files_and_failures() {
        let mut progress = Progress::new(4);
        progress.file_done(10);
        progress.failed += 1;
        let line = progress.line();
        assert!(
            line.starts_with("files: 1 of 4 done, 1 failed, 10 events"),
            "{line}"
        );
    }
}
