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

use super::metric::Metric;
use crate::error::{HookLensError, Result};
use crate::hooks::intervention::{Intervention, ResolvedIntervention};
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::registry::SlotTable;
use crate::hooks::{HookSelector, NamesFilter};
use crate::model::config::{ModelConfig, PositionKind};
use crate::model::forward::{run_pass, Joiner, KvPrefix, LogitRows, PassInput, PassPlan};
use crate::model::input::{Input, ReturnType, RunOptions, TokenBatch};
use crate::model::layout::RowLayout;
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

/// Where a variant starts: 0 = at the embedding, L + 1 = at block L, n_layers + 1 = at the
/// final norm.
fn stage_of(point: &HookPoint, n_layers: usize) -> usize {
    match (point.kind, point.layer) {
        (HookKind::Embed | HookKind::PosEmbed, _) => 0,
        (HookKind::LnFinalScale | HookKind::LnFinalNormalized | HookKind::Unembed, _) => {
            n_layers + 1
        }
        (_, layer) => layer.unwrap_or(0) + 1,
    }
}

/// FLOPs of one pass over `rows` rows of `seq_len`-token sequences for `layers` blocks, with
/// `logit_rows` rows unembedded.
fn pass_flops(
    cfg: &ModelConfig,
    rows: usize,
    layers: usize,
    logit_rows: usize,
    seq_len: usize,
) -> f64 {
    let (d, q, kv) = (
        cfg.d_model,
        cfg.n_heads * cfg.d_head,
        cfg.n_kv_heads * cfg.d_head,
    );
    let mlp_mats = if cfg.gated_mlp() { 3 } else { 2 };
    let per_row = 2 * d * (q + 2 * kv) + 2 * q * d + 2 * mlp_mats * d * cfg.d_mlp;
    // Attention: scores and mixing over seq_len / 2 keys per query on average (causal).
    let attn = 2 * q * seq_len;
    (layers * rows * (per_row + attn)) as f64 + (2 * logit_rows * d * cfg.d_vocab) as f64
}

/// Bytes of the activation arena for a pass.
fn arena_bytes(cfg: &ModelConfig, rows: usize, seqs: usize, seq_len: usize) -> usize {
    let (d, q, kv) = (
        cfg.d_model,
        cfg.n_heads * cfg.d_head,
        cfg.n_kv_heads * cfg.d_head,
    );
    let per_row = 4 * d + 2 * q + 2 * kv + cfg.n_heads * seq_len + 2 * cfg.d_mlp + 1;
    4 * (rows * per_row + 2 * seqs * seq_len * kv)
}

/// What the base pass keeps.
struct BaseRuns {
    /// Logits at every position. // [bases][seq_len * d_vocab]
    logits: Vec<Vec<f32>>,
    /// Residual entering each block. // [layer][bases * seq_len * d_model]
    resid_pre: Vec<Vec<f32>>,
    /// Residual after the last block. // [bases * seq_len * d_model]
    resid_final: Vec<f32>,
    kv: KvPrefix,
}

fn check_inputs(
    model: &Model,
    bases: &[Base],
    variants: &[Variant],
    metric: &Metric,
    clean_base: usize,
) -> Result<usize> {
    let cfg = model.config();
    metric.validate(cfg.d_vocab)?;
    let Some(first) = bases.first() else {
        return Err(HookLensError::input("a sweep needs at least one base run"));
    };
    let seq_len = first.tokens.len();
    if seq_len < 2 && *metric == Metric::Loss {
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

fn run_bases(model: &Model, bases: &[Base], stats: &mut SweepStats) -> Result<BaseRuns> {
    let cfg = model.config();
    let n = cfg.n_layers;
    let rows: Vec<Vec<u32>> = bases.iter().map(|b| b.tokens.clone()).collect();
    let tokens = TokenBatch::from_rows(&rows)?;
    let seq_len = tokens.seq();
    let k_kind = match cfg.positions {
        PositionKind::Rotary { .. } => HookKind::RotK,
        PositionKind::Learned => HookKind::K,
    };
    let mut keep: Vec<HookSelector> = Vec::new();
    for l in 0..n {
        for kind in [HookKind::ResidPre, k_kind, HookKind::V] {
            keep.push(HookPoint::layer(kind, l).into());
        }
    }
    keep.push(HookPoint::layer(HookKind::ResidPost, n - 1).into());
    let interventions: Vec<(usize, Intervention)> = bases
        .iter()
        .enumerate()
        .flat_map(|(i, b)| b.interventions.iter().map(move |iv| (i, iv.clone())))
        .collect();
    let (out, cache) = model.run_with_interventions(
        Input::Tokens(&tokens),
        None,
        Some(&NamesFilter::Names(keep)),
        &interventions,
        &RunOptions::returning(ReturnType::Logits),
    )?;
    let cache = cache.ok_or_else(|| HookLensError::input("base pass returned no cache"))?;
    stats.passes += 1;
    stats.flops += pass_flops(
        cfg,
        tokens.batch() * seq_len,
        n,
        tokens.batch() * seq_len,
        seq_len,
    );
    stats.peak_arena_bytes = stats.peak_arena_bytes.max(arena_bytes(
        cfg,
        tokens.batch() * seq_len,
        tokens.batch(),
        seq_len,
    ));
    let take =
        |kind, l| -> Result<Vec<f32>> { Ok(cache.get(HookPoint::layer(kind, l))?.data.clone()) };
    let kv_width = cfg.n_kv_heads * cfg.d_head;
    let mut kv_bases = vec![Vec::with_capacity(n); bases.len()];
    let mut resid_pre = Vec::with_capacity(n);
    for l in 0..n {
        resid_pre.push(take(HookKind::ResidPre, l)?);
        let (k, v) = (take(k_kind, l)?, take(HookKind::V, l)?);
        let per = seq_len * kv_width;
        for (b, kvb) in kv_bases.iter_mut().enumerate() {
            kvb.push((
                k[b * per..(b + 1) * per].to_vec(),
                v[b * per..(b + 1) * per].to_vec(),
            ));
        }
    }
    let logits = out
        .logits
        .ok_or_else(|| HookLensError::input("base pass returned no logits"))?;
    let per = seq_len * cfg.d_vocab;
    Ok(BaseRuns {
        logits: (0..bases.len())
            .map(|b| logits.data[b * per..(b + 1) * per].to_vec())
            .collect(),
        resid_pre,
        resid_final: take(HookKind::ResidPost, n - 1)?,
        kv: KvPrefix {
            bases: kv_bases,
            seq_base: Vec::new(),
        },
    })
}

/// Progress units of variant `p` once blocks `..through` have run (`through = n`: the
/// whole variant, its logits included): its recomputed rows times the blocks it has run.
fn work_of(p: &Planned, seq_len: usize, n_layers: usize, through: usize) -> usize {
    let first_block = p.stage.saturating_sub(1);
    let blocks = if through >= n_layers {
        n_layers.saturating_sub(first_block) + 1
    } else {
        (through + 1).saturating_sub(first_block)
    };
    (seq_len - p.start) * blocks
}

/// One variant, resolved and placed.
struct Planned {
    index: usize,
    base: usize,
    stage: usize,
    start: usize,
    interventions: Vec<ResolvedIntervention>,
}

/// Runs a sweep with the batched engine.
pub fn run_sweep(
    model: &Model,
    bases: &[Base],
    variants: &[Variant],
    metric: &Metric,
    opts: &SweepOptions<'_>,
) -> Result<SweepOutcome> {
    let started = Instant::now();
    let cfg = model.config();
    let n = cfg.n_layers;
    let seq_len = check_inputs(model, bases, variants, metric, opts.clean_base)?;
    let d = cfg.d_model;
    let vocab = cfg.d_vocab;
    let metric_positions = metric.positions(seq_len);
    let mut stats = SweepStats {
        variants: variants.len(),
        ..SweepStats::default()
    };
    let mut runs = run_bases(model, bases, &mut stats)?;
    let clean = runs.logits[opts.clean_base][(seq_len - 1) * vocab..].to_vec();
    let base_values: Vec<f64> = (0..bases.len())
        .map(|b| {
            let l = &runs.logits[b];
            metric.evaluate(
                |t| &l[t * vocab..(t + 1) * vocab],
                &bases[b].tokens,
                Some(&clean),
            )
        })
        .collect();

    // Resolve and place every variant.
    let base_ivs: Vec<Vec<ResolvedIntervention>> = bases
        .iter()
        .map(|b| {
            b.interventions
                .iter()
                .map(|iv| iv.resolve(cfg, seq_len))
                .collect()
        })
        .collect::<Result<_>>()?;
    let mut values = vec![f64::NAN; variants.len()];
    let mut planned = Vec::with_capacity(variants.len());
    for (index, v) in variants.iter().enumerate() {
        let own: Vec<ResolvedIntervention> = v
            .interventions
            .iter()
            .map(|iv| iv.resolve(cfg, seq_len))
            .collect::<Result<_>>()?;
        let stage = own.iter().map(|iv| stage_of(&iv.point, n)).min();
        let start = own.iter().map(ResolvedIntervention::first_position).min();
        match (stage, start) {
            (Some(stage), Some(start)) if start <= *metric_positions.iter().max().unwrap_or(&0) => {
                let mut interventions = base_ivs[v.base].clone();
                interventions.extend(own);
                planned.push(Planned {
                    index,
                    base: v.base,
                    stage,
                    start,
                    interventions,
                });
            }
            // No intervention, or none before the positions the metric reads: the base's value.
            _ => values[index] = base_values[v.base],
        }
    }
    planned.sort_by_key(|p| (p.stage, p.start));
    let total_work: usize = planned.iter().map(|p| work_of(p, seq_len, n, n)).sum();
    let mut work_done = 0;
    if let Some(progress) = opts.progress {
        progress(0, total_work);
    }
    let mut i = 0;
    while i < planned.len() {
        // A batch: variants packed until the row budget is reached. Variants of later fork
        // layers join the same pass at their layer (stage n + 1, the final norm, runs alone).
        let stage = planned[i].stage;
        let mut j = i;
        let mut rows = 0;
        while j < planned.len() && (planned[j].stage <= n || planned[j].stage == stage) {
            let r = seq_len - planned[j].start;
            if j > i && rows + r > opts.max_rows {
                break;
            }
            rows += r;
            j += 1;
        }
        let chunk = &planned[i..j];
        runs.kv.seq_base = chunk.iter().map(|p| p.base).collect();
        let suffix = |p: &Planned| (p.start..seq_len).collect::<Vec<usize>>();
        // Residual rows of some of the chunk's sequences entering `stage`.
        let rows_at = |stage: usize, members: &[(usize, Vec<usize>)]| -> Vec<f32> {
            let source = if stage <= n {
                &runs.resid_pre[stage - 1]
            } else {
                &runs.resid_final
            };
            let mut out = Vec::new();
            for (s, positions) in members {
                for &t in positions {
                    let r = chunk[*s].base * seq_len + t;
                    out.extend_from_slice(&source[r * d..(r + 1) * d]);
                }
            }
            out
        };
        let layout = RowLayout::from_positions(
            seq_len,
            chunk
                .iter()
                .map(|p| {
                    if p.stage == stage {
                        suffix(p)
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
        );
        let mut joiners = Vec::new();
        let mut later: Vec<usize> = chunk
            .iter()
            .map(|p| p.stage)
            .filter(|&st| st > stage)
            .collect();
        later.dedup();
        for st in later {
            let members: Vec<(usize, Vec<usize>)> = chunk
                .iter()
                .enumerate()
                .filter(|(_, p)| p.stage == st)
                .map(|(s, p)| (s, suffix(p)))
                .collect();
            joiners.push(Joiner {
                layer: st - 1,
                resid: rows_at(st, &members),
                seqs: members,
            });
        }
        let token_rows: Vec<Vec<u32>> =
            chunk.iter().map(|p| bases[p.base].tokens.clone()).collect();
        let tokens = TokenBatch::from_rows(&token_rows)?;
        let resid = if stage > 0 {
            let initial: Vec<(usize, Vec<usize>)> = layout
                .seqs
                .iter()
                .enumerate()
                .map(|(s, seq)| (s, seq.positions.clone()))
                .collect();
            rows_at(stage, &initial)
        } else {
            Vec::new()
        };
        let mut flat = Vec::new();
        let mut seq_of = Vec::new();
        for (s, p) in chunk.iter().enumerate() {
            for iv in &p.interventions {
                flat.push(iv.clone());
                seq_of.push(s);
            }
        }
        let mut slots = SlotTable::build(cfg, None, &[], &flat, &seq_of)?;
        let first_layer = stage.saturating_sub(1).min(n);
        let chunk_work = |through: usize| -> usize {
            chunk.iter().map(|p| work_of(p, seq_len, n, through)).sum()
        };
        let report_block = |layer: usize| {
            if let Some(progress) = opts.progress {
                progress(work_done + chunk_work(layer), total_work);
            }
        };
        let plan = PassPlan {
            input: if stage == 0 {
                PassInput::Tokens(&tokens)
            } else {
                PassInput::Residual(&resid)
            },
            layout: layout.clone(),
            layers: (first_layer, n),
            kv_prefix: Some(&runs.kv),
            final_positions: Some(&metric_positions),
            logits: LogitRows::All,
            joiners: &joiners,
            after_block: opts.progress.map(|_| &report_block as &dyn Fn(usize)),
        };
        let pass = run_pass(cfg, model.weights(), &plan, &mut slots)?;
        let (logits, _) = pass
            .logits
            .ok_or_else(|| HookLensError::input("sweep pass returned no logits"))?;
        for (s, p) in chunk.iter().enumerate() {
            let base_logits = &runs.logits[p.base];
            values[p.index] = metric.evaluate(
                |t| match pass.layout.row_of(s, t) {
                    Some(r) => &logits[r * vocab..(r + 1) * vocab],
                    None => &base_logits[t * vocab..(t + 1) * vocab],
                },
                &bases[p.base].tokens,
                Some(&clean),
            );
        }
        stats.passes += 1;
        for p in chunk {
            let layers = n + 1 - p.stage.clamp(1, n + 1);
            stats.flops += pass_flops(cfg, seq_len - p.start, layers, 0, seq_len);
        }
        stats.flops += pass_flops(cfg, 0, 0, pass.layout.rows(), seq_len);
        stats.peak_arena_bytes =
            stats
                .peak_arena_bytes
                .max(arena_bytes(cfg, rows, chunk.len(), seq_len));
        work_done += chunk_work(n);
        if let Some(progress) = opts.progress {
            progress(work_done, total_work);
        }
        i = j;
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(SweepOutcome {
        base_values,
        values,
        stats,
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
    let started = Instant::now();
    let cfg = model.config();
    let seq_len = check_inputs(model, bases, variants, metric, opts.clean_base)?;
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
        metric.evaluate(
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
    let per_pass = pass_flops(cfg, seq_len, cfg.n_layers, seq_len, seq_len);
    stats.passes = bases.len() + variants.len();
    stats.flops = per_pass * stats.passes as f64;
    stats.peak_arena_bytes = arena_bytes(cfg, seq_len, 1, seq_len);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(SweepOutcome {
        base_values,
        values,
        stats,
    })
}
