//! Per-head attention inputs, TL's `use_attn_in` / `use_split_qkv_input`: the residual is
//! copied once per head (`hook_attn_in`, then `hook_q_input` / `hook_k_input` /
//! `hook_v_input`), `ln1` is applied to each head's copy, and each head's queries, keys and
//! values come from its own normalised input, so an edit of one head's input changes only
//! that head. Runs only in layers where one of those points is watched (opt-in); the plain
//! path computes `ln1` once.

use super::forward::{apply_norm, Ctx, NormStep, State};
use crate::backend::{Backend, Epilogue};
use crate::error::Result;
use crate::hooks::point::{HookKind, HookPoint};
use crate::layout::RowLayout;

/// Computes the layer's queries, keys and values (before rotary) from per-head inputs,
/// firing `hook_attn_in`, the three per-head inputs and `ln1` (once per input, with TL's
/// per-head shapes), in TL's order. Reads `st.a.resid`; writes `st.a.q`, `k`, `v`.
pub(crate) fn split_attention_inputs<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    layer: usize,
) -> Result<()> {
    let at = |kind| HookPoint::layer(kind, layer);
    let (b, cfg) = (ctx.b, ctx.cfg);
    let (n_q, n_kv, d) = (cfg.n_heads, cfg.n_kv_heads, cfg.d_model);
    let layout = &st.rows.layout;
    // hook_attn_in exists only without grouped-query attention (n_kv == n_q), so its copy
    // feeds every input. // [rows, n_heads, d_model]
    let attn_in = if HookKind::AttnIn.exists_for(cfg) {
        let mut x = b.repeat_per_head(&st.a.resid, n_q, d);
        ctx.fire(at(HookKind::AttnIn), &mut x, layout)?;
        Some(x)
    } else {
        None
    };
    let input = |heads: usize| match &attn_in {
        Some(x) => x.clone(),
        None => b.repeat_per_head(&st.a.resid, heads, d),
    };
    // [rows, heads, d_model] each, heads = n_heads for q, n_kv_heads for k and v
    let mut inputs = [
        (HookKind::QInput, n_q, input(n_q)),
        (HookKind::KInput, n_kv, input(n_kv)),
        (HookKind::VInput, n_kv, input(n_kv)),
    ];
    for (kind, _, x) in &mut inputs {
        ctx.fire(at(*kind), x, layout)?;
    }
    let w = &ctx.weights.layers[layer];
    let a = &mut st.a;
    let projections = [
        (&w.w_q, w.b_q.as_ref(), &mut a.q),
        (&w.w_k, w.b_k.as_ref(), &mut a.k),
        (&w.w_v, w.b_v.as_ref(), &mut a.v),
    ];
    for ((_, heads, x), (matrix, bias, out)) in inputs.iter().zip(projections) {
        let normed = ln1_per_head(ctx, layer, x, *heads, layout)?;
        // One product of every (row, head) input with the whole matrix, of which each row
        // keeps its own head's columns (the work of one product per head).
        let n_inputs = b.len(&normed) / d; // rows * heads
        let mut product = b.zeros(n_inputs * heads * cfg.d_head); // [rows, heads, heads * d_head]
        b.linear(
            &normed,
            n_inputs,
            matrix,
            bias,
            Epilogue::Store,
            &mut product,
        );
        b.own_head_columns(&product, *heads, cfg.d_head, out);
    }
    Ok(())
}

/// `ln1` of every head's input, firing `ln1.hook_scale` `[batch, pos, heads, 1]` and
/// `ln1.hook_normalized` `[batch, pos, heads, d_model]`.
/// x: `[rows, heads, d_model]` -> `[rows, heads, d_model]`
fn ln1_per_head<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    layer: usize,
    x: &B::Buf,
    heads: usize,
    layout: &RowLayout,
) -> Result<B::Buf> {
    let w = &ctx.weights.layers[layer];
    let step = NormStep {
        scale_hook: HookPoint::layer(HookKind::Ln1Scale, layer),
        normalized_hook: HookPoint::layer(HookKind::Ln1Normalized, layer),
        w: &w.ln1_w,
        b: w.ln1_b.as_ref(),
        heads: Some(heads),
    };
    let len = ctx.b.len(x);
    let mut normed = ctx.b.zeros(len); // [rows, heads, d_model]
    let mut scale = ctx.b.zeros(len / ctx.cfg.d_model); // [rows, heads]
    apply_norm(ctx, step, x, (&mut normed, &mut scale), layout)?;
    Ok(normed)
}
