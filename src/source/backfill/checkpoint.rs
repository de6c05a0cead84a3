//! Checkpoint: what a backfill has settled, in a file small whatever the bucket's size.
//!
//! Keys are listed in one ascending sequence ([`super::plan`]), so the file holds one key
//! (`done_through`: every key up to it settled), the few keys after it that settled while an
//! earlier one was still in flight (at most the window of objects in flight), and the keys
//! that failed for good (at most [`MAX_FAILED_KEPT`], with their total). It also names the job
//! (bucket, prefixes, days, object format) so that it is never applied to another backfill.
//!
//! Written atomically: to `<path>.tmp`, synced, renamed over `<path>`, and the folder synced,
//! so a crash at any moment leaves the old file or the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Failed keys kept in the file; more are only counted.
pub const MAX_FAILED_KEPT: usize = 1000;
const VERSION: u32 = 1;

/// Which backfill a checkpoint belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub bucket: String,
    /// Normalized (sorted, none covering another).
    pub prefixes: Vec<String>,
    pub since: Option<String>,
    /// The last day, as resolved at the first run (`--until`, or that day with `--since`).
    pub until: Option<String>,
    pub object_format: String,
    /// The queue the objects are sent to (`--enqueue`); none when this run reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueue: Option<String>,
}

impl Job {
    /// Whether a run asking for `asked` may resume this job: the same job, or the same with
    /// `--until` left out (the first run's resolved day is kept).
    pub fn admits(&self, asked: &Job) -> bool {
        let until_ok = asked.until.is_none() || asked.until == self.until;
        until_ok
            && Job {
                until: self.until.clone(),
                ..asked.clone()
            } == *self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub job: Job,
    /// Every key up to this one, in listing order, settled.
    pub done_through: Option<String>,
    /// Keys after `done_through` that settled too.
    pub done_after: Vec<String>,
    /// Keys that failed for good (the first [`MAX_FAILED_KEPT`]).
    pub failed: Vec<String>,
    pub failed_total: u64,
    /// Objects and events settled over every run of this job.
    pub objects_done: u64,
    pub events_done: u64,
    /// Every listed object settled.
    pub complete: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read the checkpoint {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write the checkpoint {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("the checkpoint {path} belongs to another backfill ({theirs}); give another --checkpoint, or delete it to start over")]
    OtherJob { path: String, theirs: String },
}

impl Checkpoint {
    pub fn new(job: Job) -> Self {
        Checkpoint {
            version: VERSION,
            job,
            done_through: None,
            done_after: Vec::new(),
            failed: Vec::new(),
            failed_total: 0,
            objects_done: 0,
            events_done: 0,
            complete: false,
        }
    }

    /// The checkpoint at `path` for `job`: a fresh one when there is no file, the stored one
    /// when it belongs to this job, an error otherwise.
    pub fn load(path: &Path, job: Job) -> Result<Checkpoint, CheckpointError> {
        let read_error = |reason: String| CheckpointError::Read {
            path: path.display().to_string(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Checkpoint::new(job))
            }
            Err(err) => return Err(read_error(err.to_string())),
        };
        let stored: Checkpoint =
            serde_json::from_str(&text).map_err(|e| read_error(e.to_string()))?;
        if stored.version != VERSION {
            return Err(read_error(format!("unknown version {}", stored.version)));
        }
        if !stored.job.admits(&job) {
            return Err(CheckpointError::OtherJob {
                path: path.display().to_string(),
                theirs: serde_json::to_string(&stored.job).unwrap_or_default(),
            });
        }
        Ok(stored)
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn store(&self, path: &Path) -> Result<(), CheckpointError> {
        let error = |err: std::io::Error| CheckpointError::Write {
            path: path.display().to_string(),
            reason: err.to_string(),
        };
        let mut tmp = PathBuf::from(path);
        tmp.as_mut_os_string().push(".tmp");
        let mut file = std::fs::File::create(&tmp).map_err(error)?;
        serde_json::to_writer_pretty(&mut file, self).map_err(|e| error(e.into()))?;
        file.write_all(b"\n").map_err(error)?;
        file.sync_all().map_err(error)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(error)?;
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(folder)
            .and_then(|f| f.sync_all())
            .map_err(error)
    }

    /// Notes a key that failed for good.
    pub fn add_failed(&mut self, key: &str) {
        self.failed_total += 1;
        if self.failed.len() < MAX_FAILED_KEPT {
            self.failed.push(key.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            bucket: "b".into(),
            prefixes: vec!["AWSLogs/".into()],
            since: Some("2024-05-01".into()),
            until: Some("2024-05-02".into()),
            object_format: "auto".into(),
            enqueue: None,
        }
    }

    #[test]
    fn stored_and_loaded_atomically_for_the_same_job_only() {
        let dir = std::env::temp_dir().join(format!("ct-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        let fresh = Checkpoint::load(&path, job()).unwrap();
        assert_eq!(fresh, Checkpoint::new(job()));

        let mut checkpoint = fresh;
        checkpoint.done_through = Some("AWSLogs/k1".into());
        checkpoint.done_after = vec!["AWSLogs/k3".into()];
        checkpoint.add_failed("AWSLogs/k0");
        checkpoint.store(&path).unwrap();
        assert!(!dir.join("state.json.tmp").exists());
        assert_eq!(Checkpoint::load(&path, job()).unwrap(), checkpoint);

        let without_until = Job {
            until: None,
            ..job()
        };
        assert!(Checkpoint::load(&path, without_until).is_ok());
        let other = Job {
            prefixes: vec!["other/".into()],
            ..job()
        };
        let err = Checkpoint::load(&path, other).unwrap_err();
        assert!(matches!(err, CheckpointError::OtherJob { .. }), "{err}");
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            Checkpoint::load(&path, job()),
            Err(CheckpointError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
