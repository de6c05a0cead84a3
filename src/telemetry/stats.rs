//! Stats: what the worker counts, and the live state `/metrics` and `/readyz` report.
//!
//! Each stage declares its own counters with [`counters!`] (name and help text, once) and
//! takes them from the shared [`Stats`] with [`Stats::counters`], which registers the group
//! on first use; `/metrics` serves every registered counter as
//! `cloudtrail_ingest_<name>_total`, and [`Stats::snapshot`] returns them all as a
//! [`Summary`]. A stage with labelled metrics (matches per rule, lag per partition) registers
//! a collector of its own ([`Stats::collect`]). What every source shares stays here: in-flight
//! gauges, bulk latency, the documents written and the newest event time, and whether the
//! worker started and the cluster and source answered.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// One monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the value (tests of what the counters render).
    #[cfg(test)]
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

/// A stage's group of counters, declared with [`counters!`].
pub trait Counters: Any + Send + Sync + Default + std::fmt::Debug {
    /// (name, help, counter) of every counter of the group, in declaration order.
    fn all(&self) -> Vec<(&'static str, &'static str, &Counter)>;
}

/// Declares a stage's counters once: `counters! { pub struct SinkCounters { name: "help", } }`
/// makes the struct (one [`Counter`] field each) and its [`Counters`] list.
macro_rules! counters {
    ($(#[$meta:meta])* $vis:vis struct $group:ident { $($name:ident: $help:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $group {
            $(#[doc = $help] pub $name: $crate::telemetry::Counter,)*
        }

        impl $crate::telemetry::Counters for $group {
            fn all(&self) -> Vec<(&'static str, &'static str, &$crate::telemetry::Counter)> {
                vec![$((stringify!($name), $help, &self.$name),)*]
            }
        }
    };
}
pub(crate) use counters;

/// Every counter's value at one moment, by name. `Debug` shows `Summary { name: value, .. }`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Summary(BTreeMap<&'static str, u64>);

impl std::fmt::Debug for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = f.debug_struct("Summary");
        for (name, value) in &self.0 {
            shown.field(name, value);
        }
        shown.finish()
    }
}

impl Summary {
    /// The value of counter `name`, if a stage registered it.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }
}

/// `summary["documents_indexed"]`; a name no stage registered is a mistake and panics.
impl std::ops::Index<&str> for Summary {
    type Output = u64;
    fn index(&self, name: &str) -> &u64 {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("no counter named {name} is registered"))
    }
}

/// Latency of bulk requests, in seconds (10 ms to about 40 s).
#[derive(Debug)]
pub struct LatencyHistogram(pub Histogram);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram(Histogram::new(exponential_buckets(0.01, 2.0, 13)))
    }
}

/// A registered group: the same allocation seen as itself (to hand out) and as a list.
struct Group {
    id: TypeId,
    any: Arc<dyn Any + Send + Sync>,
    list: Arc<dyn CounterList>,
}

trait CounterList: Send + Sync {
    fn list(&self) -> Vec<(&'static str, &'static str, &Counter)>;
}

impl<C: Counters> CounterList for C {
    fn list(&self) -> Vec<(&'static str, &'static str, &Counter)> {
        self.all()
    }
}

#[derive(Debug)]
pub struct Stats {
    groups: Mutex<Vec<Group>>,
    collectors: Mutex<Vec<Arc<dyn Collector>>>,
    pub bulk_latency: LatencyHistogram,
    pub messages_in_flight: AtomicI64,
    pub bulk_in_flight: AtomicI64,
    /// Documents of the sources written (new or already there): what the silence alarm
    /// watches. Documents a stage added (alerts) and dead-letter entries are not counted.
    written: AtomicU64,
    /// Unix seconds of the newest event time indexed so far; 0 before the first.
    pub newest_event_secs: AtomicI64,
    /// The worker passed its start-up checks and is running.
    pub started: AtomicBool,
    /// The last bulk request got an answer from the cluster.
    pub cluster_reachable: AtomicBool,
    /// The cluster did not refuse the credentials on the last bulk request.
    pub cluster_authorized: AtomicBool,
    /// The source answered on its last request (SQS: ReceiveMessage; Kafka: the brokers).
    pub source_reachable: AtomicBool,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.list().iter().map(|(name, _, _)| name))
            .finish()
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            groups: Mutex::new(Vec::new()),
            collectors: Mutex::new(Vec::new()),
            bulk_latency: LatencyHistogram::default(),
            messages_in_flight: AtomicI64::new(0),
            bulk_in_flight: AtomicI64::new(0),
            written: AtomicU64::new(0),
            newest_event_secs: AtomicI64::new(0),
            started: AtomicBool::new(false),
            cluster_reachable: AtomicBool::new(false),
            cluster_authorized: AtomicBool::new(true),
            source_reachable: AtomicBool::new(false),
        }
    }
}

impl Stats {
    /// The group `C` of these stats, registered (and so served at `/metrics`) on first use.
    pub fn counters<C: Counters>(&self) -> Arc<C> {
        let mut groups = self.groups.lock().expect("never poisoned");
        let id = TypeId::of::<C>();
        if let Some(group) = groups.iter().find(|g| g.id == id) {
            return group
                .any
                .clone()
                .downcast::<C>()
                .expect("a group is stored under its own type");
        }
        let group = Arc::new(C::default());
        groups.push(Group {
            id,
            any: group.clone(),
            list: group.clone(),
        });
        group
    }

    /// Serves `collector`'s metrics at `/metrics` too (labelled families of a stage).
    pub fn collect(&self, collector: Arc<dyn Collector>) {
        self.collectors
            .lock()
            .expect("never poisoned")
            .push(collector);
    }

    /// (name, help, value) of every registered counter, in registration order.
    pub fn counter_values(&self) -> Vec<(&'static str, &'static str, u64)> {
        let groups = self.groups.lock().expect("never poisoned");
        groups
            .iter()
            .flat_map(|g| g.list.list().into_iter().map(|(n, h, c)| (n, h, c.get())))
            .collect()
    }

    /// The collectors stages registered.
    pub fn collectors(&self) -> Vec<Arc<dyn Collector>> {
        self.collectors.lock().expect("never poisoned").clone()
    }

    pub fn snapshot(&self) -> Summary {
        Summary(
            self.counter_values()
                .into_iter()
                .map(|(name, _, value)| (name, value))
                .collect(),
        )
    }

    /// `n` documents of the sources were written, the newest of them placed at `newest`
    /// (Unix seconds).
    pub fn wrote(&self, n: u64, newest: Option<i64>) {
        self.written.fetch_add(n, Ordering::Relaxed);
        if let Some(secs) = newest {
            self.newest_event_secs.fetch_max(secs, Ordering::Relaxed);
        }
    }

    /// Documents of the sources written so far (see [`Stats::wrote`]).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Counts one unit in `gauge` until the guard is dropped.
    pub fn enter<'a>(&'a self, gauge: &'a AtomicI64) -> GaugeGuard<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }

    pub fn set(&self, flag: &AtomicBool, value: bool) {
        flag.store(value, Ordering::Relaxed);
    }

    pub fn get(&self, flag: &AtomicBool) -> bool {
        flag.load(Ordering::Relaxed)
    }

    /// Ready: started, the cluster answered and accepted the credentials, and the source
    /// answered, each on its last request.
    pub fn ready(&self) -> bool {
        self.get(&self.started)
            && self.get(&self.cluster_reachable)
            && self.get(&self.cluster_authorized)
            && self.get(&self.source_reachable)
    }
}

/// See [`Stats::enter`].
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::telemetry::counters! {
        struct Mine {
            apples: "apples seen",
            pears: "pears seen",
        }
    }

    #[test]
    fn a_group_registers_once_and_shows_in_the_summary() {
        let stats = Stats::default();
        assert_eq!(stats.snapshot(), Summary::default());
        stats.counters::<Mine>().apples.add(2);
        stats.counters::<Mine>().pears.add(1);
        let summary = stats.snapshot();
        assert_eq!(summary["apples"], 2);
        assert_eq!(summary["pears"], 1);
        assert_eq!(summary.get("plums"), None);
        assert_eq!(stats.counter_values().len(), 2);
        assert_eq!(format!("{summary:?}"), "Summary { apples: 2, pears: 1 }");
    }

    #[test]
    fn written_documents_move_the_newest_time_forward_only() {
        let stats = Stats::default();
        stats.wrote(3, Some(100));
        stats.wrote(1, Some(50));
        assert_eq!(stats.written(), 4);
        assert_eq!(stats.newest_event_secs.load(Ordering::Relaxed), 100);
    }
}
