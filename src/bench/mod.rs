//! `hooklens bench` as a library: what every kind of intervention costs, timed and counted.
//!
//! [`run_bench`] times each [`Case`] at each shape (one warm-up each, then `reps` timed
//! rounds that run every case of the shape once, interleaved: median, min, max), counts the bytes each run copied ([`crate::copies`]) and the heap
//! peak of the case (when the [`heap::CountingAllocator`] is installed), and reports the
//! ratio to the plain pass of the same shape. Every timed run ends with its logits on the
//! host, so on a GPU it waits for the device: the times are device-synchronised.

mod cases;
pub mod heap;
mod machine;
mod python;
mod run;
mod slots;

use std::path::PathBuf;

use serde::Serialize;

pub use cases::Case;
pub use machine::{Machine, Versions};
pub use run::{run_bench, tokens_for};
pub use slots::{measure_slot_costs, SlotCosts};

use crate::copies::CopyStats;

/// What to benchmark.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    /// (batch, tokens) shapes of the pass cases.
    pub shapes: Vec<(usize, usize)>,
    /// The cases, run in [`Case::ALL`]'s order.
    pub cases: Vec<Case>,
    /// Timed runs per pass case, after one warm-up.
    pub reps: usize,
    /// Timed runs per sweep (they follow the pass cases, so they are warm).
    pub sweep_reps: usize,
    /// The sweeps' prompt length (one prompt).
    pub sweep_tokens: usize,
    /// The Python interpreter for `python_zero_head`.
    pub python: PathBuf,
}

impl Default for BenchPlan {
    fn default() -> Self {
        BenchPlan {
            shapes: vec![(1, 16), (2, 64)],
            cases: Case::ALL.to_vec(),
            reps: 3,
            sweep_reps: 1,
            sweep_tokens: 16,
            python: PathBuf::from("python3"),
        }
    }
}

/// One measured case at one shape.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// The case's name.
    pub case: String,
    /// The device it ran on (`cpu`, `cuda:0`).
    pub device: String,
    /// BATCHxTOKENS.
    pub shape: String,
    /// Median milliseconds per run.
    pub median_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Slowest run.
    pub max_ms: f64,
    /// Timed runs.
    pub runs: usize,
    /// Time over the plain pass's at the same shape: the median over the timed rounds of
    /// the two runs' ratio within a round (drift between rounds cancels); for the Python case
    /// and the sweeps, the median over the plain row's median (a sweep: over a plain pass of
    /// its prompt); `None` without a plain row.
    pub ratio: Option<f64>,
    /// The floating-point work of one run in GFLOP (matrix products and attention, the sweep
    /// engine's count), for `plain` and `plain_last`; `None` for the other cases.
    pub gflop: Option<f64>,
    /// Bytes one run copied (the last timed run); `None` when another process ran it.
    pub bytes_copied: Option<u64>,
    /// The same bytes by purpose.
    pub copies: Option<CopyStats>,
    /// The most heap bytes the case held at once beyond what was in use when it started
    /// (its pass buffers are freed first, so they count); `None` without the counting
    /// allocator, or when another process ran it.
    pub peak_bytes: Option<u64>,
}

/// A case that did not run, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// The case's name.
    pub case: String,
    /// Why it did not run.
    pub reason: String,
}

/// Everything a benchmark measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Where it ran.
    pub machine: Machine,
    /// The model's source.
    pub model: String,
    /// What one hook slot costs per fire, without kernels.
    pub per_slot: SlotCosts,
    /// The measured rows, in running order.
    pub rows: Vec<BenchRow>,
    /// Cases that did not run.
    pub skipped: Vec<Skipped>,
}

/// What [`run_bench`] reports as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Before the first case: the rows to run and the estimated seconds.
    Estimate {
        /// Rows to run.
        rows: usize,
        /// Estimated seconds for all of them (from one plain pass per shape).
        seconds: f64,
    },
    /// A shape's cases are starting: one warm-up each, then interleaved timed rounds (each
    /// round runs every case once, so drift on the machine hits them alike).
    Group {
        /// BATCHxTOKENS.
        shape: &'a str,
        /// The cases, in running order.
        cases: &'a [Case],
        /// Timed rounds.
        rounds: usize,
    },
    /// A row finished.
    Done {
        /// Its index, from 0.
        index: usize,
        /// Rows in all.
        rows: usize,
        /// The row.
        row: &'a BenchRow,
    },
    /// A case was skipped.
    Skipped(&'a Skipped),
}
