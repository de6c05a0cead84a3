//! Sinks: where events go. Each sink batches the events it is handed, writes them, and
//! settles every one of them (see [`crate::pipeline`]).

pub mod elasticsearch;
