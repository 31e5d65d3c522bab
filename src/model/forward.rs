//! The forward pass, written once for every architecture and for both kinds of pass: a plain
//! pass over every position (hooks see TL shapes), and a sweep pass over packed suffix rows
//! that reuses a base run's keys and values for the unchanged prefix. A hook slot sits
//! between every pair of kernels.

use super::arena::{zeroed, Arena};
use super::config::{ModelConfig, NormKind, PositionKind};
use super::input::TokenBatch;
use super::layout::RowLayout;
use super::split_input::split_attention_inputs;
use super::weights::Weights;
use crate::backend::cpu::activation::{add_inplace, gelu_new_inplace, silu_mul_inplace};
use crate::backend::cpu::attention::{
    attention_fused, attention_scores, attention_values, softmax_rows, HeadDims,
};
use crate::backend::cpu::gemm::{gemm, gemm_then, Epilogue, PackedMatrix};
use crate::backend::cpu::norm::{affine, divide_by_scale, norm_fused, norm_scale};
use crate::backend::cpu::rotary::RotaryTables;
use crate::error::{HookLensError, Result};
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::registry::SlotTable;

/// Keys and values of base runs, reused for the positions a sweep pass does not recompute.
pub(crate) struct KvPrefix {
    /// Per base run, per layer: (keys after rotary, values), each // [seq_len, n_kv_heads * d_head]
    pub bases: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    /// The base run each sequence of the pass continues.
    pub seq_base: Vec<usize>,
}

/// What enters the first computed layer.
pub(crate) enum PassInput<'a> {
    /// Token ids, one row of `seq_len` per sequence; embedded at the layout's positions.
    Tokens(&'a TokenBatch),
    /// The residual stream for the layout's rows. // [rows, d_model]
    Residual(&'a [f32]),
}

/// Which rows get logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogitRows {
    /// None: stop after the final norm.
    None,
    /// Every computed row.
    All,
    /// The last computed row of each sequence.
    LastOfEachSeq,
}

/// Sequences that enter a sweep pass at a later block: their rows are appended to the packed
/// buffers when block `layer` starts (sequences are ordered so joiners come last).
pub(crate) struct Joiner {
    /// The block they enter.
    pub layer: usize,
    /// (sequence index, its positions) for each joining sequence, in sequence order.
    pub seqs: Vec<(usize, Vec<usize>)>,
    /// Their residual rows entering `layer`, packed in the same order. // [rows, d_model]
    pub resid: Vec<f32>,
}

/// A pass to run.
pub(crate) struct PassPlan<'a> {
    /// The input.
    pub input: PassInput<'a>,
    /// The rows computed.
    pub layout: RowLayout,
    /// Blocks `start..stop`.
    pub layers: (usize, usize),
    /// Base keys/values for the positions the layout leaves out.
    pub kv_prefix: Option<&'a KvPrefix>,
    /// In the last block, compute queries, MLP and logits only at these positions.
    pub final_positions: Option<&'a [usize]>,
    /// Where logits are computed (after the last block only).
    pub logits: LogitRows,
    /// Sequences that join at later blocks (sweeps batch variants of several fork layers).
    pub joiners: &'a [Joiner],
    /// Called after each block with its layer index (sweeps report progress inside a pass).
    pub after_block: Option<&'a dyn Fn(usize)>,
}

/// What a pass produced.
pub(crate) struct PassOutput {
    /// The rows of the outputs below (the plan's layout, restricted in the last block).
    pub layout: RowLayout,
    /// The residual stream when the pass stopped before the last block. // [rows, d_model]
    pub resid: Option<Vec<f32>>,
    /// Logits and, for each logit row, its row in `layout`. // [n, d_vocab]
    pub logits: Option<(Vec<f32>, Vec<usize>)>,
}

/// A norm with its two hook points.
pub(super) struct NormStep<'w> {
    /// Where the scale fires (`ln1.hook_scale`, ...).
    pub scale_hook: HookPoint,
    /// Where the normalised value fires.
    pub normalized_hook: HookPoint,
    /// The norm's weight. // [d_model]
    pub w: &'w [f32],
    /// The LayerNorm bias. // [d_model]
    pub b: Option<&'w [f32]>,
    /// `Some(h)` when each row holds `h` per-head inputs (split attention inputs): the hooks
    /// then see TL's per-head shapes `[batch, pos, h, 1]` and `[batch, pos, h, d_model]`.
    pub heads: Option<usize>,
}

/// Fires a norm hook with its usual shape, or the per-head one (`width` = 1 or d_model).
fn fire_norm_hook(
    slots: &mut SlotTable<'_, '_>,
    point: HookPoint,
    data: &mut [f32],
    layout: &RowLayout,
    (heads, width): (Option<usize>, usize),
) -> Result<()> {
    let shape = heads.map(|h| vec![layout.batch(), layout.seq_len, h, width]);
    slots.fire_shaped(point, data, layout, shape)
}

pub(super) fn apply_norm(
    cfg: &ModelConfig,
    step: NormStep<'_>,
    x: &[f32],
    out: &mut [f32],
    scale: &mut [f32],
    layout: &RowLayout,
    slots: &mut SlotTable<'_, '_>,
) -> Result<()> {
    let d = cfg.d_model;
    let layer_norm = cfg.norm == NormKind::LayerNorm;
    if !slots.active(step.scale_hook) && !slots.active(step.normalized_hook) {
        // Nobody watches the intermediate values: one pass instead of three.
        norm_fused(x, out, scale, (step.w, step.b), d, cfg.norm_eps, layer_norm);
        return Ok(());
    }
    norm_scale(x, out, scale, d, cfg.norm_eps, layer_norm);
    fire_norm_hook(slots, step.scale_hook, scale, layout, (step.heads, 1))?;
    divide_by_scale(out, scale, d);
    if layer_norm {
        // TL reports LayerNorm's hook_normalized after the affine...
        affine(out, step.w, step.b, d);
        fire_norm_hook(slots, step.normalized_hook, out, layout, (step.heads, d))?;
    } else {
        // ...and RMSNorm's before the weight.
        fire_norm_hook(slots, step.normalized_hook, out, layout, (step.heads, d))?;
        affine(out, step.w, None, d);
    }
    Ok(())
}

/// [`apply_norm`] of the residual stream into the arena's `normed` and `scale`.
fn norm_residual(
    cfg: &ModelConfig,
    step: NormStep<'_>,
    a: &mut Arena,
    layout: &RowLayout,
    slots: &mut SlotTable<'_, '_>,
) -> Result<()> {
    apply_norm(
        cfg,
        step,
        &a.resid,
        &mut a.normed,
        &mut a.scale,
        layout,
        slots,
    )
}

/// Absolute position of every packed row.
fn row_positions(layout: &RowLayout) -> Vec<usize> {
    layout
        .seqs
        .iter()
        .flat_map(|s| s.positions.iter().copied())
        .collect()
}

/// Copies `rows` of `src` (each `width` wide) into a new packed buffer.
fn gather_rows(src: &[f32], rows: &[usize], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&src[r * width..(r + 1) * width]);
    }
    out
}

/// Writes a layer's keys (or values) for every position into `full` // [batch, seq_len, width]:
/// computed rows from `rows` // [rows, width], the others from the base run.
fn assemble_kv<'b>(
    full: &mut [f32],
    rows: &[f32],
    layout: &RowLayout,
    width: usize,
    base: impl Fn(usize) -> Option<&'b [f32]>,
) -> Result<()> {
    let p = layout.seq_len;
    for (s, seq) in layout.seqs.iter().enumerate() {
        let dst = &mut full[s * p * width..(s + 1) * p * width];
        if seq.positions.len() < p {
            let src = base(s).ok_or_else(|| {
                HookLensError::input("a partial pass needs the base run's keys and values")
            })?;
            dst.copy_from_slice(src);
        }
        for (i, &t) in seq.positions.iter().enumerate() {
            let r = seq.offset + i;
            dst[t * width..(t + 1) * width].copy_from_slice(&rows[r * width..(r + 1) * width]);
        }
    }
    Ok(())
}

/// Runs a pass. `slots` holds the hooks, cache requests and interventions, already resolved.
pub(crate) fn run_pass(
    cfg: &ModelConfig,
    weights: &Weights,
    plan: &PassPlan<'_>,
    slots: &mut SlotTable<'_, '_>,
) -> Result<PassOutput> {
    let mut layout = plan.layout.clone();
    let (start, stop) = plan.layers;
    let d = cfg.d_model;
    let p = layout.seq_len;
    let mut rows = layout.rows();
    let mut a = Arena::new(cfg, p, rows);
    let mut positions = row_positions(&layout);

    match plan.input {
        PassInput::Tokens(tokens) => {
            for (s, seq) in layout.seqs.iter().enumerate() {
                for (i, &t) in seq.positions.iter().enumerate() {
                    let id = tokens.row(s)[t] as usize;
                    let r = seq.offset + i;
                    a.resid[r * d..(r + 1) * d].copy_from_slice(&weights.w_e[id * d..(id + 1) * d]);
                }
            }
            slots.fire(HookPoint::global(HookKind::Embed), &mut a.resid, &layout)?;
            if let (PositionKind::Learned, Some(w_pos)) = (cfg.positions, &weights.w_pos) {
                // The attention-output buffer holds the position embedding for now. // [rows, d_model]
                for (row, &t) in a.attn_out.chunks_exact_mut(d).zip(&positions) {
                    row.copy_from_slice(&w_pos[t * d..(t + 1) * d]);
                }
                slots.fire(
                    HookPoint::global(HookKind::PosEmbed),
                    &mut a.attn_out,
                    &layout,
                )?;
                add_inplace(&mut a.resid, &a.attn_out);
            }
        }
        PassInput::Residual(resid) => a.resid.copy_from_slice(resid),
    }

    let rotary = match cfg.positions {
        PositionKind::Rotary { theta } => Some(RotaryTables::new(p, cfg.d_head, theta)),
        PositionKind::Learned => None,
    };
    let heads = HeadDims {
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_kv_heads,
        d_head: cfg.d_head,
    };
    let kv_width = cfg.n_kv_heads * cfg.d_head;

    for layer in start..stop {
        for join in plan.joiners.iter().filter(|j| j.layer == layer) {
            let mut all: Vec<Vec<usize>> =
                layout.seqs.iter().map(|s| s.positions.clone()).collect();
            for (seq, pos) in &join.seqs {
                all[*seq] = pos.clone();
            }
            layout = RowLayout::from_positions(p, all);
            if layout.rows() != rows + join.resid.len() / d {
                return Err(HookLensError::input(
                    "joining sequences must come after the others",
                ));
            }
            a.resid.extend_from_slice(&join.resid);
            positions = row_positions(&layout);
            rows = layout.rows();
            a.grow_rows(cfg, rows);
        }
        let w = &weights.layers[layer];
        let at = |kind| HookPoint::layer(kind, layer);
        slots.fire(at(HookKind::ResidPre), &mut a.resid, &layout)?;
        // Watching a per-head input runs ln1 and the q, k, v products per head (opt-in).
        let split = slots.wants_split(layer);
        if split {
            let qkv = (&mut a.q[..], &mut a.k[..], &mut a.v[..]);
            split_attention_inputs(cfg, w, layer, &a.resid, qkv, &layout, slots)?;
        } else {
            let ln1 = NormStep {
                scale_hook: at(HookKind::Ln1Scale),
                normalized_hook: at(HookKind::Ln1Normalized),
                w: &w.ln1_w,
                b: w.ln1_b.as_deref(),
                heads: None,
            };
            norm_residual(cfg, ln1, &mut a, &layout, slots)?;
            gemm(&a.normed, rows, &w.w_k, w.b_k.as_deref(), &mut a.k);
            gemm(&a.normed, rows, &w.w_v, w.b_v.as_deref(), &mut a.v);
        }

        // In the last block of a sweep pass, only the metric's positions need queries and the
        // rest of the block; keys and values still come from every computed row.
        let restrict = match plan.final_positions {
            Some(keep) if layer + 1 == cfg.n_layers => Some(layout.restrict(keep)),
            _ => None,
        };
        // Keys and values keep the rows they were computed for.
        let mut kv_rows: Option<(RowLayout, Vec<usize>)> = None;
        if let Some((new_layout, sources)) = restrict {
            // Split inputs computed the queries of every row already; keep the metric's.
            let q_kept = split.then(|| gather_rows(&a.q, &sources, cfg.n_heads * cfg.d_head));
            a.normed = gather_rows(&a.normed, &sources, d);
            a.resid = gather_rows(&a.resid, &sources, d);
            let new_positions = row_positions(&new_layout);
            kv_rows = Some((
                std::mem::replace(&mut layout, new_layout),
                std::mem::replace(&mut positions, new_positions),
            ));
            rows = layout.rows();
            a.resize_rows(cfg, rows);
            if let Some(q) = q_kept {
                a.q = q;
            }
        }
        let (kv_layout, kv_positions) = match &kv_rows {
            Some((l, p)) => (l, p),
            None => (&layout, &positions),
        };
        if !split {
            gemm(&a.normed, rows, &w.w_q, w.b_q.as_deref(), &mut a.q);
        }
        slots.fire(at(HookKind::Q), &mut a.q, &layout)?;
        slots.fire(at(HookKind::K), &mut a.k, kv_layout)?;
        slots.fire(at(HookKind::V), &mut a.v, kv_layout)?;
        if let Some(rot) = &rotary {
            rot.apply(&mut a.q, &positions, cfg.n_heads);
            slots.fire(at(HookKind::RotQ), &mut a.q, &layout)?;
            rot.apply(&mut a.k, kv_positions, cfg.n_kv_heads);
            slots.fire(at(HookKind::RotK), &mut a.k, kv_layout)?;
        }
        let base = |which: usize| {
            move |s: usize| {
                plan.kv_prefix.map(|kv| {
                    let (k, v) = &kv.bases[kv.seq_base[s]][layer];
                    if which == 0 {
                        k.as_slice()
                    } else {
                        v.as_slice()
                    }
                })
            }
        };
        let watch_scores =
            slots.active(at(HookKind::AttnScores)) || slots.active(at(HookKind::Pattern));
        if watch_scores {
            a.ensure_scores(cfg, rows);
        }
        // Every sequence computed whole, in order: the computed rows already are the keys and
        // values at every position. Otherwise they are assembled with the base run's.
        let kv_whole = plan.kv_prefix.is_none()
            && kv_layout.is_full()
            && (kv_layout.seqs.iter().enumerate()).all(|(s, q)| q.offset == s * p);
        // [batch, seq, n_kv_heads, d_head] each
        let (k_all, v_all): (&[f32], &[f32]) = if kv_whole {
            (&a.k, &a.v)
        } else {
            // assemble_kv writes every value, so only a new size needs (zeroed) space.
            let full = kv_layout.batch() * p * kv_width;
            if a.k_full.len() != full {
                zeroed(&mut a.k_full, full);
                zeroed(&mut a.v_full, full);
            }
            assemble_kv(&mut a.k_full, &a.k, kv_layout, kv_width, base(0))?;
            assemble_kv(&mut a.v_full, &a.v, kv_layout, kv_width, base(1))?;
            (&a.k_full, &a.v_full)
        };

        if watch_scores {
            attention_scores(&a.q, k_all, &mut a.scores, &layout, heads);
            slots.fire(at(HookKind::AttnScores), &mut a.scores, &layout)?;
            softmax_rows(&mut a.scores, p);
            slots.fire(at(HookKind::Pattern), &mut a.scores, &layout)?;
            attention_values(&a.scores, v_all, &mut a.z, &layout, heads);
        } else {
            attention_fused(&a.q, k_all, v_all, &mut a.z, &layout, heads);
        }
        slots.fire(at(HookKind::Z), &mut a.z, &layout)?;

        if slots.wants_result(layer) {
            a.ensure_result(cfg);
            per_head_result(cfg, &a.z, &w.w_o, rows, &mut a.result);
            slots.fire(at(HookKind::Result), &mut a.result, &layout)?;
            sum_heads(cfg, &a.result, w.b_o.as_deref(), rows, &mut a.attn_out);
            slots.fire(at(HookKind::AttnOut), &mut a.attn_out, &layout)?;
            add_inplace(&mut a.resid, &a.attn_out);
        } else if slots.active(at(HookKind::AttnOut)) {
            gemm(&a.z, rows, &w.w_o, w.b_o.as_deref(), &mut a.attn_out);
            slots.fire(at(HookKind::AttnOut), &mut a.attn_out, &layout)?;
            add_inplace(&mut a.resid, &a.attn_out);
        } else {
            // Unwatched attention output: the product is added straight into the residual.
            let b_o = w.b_o.as_deref();
            gemm_then(&a.z, rows, &w.w_o, b_o, Epilogue::AddInto, &mut a.resid);
        }
        slots.fire(at(HookKind::ResidMid), &mut a.resid, &layout)?;

        // hook_mlp_in (opt-in) is a copy of the residual that only the MLP reads.
        let mut mlp_in; // [rows, d_model]
        let ln2_input: &[f32] = if slots.active(at(HookKind::MlpIn)) {
            mlp_in = a.resid.clone();
            slots.fire(at(HookKind::MlpIn), &mut mlp_in, &layout)?;
            &mlp_in
        } else {
            &a.resid
        };
        let ln2 = NormStep {
            scale_hook: at(HookKind::Ln2Scale),
            normalized_hook: at(HookKind::Ln2Normalized),
            w: &w.ln2_w,
            b: w.ln2_b.as_deref(),
            heads: None,
        };
        apply_norm(
            cfg,
            ln2,
            ln2_input,
            &mut a.normed,
            &mut a.scale,
            &layout,
            slots,
        )?;

        // The activation is fused into the product that feeds it unless a hook watches the
        // value in between.
        let b_in = w.b_in.as_deref();
        let post: &mut Vec<f32> = match &w.w_gate {
            None if slots.active(at(HookKind::MlpPre)) => {
                gemm(&a.normed, rows, &w.w_in, b_in, &mut a.mlp_pre);
                slots.fire(at(HookKind::MlpPre), &mut a.mlp_pre, &layout)?;
                gelu_new_inplace(&mut a.mlp_pre);
                &mut a.mlp_pre
            }
            None => {
                let gelu = Epilogue::GeluNew;
                gemm_then(&a.normed, rows, &w.w_in, b_in, gelu, &mut a.mlp_pre);
                &mut a.mlp_pre
            }
            Some(w_gate) => {
                gemm(&a.normed, rows, w_gate, None, &mut a.mlp_pre);
                slots.fire(at(HookKind::MlpPre), &mut a.mlp_pre, &layout)?;
                if slots.active(at(HookKind::MlpPreLinear)) {
                    gemm(&a.normed, rows, &w.w_in, b_in, &mut a.mlp_linear);
                    slots.fire(at(HookKind::MlpPreLinear), &mut a.mlp_linear, &layout)?;
                    silu_mul_inplace(&a.mlp_pre, &mut a.mlp_linear);
                } else {
                    let gated = Epilogue::SiluGateMul(&a.mlp_pre);
                    gemm_then(&a.normed, rows, &w.w_in, b_in, gated, &mut a.mlp_linear);
                }
                &mut a.mlp_linear
            }
        };
        slots.fire(at(HookKind::MlpPost), post, &layout)?;
        let b_out = w.b_out.as_deref();
        if slots.active(at(HookKind::MlpOut)) {
            gemm(post, rows, &w.w_out, b_out, &mut a.mlp_out);
            slots.fire(at(HookKind::MlpOut), &mut a.mlp_out, &layout)?;
            add_inplace(&mut a.resid, &a.mlp_out);
        } else {
            gemm_then(post, rows, &w.w_out, b_out, Epilogue::AddInto, &mut a.resid);
        }
        slots.fire(at(HookKind::ResidPost), &mut a.resid, &layout)?;
        if let Some(after_block) = plan.after_block {
            after_block(layer);
        }
    }

    if stop < cfg.n_layers {
        let resid = std::mem::take(&mut a.resid);
        a.recycle();
        return Ok(PassOutput {
            layout,
            resid: Some(resid),
            logits: None,
        });
    }

    let ln_final = NormStep {
        scale_hook: HookPoint::global(HookKind::LnFinalScale),
        normalized_hook: HookPoint::global(HookKind::LnFinalNormalized),
        w: &weights.ln_final_w,
        b: weights.ln_final_b.as_deref(),
        heads: None,
    };
    norm_residual(cfg, ln_final, &mut a, &layout, slots)?;

    let all_logits = watched_logits(weights, &a.normed, rows, &layout, slots)?;
    let logit_rows: Vec<usize> = match plan.logits {
        LogitRows::None => {
            a.recycle();
            return Ok(PassOutput {
                layout,
                resid: None,
                logits: None,
            });
        }
        LogitRows::All => (0..rows).collect(),
        LogitRows::LastOfEachSeq => layout
            .seqs
            .iter()
            .filter(|s| !s.positions.is_empty())
            .map(|s| s.offset + s.positions.len() - 1)
            .collect(),
    };
    if let Some(all) = all_logits {
        a.recycle();
        let logits = if logit_rows.len() == rows {
            all
        } else {
            gather_rows(&all, &logit_rows, cfg.d_vocab)
        };
        return Ok(PassOutput {
            layout,
            resid: None,
            logits: Some((logits, logit_rows)),
        });
    }
    let gathered; // [logit rows, d_model] when not every row
    let selected: &[f32] = if logit_rows.len() == rows {
        &a.normed
    } else {
        gathered = gather_rows(&a.normed, &logit_rows, d);
        &gathered
    };
    let n = logit_rows.len();
    let vocab = cfg.d_vocab;
    let mut logits = vec![0.0f32; n * vocab]; // [n, d_vocab]
    gemm(
        selected,
        n,
        &weights.unembed,
        weights.b_u.as_deref(),
        &mut logits,
    );
    a.recycle();
    Ok(PassOutput {
        layout,
        resid: None,
        logits: Some((logits, logit_rows)),
    })
}

/// The logits of every row, fired at `hook_unembed`, when that opt-in point is watched (the
/// pass then returns its rows of them, edits included); `None` otherwise.
/// normed: // [rows, d_model] -> // [rows, d_vocab]
fn watched_logits(
    weights: &Weights,
    normed: &[f32],
    rows: usize,
    layout: &RowLayout,
    slots: &mut SlotTable<'_, '_>,
) -> Result<Option<Vec<f32>>> {
    let point = HookPoint::global(HookKind::Unembed);
    if !slots.active(point) {
        return Ok(None);
    }
    let vocab = weights.unembed.n();
    let mut all = vec![0.0f32; rows * vocab];
    gemm(
        normed,
        rows,
        &weights.unembed,
        weights.b_u.as_deref(),
        &mut all,
    );
    slots.fire(point, &mut all, layout)?;
    Ok(Some(all))
}

/// `result[r, h, :] = z[r, h, :] @ W_O[h]`, TL's per-head output without `b_O`: for each
/// head, the product with the other heads' values masked to zero (an opt-in hook, so it
/// reuses the packed `W_O` rather than keeping a second copy).
/// z: // [rows, n_heads, d_head]   w_o: packed // [n_heads * d_head, d_model]
/// result: // [rows, n_heads, d_model]
fn per_head_result(
    cfg: &ModelConfig,
    z: &[f32],
    w_o: &PackedMatrix,
    rows: usize,
    result: &mut [f32],
) {
    let (h_n, dh, d) = (cfg.n_heads, cfg.d_head, cfg.d_model);
    let q = h_n * dh;
    let mut masked = vec![0.0f32; rows * q]; // [rows, n_heads * d_head]
    let mut out = vec![0.0f32; rows * d]; // [rows, d_model]
    for h in 0..h_n {
        masked.fill(0.0);
        for r in 0..rows {
            let src = &z[r * q + h * dh..][..dh];
            masked[r * q + h * dh..][..dh].copy_from_slice(src);
        }
        gemm(&masked, rows, w_o, None, &mut out);
        for r in 0..rows {
            result[(r * h_n + h) * d..][..d].copy_from_slice(&out[r * d..(r + 1) * d]);
        }
    }
}

/// `attn_out[r] = Σ_h result[r, h] + b_O`. result: // [rows, n_heads, d_model]
fn sum_heads(cfg: &ModelConfig, result: &[f32], b_o: Option<&[f32]>, rows: usize, out: &mut [f32]) {
    let d = cfg.d_model;
    for (r, row) in out.chunks_exact_mut(d).enumerate().take(rows) {
        match b_o {
            Some(b) => row.copy_from_slice(b),
            None => row.fill(0.0),
        }
        for h in 0..cfg.n_heads {
            add_inplace(row, &result[(r * cfg.n_heads + h) * d..][..d]);
        }
    }
}
