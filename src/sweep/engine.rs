//! The sweep engine: many variants of a few base runs, batched so that no variant recomputes
//! what it shares with its base.
//!
//! 1. The base runs (clean, corrupted, noised, ...) run once, batched, keeping only each
//!    layer's residual input and keys/values, the final residual and the logits.
//! 2. Variants are grouped by the first layer they touch and continue from their base's
//!    residual there, packed into batches bounded by a row budget.
//! 3. A variant whose interventions start at position `t` recomputes only positions `t..`:
//!    earlier positions keep the base's keys and values (causality leaves them unchanged).
//! 4. In the last block only the positions the metric reads get queries, MLP and logits.
//!
//! [`run_naive`] runs the same variants one full forward each; the two agree (tested).

use std::time::Instant;

use super::execute::sweep_on;
use super::flops::full_pass_flops;
use super::metric::Metric;
use crate::error::{HookLensError, Result};
use crate::hooks::intervention::Intervention;
use crate::model::arena::ArenaLens;
use crate::model::engine::with_engine;
use crate::model::input::{Input, ReturnType, RunOptions, TokenBatch};
use crate::model::Model;

/// A run that variants branch from: tokens plus interventions of its own (a corruption).
#[derive(Clone, Debug)]
pub struct Base {
    /// The token sequence.
    pub tokens: Vec<u32>,
    /// Interventions every variant of this base also carries.
    pub interventions: Vec<Intervention>,
}

/// One variant: a base and the interventions added to it.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Index into the bases.
    pub base: usize,
    /// Interventions on top of the base's.
    pub interventions: Vec<Intervention>,
}

/// Knobs of a sweep.
pub struct SweepOptions<'a> {
    /// Most packed rows in one batched pass (bounds memory for any number of variants).
    pub max_rows: usize,
    /// The base whose last-position distribution [`Metric::KlToClean`] compares with.
    pub clean_base: usize,
    /// Called as the sweep advances with (work done, total work); `done / total` is the
    /// fraction finished, and the last call has `done == total`. The naive loop counts whole
    /// variants; the batched engine counts rows x blocks (each variant's recomputed positions
    /// times the blocks it runs, plus one for its logits) and reports after every block of
    /// every pass, so a sweep that fits in one pass still advances smoothly.
    pub progress: Option<&'a dyn Fn(usize, usize)>,
}

impl Default for SweepOptions<'_> {
    fn default() -> Self {
        SweepOptions {
            max_rows: 4096,
            clean_base: 0,
            progress: None,
        }
    }
}

/// Work and memory a sweep used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepStats {
    /// Variants evaluated.
    pub variants: usize,
    /// Batched passes run (base pass included).
    pub passes: usize,
    /// Floating-point operations of the passes (multiply-add = 2).
    pub flops: f64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Largest activation arena of one pass, in bytes.
    pub peak_arena_bytes: usize,
    /// What the base runs keep for their variants (logits, each layer's residual input, the
    /// final residual, keys and values), in bytes: the largest of one batched sweep (of one
    /// chunk of a dataset). 0 for the naive loop, which keeps nothing between runs.
    pub peak_base_bytes: usize,
}

/// What a sweep returns.
#[derive(Clone, Debug)]
pub struct SweepOutcome {
    /// The metric on each base run.
    pub base_values: Vec<f64>,
    /// The metric on each variant, in input order.
    pub values: Vec<f64>,
    /// Work done.
    pub stats: SweepStats,
}

fn check_inputs(
    model: &Model,
    bases: &[Base],
    variants: &[Variant],
    metrics: &[Metric],
    clean_base: usize,
) -> Result<usize> {
    let cfg = model.config();
    for metric in metrics {
        metric.validate(cfg.d_vocab)?;
    }
    let Some(first) = bases.first() else {
        return Err(HookLensError::input("a sweep needs at least one base run"));
    };
    if metrics.len() != bases.len() {
        return Err(HookLensError::input(format!(
            "a sweep needs one metric per base run: {} metrics for {} bases",
            metrics.len(),
            bases.len()
        )));
    }
    let seq_len = first.tokens.len();
    if metrics
        .iter()
        .any(|m| m.positions(seq_len) != metrics[0].positions(seq_len))
    {
        return Err(HookLensError::input(
            "the metrics of one sweep must read the same positions (one kind of metric)",
        ));
    }
    if seq_len < 2 && metrics.contains(&Metric::Loss) {
        return Err(HookLensError::input(
            "the loss metric needs at least two tokens",
        ));
    }
    for b in bases {
        if b.tokens.len() != seq_len {
            return Err(HookLensError::input(format!(
                "all base runs of a sweep must have the same number of tokens ({} vs {seq_len})",
                b.tokens.len()
            )));
        }
    }
    if clean_base >= bases.len() {
        return Err(HookLensError::input(format!(
            "clean_base {clean_base} is not one of the {} base runs",
            bases.len()
        )));
    }
    if let Some(v) = variants.iter().find(|v| v.base >= bases.len()) {
        return Err(HookLensError::input(format!(
            "a variant refers to base run {} of {}",
            v.base,
            bases.len()
        )));
    }
    TokenBatch::single(first.tokens.clone())?.validate(cfg)?;
    Ok(seq_len)
}

/// Runs a sweep with the batched engine (planned in `plan.rs`, run in `execute.rs` on the
/// model's backend).
pub fn run_sweep(
    model: &Model,
    bases: &[Base],
    variants: &[Variant],
    metric: &Metric,
    opts: &SweepOptions<'_>,
) -> Result<SweepOutcome> {
    run_sweep_per_base(
        model,
        bases,
        variants,
        &vec![metric.clone(); bases.len()],
        opts,
    )
}

/// [`run_sweep`] with a metric per base run (a dataset's prompts each have their own target;
/// the metrics must be of one kind, so that they read the same positions).
pub fn run_sweep_per_base(
    model: &Model,
    bases: &[Base],
    variants: &[Variant],
    metrics: &[Metric],
    opts: &SweepOptions<'_>,
) -> Result<SweepOutcome> {
    let seq_len = check_inputs(model, bases, variants, metrics, opts.clean_base)?;
    let cfg = model.config();
    with_engine!(model.loaded(), |engine| {
        sweep_on(engine, cfg, (bases, variants), (metrics, opts), seq_len)
    })
}

/// The same sweep as one full forward per variant (the reference the engine must equal, and
/// the baseline its speed is measured against).
pub fn run_naive(
    model: &Model,
    bases: &[Base],
    variants: &[Variant],
    metric: &Metric,
    opts: &SweepOptions<'_>,
) -> Result<SweepOutcome> {
    run_naive_per_base(
        model,
        bases,
        variants,
        &vec![metric.clone(); bases.len()],
        opts,
    )
}

/// [`run_naive`] with a metric per base run.
pub fn run_naive_per_base(
    model: &Model,
    bases: &[Base],
    variants: &[Variant],
    metrics: &[Metric],
    opts: &SweepOptions<'_>,
) -> Result<SweepOutcome> {
    let started = Instant::now();
    let cfg = model.config();
    let seq_len = check_inputs(model, bases, variants, metrics, opts.clean_base)?;
    let vocab = cfg.d_vocab;
    let mut stats = SweepStats {
        variants: variants.len(),
        ..SweepStats::default()
    };
    let logits_of = |tokens: &[u32], ivs: &[&Intervention]| -> Result<Vec<f32>> {
        let batch = TokenBatch::single(tokens.to_vec())?;
        let pairs: Vec<(usize, Intervention)> = ivs.iter().map(|iv| (0, (*iv).clone())).collect();
        let (out, _) = model.run_with_interventions(
            Input::Tokens(&batch),
            None,
            None,
            &pairs,
            &RunOptions::returning(ReturnType::Logits),
        )?;
        out.logits
            .map(|t| t.data)
            .ok_or_else(|| HookLensError::input("no logits"))
    };
    let base_logits: Vec<Vec<f32>> = bases
        .iter()
        .map(|b| logits_of(&b.tokens, &b.interventions.iter().collect::<Vec<_>>()))
        .collect::<Result<_>>()?;
    let clean = base_logits[opts.clean_base][(seq_len - 1) * vocab..].to_vec();
    let eval = |l: &[f32], b: usize| {
        metrics[b].evaluate(
            |t| &l[t * vocab..(t + 1) * vocab],
            &bases[b].tokens,
            Some(&clean),
        )
    };
    let base_values = (0..bases.len()).map(|b| eval(&base_logits[b], b)).collect();
    let mut values = Vec::with_capacity(variants.len());
    for (i, v) in variants.iter().enumerate() {
        let b = &bases[v.base];
        let ivs: Vec<&Intervention> = b.interventions.iter().chain(&v.interventions).collect();
        values.push(eval(&logits_of(&b.tokens, &ivs)?, v.base));
        if let Some(progress) = opts.progress {
            progress(i + 1, variants.len());
        }
    }
    let per_pass = full_pass_flops(cfg, 1, seq_len);
    stats.passes = bases.len() + variants.len();
    stats.flops = per_pass * stats.passes as f64;
    stats.peak_arena_bytes = ArenaLens::for_pass(cfg, seq_len, 1, seq_len).bytes();
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(SweepOutcome {
        base_values,
        values,
        stats,
    })
}
