//! Batched intervention sweeps: head ablation, activation patching, causal tracing.

pub mod dataset;
pub mod dataset_mean;
pub mod dataset_sweep;
pub mod document;
pub mod engine;
pub(crate) mod execute;
pub(crate) mod flops;
pub mod intervene;
pub mod metric;
pub mod noise;
mod par;
mod plan;
pub mod sweeps;

pub use dataset::{parse_dataset, read_dataset, DatasetKind, DatasetRow};
pub use dataset_mean::{dataset_mean_values, MeanOver};
pub use dataset_sweep::{run_dataset, DatasetReport};
pub use document::{report_document, SweepContext};
pub use engine::{
    run_naive, run_naive_per_base, run_sweep, run_sweep_per_base, Base, SweepOptions, SweepOutcome,
    SweepStats, Variant,
};
pub use intervene::{
    intervene_dataset, parse_interventions, read_interventions, InterventionReport,
    InterventionValue,
};
pub use metric::Metric;
pub use sweeps::{
    ablation_sweep, patching_sweep, trace_sweep, AblationMethod, AblationTarget, Entry, PatchSite,
    Reading, ResultRow, SweepReport, SweepSpec, TraceKind, TraceSettings,
};
