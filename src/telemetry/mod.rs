//! Telemetry: what the worker counts ([`stats`]: each stage registers its own counters) and
//! how it is served ([`metrics`]: Prometheus `/metrics`, `/healthz`, `/readyz`). Logs are
//! `tracing` events, set up in `main`. It names nothing above it.

pub mod metrics;
pub mod stats;

pub(crate) use stats::counters;
pub use stats::{Counter, Counters, Stats, Summary};
