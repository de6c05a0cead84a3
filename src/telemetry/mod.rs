//! Telemetry: what the worker counts ([`stats`]) and how it is served ([`metrics`]:
//! Prometheus `/metrics`, `/healthz`, `/readyz`). Logs are `tracing` events, set up in `main`.

pub mod metrics;
pub mod stats;

pub use stats::{Counters, Stats, Summary};
