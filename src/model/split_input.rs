//! Per-head attention inputs, TL's `use_attn_in` / `use_split_qkv_input`: the residual is
//! copied once per head (`hook_attn_in`, then `hook_q_input` / `hook_k_input` /
//! `hook_v_input`), `ln1` is applied to each head's copy, and each head's queries, keys and
//! values come from its own normalised input, so an edit of one head's input changes only
//! that head. Runs only in layers where one of those points is watched (opt-in); the plain
//! path computes `ln1` once.

use super::config::ModelConfig;
use super::forward::{apply_norm, NormStep};
use super::layout::RowLayout;
use super::weights::LayerWeights;
use crate::backend::cpu::gemm::{gemm, PackedMatrix};
use crate::error::Result;
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::registry::SlotTable;

/// Computes the layer's queries, keys and values (before rotary) from per-head inputs,
/// firing `hook_attn_in`, the three per-head inputs and `ln1` (once per input, with TL's
/// per-head shapes), in TL's order.
/// resid: // [rows, d_model]   q: // [rows, n_heads * d_head]   k, v: // [rows, n_kv_heads * d_head]
pub(crate) fn split_attention_inputs(
    cfg: &ModelConfig,
    w: &LayerWeights,
    layer: usize,
    resid: &[f32],
    (q, k, v): (&mut [f32], &mut [f32], &mut [f32]),
    layout: &RowLayout,
    slots: &mut SlotTable<'_, '_>,
) -> Result<()> {
    let at = |kind| HookPoint::layer(kind, layer);
    let (n_q, n_kv, d) = (cfg.n_heads, cfg.n_kv_heads, cfg.d_model);
    // hook_attn_in exists only without grouped-query attention (n_kv == n_q), so its copy
    // feeds every input. // [rows, n_heads, d_model]
    let attn_in = if HookKind::AttnIn.exists_for(cfg) {
        let mut x = per_head(resid, n_q, d);
        slots.fire(at(HookKind::AttnIn), &mut x, layout)?;
        Some(x)
    } else {
        None
    };
    let input = |heads: usize| match &attn_in {
        Some(x) => x.clone(),
        None => per_head(resid, heads, d),
    };
    // [rows, heads, d_model] each, heads = n_heads for q, n_kv_heads for k and v
    let mut inputs = [
        (HookKind::QInput, n_q, input(n_q)),
        (HookKind::KInput, n_kv, input(n_kv)),
        (HookKind::VInput, n_kv, input(n_kv)),
    ];
    for (kind, _, x) in &mut inputs {
        slots.fire(at(*kind), x, layout)?;
    }
    let projections = [
        (&w.w_q, w.b_q.as_deref(), q),
        (&w.w_k, w.b_k.as_deref(), k),
        (&w.w_v, w.b_v.as_deref(), v),
    ];
    for ((_, heads, x), (matrix, bias, out)) in inputs.iter().zip(projections) {
        let normed = ln1_per_head(cfg, w, layer, x, *heads, layout, slots)?;
        project_per_head(&normed, *heads, d, (matrix, bias), cfg.d_head, out);
    }
    Ok(())
}

/// The residual copied once per head. resid: // [rows, d_model] -> // [rows, heads, d_model]
fn per_head(resid: &[f32], heads: usize, d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(resid.len() * heads);
    for row in resid.chunks_exact(d) {
        for _ in 0..heads {
            out.extend_from_slice(row);
        }
    }
    out
}

/// `ln1` of every head's input, firing `ln1.hook_scale` `[batch, pos, heads, 1]` and
/// `ln1.hook_normalized` `[batch, pos, heads, d_model]`.
/// x: // [rows, heads, d_model] -> // [rows, heads, d_model]
fn ln1_per_head(
    cfg: &ModelConfig,
    w: &LayerWeights,
    layer: usize,
    x: &[f32],
    heads: usize,
    layout: &RowLayout,
    slots: &mut SlotTable<'_, '_>,
) -> Result<Vec<f32>> {
    let step = NormStep {
        scale_hook: HookPoint::layer(HookKind::Ln1Scale, layer),
        normalized_hook: HookPoint::layer(HookKind::Ln1Normalized, layer),
        w: &w.ln1_w,
        b: w.ln1_b.as_deref(),
        heads: Some(heads),
    };
    let mut normed = vec![0.0f32; x.len()]; // [rows, heads, d_model]
    let mut scale = vec![0.0f32; x.len() / cfg.d_model]; // [rows, heads]
    apply_norm(cfg, step, x, &mut normed, &mut scale, layout, slots)?;
    Ok(normed)
}

/// Each head's slice of the projection, from that head's own input: head `h` of `out` is
/// `normed[:, h, :] @ W[:, h] + b[h]`. One product of every (row, head) input with the whole
/// matrix, of which each row keeps its own head's columns (the packed weights serve as they
/// are; the work is that of one product per head).
/// normed: // [rows, heads, d_model]   out: // [rows, heads * d_head]
fn project_per_head(
    normed: &[f32],
    heads: usize,
    d: usize,
    (matrix, bias): (&PackedMatrix, Option<&[f32]>),
    d_head: usize,
    out: &mut [f32],
) {
    let inputs = normed.len() / d; // rows * heads
    let width = heads * d_head;
    let mut product = vec![0.0f32; inputs * width]; // [rows, heads, heads * d_head]
    gemm(normed, inputs, matrix, bias, &mut product);
    for (i, src) in product.chunks_exact(width).enumerate() {
        let (r, h) = (i / heads, i % heads);
        let cols = h * d_head..(h + 1) * d_head;
        out[r * width..][cols.clone()].copy_from_slice(&src[cols]);
    }
}
