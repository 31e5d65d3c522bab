//! Running a planned sweep on a backend: the base runs (keeping each layer's residual input
//! and a [`KvCache`] of their keys and values), then one batched pass per chunk of variants,
//! each continuing from its base's residual and reusing its base's keys and values.

use std::time::Instant;

use super::engine::{Base, SweepOptions, SweepOutcome, SweepStats, Variant};
use super::flops::{full_pass_flops, seq_flops, unembed_flops, SeqWork};
use super::metric::Metric;
use super::par::map_in_ranges;
use super::plan::{chunk_shape, chunks, place_variants, work_of, ChunkShape, Planned};
use crate::backend::Backend;
use crate::error::{HookLensError, Result};
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::registry::SlotTable;
use crate::model::arena::ArenaLens;
use crate::model::config::ModelConfig;
use crate::model::engine::Engine;
use crate::model::forward::{run_pass, Joiner, KvPrefix, LogitRows, PassInput, PassPlan};
use crate::model::input::{Input, TokenBatch};
use crate::model::kv_cache::KvCache;

/// What the base pass keeps.
struct BaseRuns<B: Backend> {
    /// Logits at every position. `[bases]`[seq_len * d_vocab]
    logits: Vec<Vec<f32>>,
    /// Residual entering each block. `[layer]`[bases * seq_len * d_model]
    resid_pre: Vec<Vec<f32>>,
    /// Residual after the last block. `[bases * seq_len * d_model]`
    resid_final: Vec<f32>,
    /// Keys and values of every layer. `[bases, seq_len, n_kv_heads, d_head]`
    kv: KvCache<B>,
}

impl<B: Backend> BaseRuns<B> {
    /// Residual rows entering `stage` of the chunk's sequences `members` (sequence index into
    /// `chunk`, positions). `[rows, d_model]`
    fn rows_at(
        &self,
        cfg: &ModelConfig,
        chunk: &[Planned],
        stage: usize,
        members: &[(usize, Vec<usize>)],
    ) -> Vec<f32> {
        let (d, n) = (cfg.d_model, cfg.n_layers);
        let seq_len = self.kv.positions();
        let source = if stage <= n {
            &self.resid_pre[stage - 1]
        } else {
            &self.resid_final
        };
        let mut out = Vec::new();
        for (s, positions) in members {
            for &t in positions {
                let r = chunk[*s].base * seq_len + t;
                out.extend_from_slice(&source[r * d..(r + 1) * d]);
            }
        }
        out
    }
}

/// Runs the base runs in one batched pass.
fn run_bases<B: Backend>(
    engine: &Engine<B>,
    cfg: &ModelConfig,
    bases: &[Base],
    stats: &mut SweepStats,
) -> Result<BaseRuns<B>> {
    let n = cfg.n_layers;
    let rows: Vec<Vec<u32>> = bases.iter().map(|b| b.tokens.clone()).collect();
    let tokens = TokenBatch::from_rows(&rows)?;
    Input::Tokens(&tokens).validate(cfg)?;
    let (batch, seq_len) = (tokens.batch(), tokens.seq());
    let mut keep: Vec<HookPoint> = (0..n)
        .map(|l| HookPoint::layer(HookKind::ResidPre, l))
        .collect();
    keep.push(HookPoint::layer(HookKind::ResidPost, n - 1));
    let mut ivs = Vec::new();
    let mut seq_of = Vec::new();
    for (i, b) in bases.iter().enumerate() {
        for iv in &b.interventions {
            ivs.push(iv.resolve(cfg, seq_len)?);
            seq_of.push(i);
        }
    }
    let mut slots = SlotTable::build(cfg, None, &keep, &ivs, &seq_of)?;
    let mut kv = KvCache::new(cfg, batch, seq_len);
    let shape = (batch, seq_len, (0, n));
    let pass = engine.plain_pass(
        cfg,
        PassInput::Tokens(&tokens),
        shape,
        None,
        LogitRows::All,
        &mut slots,
        Some(&mut kv),
    )?;
    stats.passes += 1;
    stats.flops += full_pass_flops(cfg, batch, seq_len);
    let arena = ArenaLens::for_pass(cfg, batch * seq_len, batch, seq_len).bytes();
    stats.peak_arena_bytes = stats.peak_arena_bytes.max(arena);
    let (logits, _) = pass
        .logits
        .ok_or_else(|| HookLensError::input("base pass returned no logits"))?;
    let mut cached = slots.cached.into_iter().map(|(_, t)| t.data);
    let mut next = || {
        cached
            .next()
            .ok_or_else(|| HookLensError::input("base pass cached too little"))
    };
    let resid_pre = (0..n).map(|_| next()).collect::<Result<Vec<_>>>()?;
    let per = seq_len * cfg.d_vocab;
    let kept = logits.len() + resid_pre.iter().map(Vec::len).sum::<usize>();
    let kv_floats = 2 * n * batch * seq_len * cfg.n_kv_heads * cfg.d_head;
    let final_floats = batch * seq_len * cfg.d_model;
    stats.peak_base_bytes = (kept + kv_floats + final_floats) * std::mem::size_of::<f32>();
    Ok(BaseRuns {
        logits: logits.chunks_exact(per).map(<[f32]>::to_vec).collect(),
        resid_pre,
        resid_final: next()?,
        kv,
    })
}

/// A sweep on `engine`: the batched engine's whole work after the inputs were checked.
pub(crate) fn sweep_on<B: Backend>(
    engine: &Engine<B>,
    cfg: &ModelConfig,
    (bases, variants): (&[Base], &[Variant]),
    (metrics, opts): (&[Metric], &SweepOptions<'_>),
    seq_len: usize,
) -> Result<SweepOutcome> {
    let started = Instant::now();
    let (n, vocab) = (cfg.n_layers, cfg.d_vocab);
    // One metric per base, all reading the same positions (checked by the caller).
    let metric_positions = metrics[0].positions(seq_len);
    let mut stats = SweepStats {
        variants: variants.len(),
        ..SweepStats::default()
    };
    let runs = run_bases(engine, cfg, bases, &mut stats)?;
    let clean = runs.logits[opts.clean_base][(seq_len - 1) * vocab..].to_vec();
    let at = |t: usize| t * vocab..(t + 1) * vocab;
    let base_values: Vec<f64> = (0..bases.len())
        .map(|b| {
            let l = &runs.logits[b];
            metrics[b].evaluate(|t| &l[at(t)], &bases[b].tokens, Some(&clean))
        })
        .collect();
    let (planned, unchanged) = place_variants(cfg, (bases, variants), seq_len, &metric_positions)?;
    let mut values = vec![f64::NAN; variants.len()];
    for (index, base) in unchanged {
        values[index] = base_values[base];
    }
    let total_work: usize = planned.iter().map(|p| work_of(p, seq_len, n, n)).sum();
    let mut work_done = 0;
    if let Some(progress) = opts.progress {
        progress(0, total_work);
    }
    for range in chunks(&planned, seq_len, n, opts.max_rows) {
        let chunk = &planned[range];
        let shape = chunk_shape(chunk, seq_len);
        let chunk_work = |through: usize| -> usize {
            chunk.iter().map(|p| work_of(p, seq_len, n, through)).sum()
        };
        let report_block = |layer: usize| {
            if let Some(progress) = opts.progress {
                progress(work_done + chunk_work(layer), total_work);
            }
        };
        let after_block = opts.progress.map(|_| &report_block as &dyn Fn(usize));
        let (layout, logits) = run_chunk(
            engine,
            cfg,
            &runs,
            (bases, chunk),
            &shape,
            &metric_positions,
            after_block,
        )?;
        let chunk_values = map_in_ranges(chunk.len(), |s| {
            let p = &chunk[s];
            let base_logits = &runs.logits[p.base];
            let logits_at = |t| match layout.row_of(s, t) {
                Some(r) => &logits[at(r)],
                None => &base_logits[at(t)],
            };
            let metric = &metrics[p.base];
            metric.evaluate(logits_at, &bases[p.base].tokens, Some(&clean))
        });
        for (p, value) in chunk.iter().zip(chunk_values) {
            values[p.index] = value;
        }
        stats.passes += 1;
        for p in chunk {
            let work = SeqWork {
                first_block: p.stage.clamp(1, n + 1) - 1,
                start: p.start,
                seq_len,
                final_positions: Some(&metric_positions),
            };
            stats.flops += seq_flops(cfg, work);
        }
        stats.flops += unembed_flops(cfg, layout.rows());
        let arena = ArenaLens::for_pass(cfg, shape.rows, chunk.len(), seq_len).bytes();
        stats.peak_arena_bytes = stats.peak_arena_bytes.max(arena);
        work_done += chunk_work(n);
        if let Some(progress) = opts.progress {
            progress(work_done, total_work);
        }
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(SweepOutcome {
        base_values,
        values,
        stats,
    })
}

/// One batched pass over a chunk of variants; returns the rows of its logits and the logits.
fn run_chunk<B: Backend>(
    engine: &Engine<B>,
    cfg: &ModelConfig,
    runs: &BaseRuns<B>,
    (bases, chunk): (&[Base], &[Planned]),
    shape: &ChunkShape,
    metric_positions: &[usize],
    after_block: Option<&dyn Fn(usize)>,
) -> Result<(crate::layout::RowLayout, Vec<f32>)> {
    let n = cfg.n_layers;
    let stage = shape.stage;
    let joiners: Vec<Joiner> = (shape.joiners.iter())
        .map(|(layer, members)| Joiner {
            layer: *layer,
            resid: runs.rows_at(cfg, chunk, layer + 1, members),
            seqs: members.clone(),
        })
        .collect();
    let token_rows: Vec<Vec<u32>> = chunk.iter().map(|p| bases[p.base].tokens.clone()).collect();
    let tokens = TokenBatch::from_rows(&token_rows)?;
    let resid = if stage > 0 {
        let initial: Vec<(usize, Vec<usize>)> = (shape.layout.seqs.iter().enumerate())
            .map(|(s, seq)| (s, seq.positions.clone()))
            .collect();
        runs.rows_at(cfg, chunk, stage, &initial)
    } else {
        Vec::new()
    };
    let (mut ivs, mut seq_of) = (Vec::new(), Vec::new());
    for (s, p) in chunk.iter().enumerate() {
        ivs.extend(p.interventions.iter().cloned());
        seq_of.extend(std::iter::repeat_n(s, p.interventions.len()));
    }
    let mut slots = SlotTable::build(cfg, None, &[], &ivs, &seq_of)?;
    let seq_base: Vec<usize> = chunk.iter().map(|p| p.base).collect();
    let plan = PassPlan {
        input: if stage == 0 {
            PassInput::Tokens(&tokens)
        } else {
            PassInput::Residual(&resid)
        },
        layout: shape.layout.clone(),
        layers: (stage.saturating_sub(1).min(n), n),
        kv_prefix: Some(KvPrefix {
            cache: &runs.kv,
            seq_base: &seq_base,
        }),
        kv_in_place: false,
        final_positions: Some(metric_positions),
        logits: LogitRows::All,
        joiners: &joiners,
        after_block,
        spans: None,
    };
    let pass = run_pass(engine, cfg, &plan, &mut slots, None)?;
    let (logits, _) = pass
        .logits
        .ok_or_else(|| HookLensError::input("sweep pass returned no logits"))?;
    Ok((pass.layout, logits))
}
