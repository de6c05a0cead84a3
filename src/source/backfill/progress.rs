//! Progress: one line saying how far a backfill is (objects and events done, rates, ETA),
//! rewritten in place every second on a terminal, logged every five seconds otherwise.
//!
//! The ETA comes from the objects listed and not yet done once the listing is over; before
//! that, from the share of units (day folders) listed so far, when there are several.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::checkpoint::Checkpoint;
use crate::telemetry::Stats;

#[derive(Debug)]
pub struct Progress {
    started: Instant,
    terminal: bool,
    total_units: usize,
    /// Units a checkpoint had already finished, plus those listed in this run.
    units_listed: usize,
    units_at_start: usize,
    objects: u64,
    events: u64,
    /// Objects are sent to a queue (`--enqueue`), not read: no events to count.
    enqueuing: bool,
}

impl Progress {
    pub fn new(total_units: usize, units_done: usize) -> Self {
        Progress {
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            total_units,
            units_listed: units_done,
            units_at_start: units_done,
            objects: 0,
            events: 0,
            enqueuing: false,
        }
    }

    /// The progress of a backfill that sends its objects to a queue.
    pub fn enqueuing(total_units: usize, units_done: usize) -> Self {
        Progress {
            enqueuing: true,
            ..Progress::new(total_units, units_done)
        }
    }

    /// How often [`Progress::report`] is called.
    pub fn every(&self) -> Duration {
        if self.terminal {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        }
    }

    pub fn unit_done(&mut self) {
        self.units_listed += 1;
    }

    /// `objects` were accepted by the queue (`--enqueue`).
    pub fn enqueued(&mut self, objects: u64) {
        self.objects += objects;
    }

    pub fn object_done(&mut self, events: u64) {
        self.objects += 1;
        self.events += events;
    }

    pub fn report(&self, checkpoint: &Checkpoint, stats: &Stats) {
        let line = self.line(
            checkpoint,
            stats
                .counters::<super::listing::ListingCounters>()
                .objects_listed
                .get(),
        );
        show(&line, self.terminal);
    }

    /// The progress line; `listed` is the objects listed in this run.
    pub fn line(&self, checkpoint: &Checkpoint, listed: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let eta = self.eta(listed, secs).map_or_else(
            || "unknown (listing)".to_string(),
            |eta| humantime::format_duration(Duration::from_secs(eta.round() as u64)).to_string(),
        );
        if self.enqueuing {
            return format!(
                "backfill: {} objects listed, {} enqueued; {:.1} objects/s; units listed {}/{}; ETA {eta}",
                listed,
                checkpoint.objects_done,
                self.objects as f64 / secs,
                self.units_listed,
                self.total_units,
            );
        }
        format!(
            "backfill: {} objects done, {} failed, {} events; {:.1} objects/s, {:.0} events/s; units listed {}/{}; ETA {eta}",
            checkpoint.objects_done,
            checkpoint.failed_total,
            checkpoint.events_done,
            self.objects as f64 / secs,
            self.events as f64 / secs,
            self.units_listed,
            self.total_units,
        )
    }

    /// Seconds left, when they can be told.
    fn eta(&self, listed: u64, secs: f64) -> Option<f64> {
        if self.units_listed >= self.total_units {
            let left = listed.saturating_sub(self.objects) as f64;
            return (self.objects > 0 || left == 0.0)
                .then(|| left * secs / self.objects.max(1) as f64);
        }
        let run_units = self.units_listed - self.units_at_start;
        (run_units > 0 && self.total_units > 1).then(|| {
            let left = (self.total_units - self.units_listed) as f64;
            left * secs / run_units as f64
        })
    }

    /// Ends the line on a terminal.
    pub fn finish(&self) {
        end(self.terminal);
    }
}

/// Shows a progress line: rewritten in place on a terminal, logged otherwise.
pub fn show(line: &str, terminal: bool) {
    if terminal {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
    } else {
        info!("{line}");
    }
}

/// Ends a progress line on a terminal.
pub fn end(terminal: bool) {
    if terminal {
        let _ = writeln!(std::io::stderr());
    }
}

#[cfg(test)]
mod tests {
    use super::super::checkpoint::Job;
    use super::*;

    #[test]
    fn eta_from_units_then_from_objects_left() {
        let mut progress = Progress::new(10, 2);
        assert_eq!(
            progress.eta(0, 10.0),
            None,
            "nothing listed in this run yet"
        );
        progress.unit_done();
        progress.unit_done();
        assert_eq!(
            progress.eta(50, 10.0),
            Some(30.0),
            "6 units left at 2 per 10 s"
        );
        for _ in 4..10 {
            progress.unit_done();
        }
        for _ in 0..25 {
            progress.object_done(4);
        }
        assert_eq!(progress.eta(100, 10.0), Some(30.0), "75 left at 2.5 per s");
        let checkpoint = Checkpoint::new(Job {
            bucket: "b".into(),
            prefixes: vec![String::new()],
            since: None,
            until: None,
            object_format: "auto".into(),
            enqueue: None,
        });
        assert!(progress
            .line(&checkpoint, 100)
            .contains("units listed 10/10"));
    }
}
