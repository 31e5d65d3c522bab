//! Sweeps over a dataset: every prompt's sweep (its bases, variants and grid) merged into one
//! batched sweep, each base with its prompt's metric, so that the engine packs the variants
//! of all prompts into the same passes (each prompt's clean prefix still shared). Prompts of
//! different token lengths run as one batched sweep per length, and the prompts of one
//! length in chunks whose base runs hold at most `max_rows` rows, so that memory does not
//! grow with the dataset. The results are means over the prompts, with every prompt's own
//! report kept.

use super::engine::{
    run_naive_per_base, run_sweep_per_base, Base, SweepOptions, SweepOutcome, SweepStats, Variant,
};
use super::metric::Metric;
use super::sweeps::{Reading, ResultRow, SweepReport, SweepSpec};
use crate::error::{HookLensError, Result};
use crate::model::Model;

/// A dataset sweep's result.
#[derive(Clone, Debug)]
pub struct DatasetReport {
    /// The mean over prompts of the clean metric.
    pub clean: f64,
    /// The mean over prompts of the corrupted metric, when the sweep has corrupted runs.
    pub corrupted: Option<f64>,
    /// One row per grid entry: `value` the mean over prompts; `delta` the mean value minus
    /// the mean clean value; `recovery` from the dataset means (TL's metric on a batch).
    pub results: Vec<ResultRow>,
    /// Each prompt's own report, in dataset order.
    pub per_prompt: Vec<SweepReport>,
    /// Work of all the batched sweeps together (`seconds` is the sum, `peak` the largest).
    pub stats: SweepStats,
}

/// Runs the sweeps `specs[i]` (prompt i's, with metric `metrics[i]`) as one batched sweep per
/// token length (`naive`: one full forward per variant instead). Every spec must have the same
/// grid (per-position sites need prompts of one length).
pub fn run_dataset(
    model: &Model,
    specs: &[SweepSpec],
    metrics: &[Metric],
    naive: bool,
    opts: &SweepOptions<'_>,
) -> Result<DatasetReport> {
    check_specs(specs, metrics)?;
    let mut lengths: Vec<usize> = specs.iter().map(spec_len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let mut per_prompt: Vec<Option<SweepReport>> = vec![None; specs.len()];
    let mut stats = SweepStats::default();
    // One chunk reports the engine's own progress; several report chunks done.
    let (mut done, total) = (0, chunk_count(specs, &lengths, opts.max_rows));
    let per_chunk = opts.progress.filter(|_| total > 1);
    let opts = &SweepOptions {
        progress: opts.progress.filter(|_| total == 1),
        ..*opts
    };
    for len in lengths {
        let group: Vec<usize> = (0..specs.len())
            .filter(|&i| spec_len(&specs[i]) == len)
            .collect();
        for chunk in base_chunks(specs, &group, opts.max_rows) {
            let reports = run_group(model, specs, metrics, &chunk, naive, opts)?;
            // Every report of the chunk carries the chunk's pass count.
            stats.passes += reports.first().map_or(0, |r| r.outcome.stats.passes);
            for (i, report) in chunk.into_iter().zip(reports) {
                add_stats(&mut stats, &report.outcome.stats);
                per_prompt[i] = Some(report);
            }
            if let Some(progress) = per_chunk {
                done += 1;
                progress(done, total);
            }
        }
    }
    let per_prompt: Vec<SweepReport> = per_prompt.into_iter().flatten().collect();
    Ok(dataset_means(&specs[0], per_prompt, stats))
}

/// Consecutive prompts of `group` whose base runs together hold at most `max_rows` rows
/// (bases x tokens; one prompt at least), so that the base runs kept for a chunk's variants
/// (keys, values, residuals, logits) are bounded by the row budget, not by the dataset.
fn base_chunks(specs: &[SweepSpec], group: &[usize], max_rows: usize) -> Vec<Vec<usize>> {
    let rows = |i: usize| specs[i].bases.len() * spec_len(&specs[i]);
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for &i in group {
        match out.last_mut() {
            Some(chunk) if used + rows(i) <= max_rows => chunk.push(i),
            _ => {
                out.push(vec![i]);
                used = 0;
            }
        }
        used += rows(i);
    }
    out
}

/// How many chunks [`base_chunks`] makes over every length.
fn chunk_count(specs: &[SweepSpec], lengths: &[usize], max_rows: usize) -> usize {
    (lengths.iter())
        .map(|&len| {
            let group: Vec<usize> = (0..specs.len())
                .filter(|&i| spec_len(&specs[i]) == len)
                .collect();
            base_chunks(specs, &group, max_rows).len()
        })
        .sum()
}

/// Token length of a spec's prompts.
fn spec_len(spec: &SweepSpec) -> usize {
    spec.bases.first().map_or(0, |b| b.tokens.len())
}

/// One spec per metric, all with the same grid, none reading KL (its clean run is per prompt).
fn check_specs(specs: &[SweepSpec], metrics: &[Metric]) -> Result<()> {
    let Some(first) = specs.first() else {
        return Err(HookLensError::input("the dataset has no prompts"));
    };
    if specs.len() != metrics.len() {
        return Err(HookLensError::input(format!(
            "{} sweeps but {} metrics",
            specs.len(),
            metrics.len()
        )));
    }
    if metrics.contains(&Metric::KlToClean) {
        return Err(HookLensError::input(
            "the kl metric compares with one clean run; use logprob, prob or logit-diff over a dataset",
        ));
    }
    if let Some(i) = specs.iter().position(|s| s.entries != first.entries) {
        return Err(HookLensError::input(format!(
            "dataset row {} has {} tokens but row 1 has {}: per-position sites need all prompts (pairs) of equal token length",
            i + 1,
            spec_len(&specs[i]),
            spec_len(first)
        )));
    }
    Ok(())
}

/// The prompts `group` (all of one length) as one batched sweep; their reports in order.
fn run_group(
    model: &Model,
    specs: &[SweepSpec],
    metrics: &[Metric],
    group: &[usize],
    naive: bool,
    opts: &SweepOptions<'_>,
) -> Result<Vec<SweepReport>> {
    let (mut bases, mut variants, mut base_metrics) = (Vec::new(), Vec::new(), Vec::new());
    let mut spans = Vec::new(); // (first base, first variant) of each prompt
    for &i in group {
        let spec = &specs[i];
        spans.push((bases.len(), variants.len()));
        let offset = bases.len();
        bases.extend(spec.bases.iter().cloned());
        base_metrics.extend(std::iter::repeat_n(metrics[i].clone(), spec.bases.len()));
        variants.extend(spec.variants.iter().map(|v| Variant {
            base: v.base + offset,
            interventions: v.interventions.clone(),
        }));
    }
    let merged = SweepOptions {
        max_rows: opts.max_rows,
        clean_base: specs[group[0]].clean_base,
        progress: opts.progress,
    };
    let outcome = if naive {
        run_naive_per_base(model, &bases, &variants, &base_metrics, &merged)?
    } else {
        run_sweep_per_base(model, &bases, &variants, &base_metrics, &merged)?
    };
    Ok(split(specs, group, &spans, &bases, &outcome))
}

/// Each prompt's part of a merged outcome, summarized by its own spec.
fn split(
    specs: &[SweepSpec],
    group: &[usize],
    spans: &[(usize, usize)],
    bases: &[Base],
    outcome: &SweepOutcome,
) -> Vec<SweepReport> {
    let share = 1.0 / group.len() as f64;
    (group.iter().zip(spans))
        .map(|(&i, &(b0, v0))| {
            let spec = &specs[i];
            let (nb, nv) = (spec.bases.len(), spec.variants.len());
            debug_assert!(b0 + nb <= bases.len());
            // The group's passes; the prompt's share of its work and time.
            let stats = SweepStats {
                variants: nv,
                passes: outcome.stats.passes,
                flops: outcome.stats.flops * share,
                seconds: outcome.stats.seconds * share,
                peak_arena_bytes: outcome.stats.peak_arena_bytes,
                peak_base_bytes: outcome.stats.peak_base_bytes,
            };
            spec.summarize(SweepOutcome {
                base_values: outcome.base_values[b0..b0 + nb].to_vec(),
                values: outcome.values[v0..v0 + nv].to_vec(),
                stats,
            })
        })
        .collect()
}

/// Adds one prompt's share of a group's work (but not the group's passes, counted once).
fn add_stats(total: &mut SweepStats, part: &SweepStats) {
    total.variants += part.variants;
    total.flops += part.flops;
    total.seconds += part.seconds;
    total.peak_arena_bytes = total.peak_arena_bytes.max(part.peak_arena_bytes);
    total.peak_base_bytes = total.peak_base_bytes.max(part.peak_base_bytes);
}

/// Means over prompts of every entry, and the readings from the means.
fn dataset_means(
    spec: &SweepSpec,
    per_prompt: Vec<SweepReport>,
    stats: SweepStats,
) -> DatasetReport {
    let n = per_prompt.len() as f64;
    let mean = |f: &dyn Fn(&SweepReport) -> f64| per_prompt.iter().map(f).sum::<f64>() / n;
    let clean = mean(&|r| r.clean);
    let corrupted = per_prompt[0]
        .corrupted
        .map(|_| mean(&|r| r.corrupted.unwrap_or(f64::NAN)));
    let results = (0..per_prompt[0].results.len())
        .map(|e| {
            let first = &per_prompt[0].results[e];
            let value = mean(&|r| r.results[e].value);
            let (delta, recovery) = match (spec.reading, corrupted) {
                (Reading::Recovery, Some(c)) => (None, Some((value - c) / (clean - c))),
                _ => (Some(value - clean), None),
            };
            ResultRow {
                value,
                delta,
                recovery,
                ..first.clone()
            }
        })
        .collect();
    DatasetReport {
        clean,
        corrupted,
        results,
        per_prompt,
        stats,
    }
}
