//! Pipelines: the file format, the delivery loop (source → sink → flush → commit), the
//! scheduler, and the checks `weir check` runs.

pub mod config;
mod cpu_budget;
mod dead_letter;
mod delivery;
mod fit;
mod meter;
mod runner;
pub mod schema;
mod shutdown;
pub mod spec;

pub use config::{
    DeadLetterTarget, Endpoint, FileResolver, Pipeline, PipelineFile, Resolver, refuse_overlaps,
    resolve,
};
pub use cpu_budget::{CpuBudget, thread_cpu};
pub use dead_letter::latest as latest_dead_letters;
pub use delivery::Tap;
pub use fit::{Inspected, Misfit, Side, fit, inspect};
pub use meter::{GuestCounter, Meter, MeterReading, now_ms};
pub use runner::{
    RunOptions, Status, Stream, Summary, discover, prepare, prepare_source, run, run_metered,
    run_one, source_opens_at,
};
pub use shutdown::Shutdown;
pub use spec::{Access, PipelineSpec};
