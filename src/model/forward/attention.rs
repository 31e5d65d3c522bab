//! One attention block: `ln1`, the q/k/v products, rotary, attention and the output
//! projection into the residual stream, with every attention hook point between them.

use super::norm::{apply_norm, NormStep};
use super::rows::{restrict, Rows};
use super::{Ctx, PassPlan, State};
use crate::backend::{Backend, Epilogue, HeadDims, KvSource};
use crate::error::Result;
use crate::hooks::point::{HookKind, HookPoint};
use crate::model::kv_cache::KvCache;
use crate::model::split_input::split_attention_inputs;

/// `resid += attn(ln1(resid))` for block `layer`, firing `hook_resid_pre` .. `hook_resid_mid`.
pub(super) fn block<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    plan: &PassPlan<'_, B>,
    layer: usize,
    kv_out: Option<&mut KvCache<B>>,
) -> Result<()> {
    let at = |kind| HookPoint::layer(kind, layer);
    let (b, cfg) = (ctx.b, ctx.cfg);
    ctx.fire(at(HookKind::ResidPre), &mut st.a.resid, &st.rows.layout)?;
    // Watching a per-head input runs ln1 and the q, k, v products per head (opt-in).
    let split = ctx.slots.wants_split(layer);
    if split {
        split_attention_inputs(ctx, st, layer)?;
    } else {
        ln1_keys_values(ctx, st, layer)?;
    }
    // In the last block of a sweep pass, only the metric's positions need queries and the
    // rest of the block; keys and values keep every computed row.
    let kv_rows: Option<Rows<B>> = match plan.final_positions {
        Some(keep) if layer + 1 == cfg.n_layers => Some(restrict(ctx, st, keep, split)),
        _ => None,
    };
    let w = &ctx.weights.layers[layer];
    if !split {
        let rows = st.rows.count();
        let b_q = w.b_q.as_ref();
        b.linear(
            &st.a.normed,
            rows,
            &w.w_q,
            b_q,
            Epilogue::Store,
            &mut st.a.q,
        );
    }
    let kv = kv_rows.as_ref().unwrap_or(&st.rows);
    ctx.fire(at(HookKind::Q), &mut st.a.q, &st.rows.layout)?;
    ctx.fire(at(HookKind::K), &mut st.a.k, &kv.layout)?;
    ctx.fire(at(HookKind::V), &mut st.a.v, &kv.layout)?;
    if let Some(rot) = &st.rotary {
        b.rotary(rot, &mut st.a.q, &st.rows.positions, cfg.n_heads);
        ctx.fire(at(HookKind::RotQ), &mut st.a.q, &st.rows.layout)?;
        b.rotary(rot, &mut st.a.k, &kv.positions, cfg.n_kv_heads);
        ctx.fire(at(HookKind::RotK), &mut st.a.k, &kv.layout)?;
    }
    attend(ctx, st, plan, layer, kv_rows.as_ref(), kv_out)?;
    ctx.fire(at(HookKind::Z), &mut st.a.z, &st.rows.layout)?;
    output_projection(ctx, st, layer)?;
    ctx.fire(at(HookKind::ResidMid), &mut st.a.resid, &st.rows.layout)
}

/// `ln1` once for the whole row, then the key and value products.
fn ln1_keys_values<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    layer: usize,
) -> Result<()> {
    let w = &ctx.weights.layers[layer];
    let ln1 = NormStep {
        scale_hook: HookPoint::layer(HookKind::Ln1Scale, layer),
        normalized_hook: HookPoint::layer(HookKind::Ln1Normalized, layer),
        w: &w.ln1_w,
        b: w.ln1_b.as_ref(),
        heads: None,
    };
    let a = &mut st.a;
    let out = (&mut a.normed, &mut a.scale);
    apply_norm(ctx, ln1, &a.resid, out, &st.rows.layout)?;
    let (b, rows) = (ctx.b, st.rows.count());
    b.linear(
        &a.normed,
        rows,
        &w.w_k,
        w.b_k.as_ref(),
        Epilogue::Store,
        &mut a.k,
    );
    b.linear(
        &a.normed,
        rows,
        &w.w_v,
        w.b_v.as_ref(),
        Epilogue::Store,
        &mut a.v,
    );
    Ok(())
}

/// `z = softmax(q kᵀ / sqrt(d_head)) v` over the keys and values at every position: the
/// scores and pattern kernels with their slots when either is watched, else the fused kernel.
/// `kv_rows` are the rows keys and values were computed for when they differ from the
/// queries'; `kv_out` receives this layer's keys and values.
fn attend<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    plan: &PassPlan<'_, B>,
    layer: usize,
    kv_rows: Option<&Rows<B>>,
    kv_out: Option<&mut KvCache<B>>,
) -> Result<()> {
    let (b, cfg) = (ctx.b, ctx.cfg);
    let kv_layout = &kv_rows.unwrap_or(&st.rows).layout;
    let p = kv_layout.seq_len;
    if plan.kv_in_place {
        let cache = kv_out.ok_or_else(|| {
            crate::error::HookLensError::input("an in-place pass needs its key/value cache")
        })?;
        return attend_in_place(ctx, st, layer, kv_rows, cache);
    }
    // Every sequence computed whole, in order: the computed rows already are the keys and
    // values at every position. Otherwise they are assembled with the base run's.
    let kv_whole = plan.kv_prefix.is_none()
        && kv_layout.is_full()
        && (kv_layout.seqs.iter().enumerate()).all(|(s, q)| q.offset == s * p);
    if !kv_whole {
        let width = cfg.n_kv_heads * cfg.d_head;
        st.a.ensure_kv_full(b, kv_layout.batch() * p * width);
        let prefix = |keys: bool| {
            plan.kv_prefix.as_ref().and_then(|kv| {
                let (k, v) = kv.cache.layer(layer)?;
                let cache = if keys { k } else { v };
                Some(KvSource {
                    cache,
                    seq_of: kv.seq_base,
                })
            })
        };
        let a = &mut st.a;
        b.assemble_kv(&mut a.k_full, &a.k, kv_layout, width, prefix(true))?;
        b.assemble_kv(&mut a.v_full, &a.v, kv_layout, width, prefix(false))?;
    }
    let watch = watches_scores(ctx, layer);
    if watch {
        st.a.ensure_scores(b);
    }
    let a = &mut st.a;
    // [batch, seq, n_kv_heads, d_head] each
    let (k_all, v_all) = if kv_whole {
        (&a.k, &a.v)
    } else {
        (&a.k_full, &a.v_full)
    };
    if let Some(cache) = kv_out {
        cache.set_layer(layer, k_all.clone(), v_all.clone());
    }
    let mask = st.padding.as_ref().map(|(_, m)| m);
    let out = (&mut a.z, &mut a.scores);
    attention_kernels(ctx, layer, (&a.q, k_all, v_all), out, &st.rows, mask, watch)
}

/// True when `hook_attn_scores` or `hook_pattern` of `layer` is watched.
fn watches_scores<B: Backend>(ctx: &Ctx<'_, '_, '_, B>, layer: usize) -> bool {
    let at = |kind| HookPoint::layer(kind, layer);
    ctx.active(at(HookKind::AttnScores)) || ctx.active(at(HookKind::Pattern))
}

/// Generation's attention: the computed keys and values are written into the cache at their
/// positions, and attention reads every position from the cache (no copy of the earlier
/// positions).
fn attend_in_place<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    layer: usize,
    kv_rows: Option<&Rows<B>>,
    cache: &mut KvCache<B>,
) -> Result<()> {
    let b = ctx.b;
    let width = ctx.cfg.n_kv_heads * ctx.cfg.d_head;
    let kv_layout = &kv_rows.unwrap_or(&st.rows).layout;
    let (keys, values) = cache.layer_mut(layer).ok_or_else(|| {
        crate::error::HookLensError::input("an in-place pass needs every layer's cache")
    })?;
    b.scatter_kv_rows(keys, &st.a.k, kv_layout, width);
    b.scatter_kv_rows(values, &st.a.v, kv_layout, width);
    let watch = watches_scores(ctx, layer);
    if watch {
        st.a.ensure_scores(b);
    }
    let a = &mut st.a;
    let mask = st.padding.as_ref().map(|(_, m)| m);
    let out = (&mut a.z, &mut a.scores);
    attention_kernels(
        ctx,
        layer,
        (&a.q, &*keys, &*values),
        out,
        &st.rows,
        mask,
        watch,
    )
}

/// The attention kernels on queries and every position's keys and values: scores, pattern
/// and values with their slots when `watch` and a slot needs the scores or the pattern,
/// else the fused kernel.
/// q: [rows, n_heads, d_head]   k, v: [batch, seq, n_kv_heads, d_head]
/// z: [rows, n_heads, d_head]   scores: [batch, n_heads, rows per seq, seq]
fn attention_kernels<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    layer: usize,
    (q, k, v): (&B::Buf, &B::Buf, &B::Buf),
    (z, scores): (&mut B::Buf, &mut B::Buf),
    rows: &Rows<B>,
    mask: Option<&B::KeyMask>,
    watch: bool,
) -> Result<()> {
    let (b, cfg) = (ctx.b, ctx.cfg);
    let at = |kind| HookPoint::layer(kind, layer);
    let dims = HeadDims {
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_kv_heads,
        d_head: cfg.d_head,
    };
    if !watch {
        b.attention_fused(q, k, v, z, &rows.dev, mask, dims);
        return Ok(());
    }
    let seq_len = rows.layout.seq_len;
    let scores_out = &mut *scores;
    let produce_scores = move || {
        b.attention_scores(q, k, scores_out, &rows.dev, mask, dims);
        scores_out
    };
    if ctx.fire_deferred(at(HookKind::AttnScores), &rows.layout, produce_scores)? {
        b.softmax_rows(scores, seq_len);
        ctx.fire(at(HookKind::Pattern), scores, &rows.layout)?;
    } else {
        let pattern_out = &mut *scores;
        let produce_pattern = move || {
            b.attention_scores(q, k, pattern_out, &rows.dev, mask, dims);
            b.softmax_rows(pattern_out, seq_len);
            pattern_out
        };
        if !ctx.fire_deferred(at(HookKind::Pattern), &rows.layout, produce_pattern)? {
            // No slot needed the scores or the pattern: the fused kernel gives z.
            b.attention_fused(q, k, v, z, &rows.dev, mask, dims);
            return Ok(());
        }
    }
    b.attention_values(scores, v, z, &rows.dev, dims);
    Ok(())
}

/// `resid += z @ W_O + b_O`: through the per-head result (`hook_result`, opt-in), through
/// `hook_attn_out`, or straight into the residual when no slot needs either.
fn output_projection<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    layer: usize,
) -> Result<()> {
    let (b, cfg) = (ctx.b, ctx.cfg);
    let at = |kind| HookPoint::layer(kind, layer);
    let w = &ctx.weights.layers[layer];
    let (a, layout, rows) = (&mut st.a, &st.rows.layout, st.rows.count());
    let b_o = w.b_o.as_ref();
    if ctx.slots.wants_result(layer) {
        a.ensure_result(b);
        let dims = HeadDims {
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            d_head: cfg.d_head,
        };
        b.per_head_result(&a.z, &w.w_o, rows, dims, &mut a.result);
        ctx.fire(at(HookKind::Result), &mut a.result, layout)?;
        b.sum_heads(&a.result, b_o, cfg.n_heads, cfg.d_model, &mut a.attn_out);
        ctx.fire(at(HookKind::AttnOut), &mut a.attn_out, layout)?;
    } else {
        let (z, attn_out) = (&a.z, &mut a.attn_out);
        let produce = move || {
            b.linear(z, rows, &w.w_o, b_o, Epilogue::Store, attn_out);
            attn_out
        };
        if !ctx.fire_deferred(at(HookKind::AttnOut), layout, produce)? {
            // No slot needed the attention output: the product goes straight into the residual.
            b.linear(&a.z, rows, &w.w_o, b_o, Epilogue::AddInto, &mut a.resid);
            return Ok(());
        }
    }
    b.add(&mut a.resid, &a.attn_out);
    Ok(())
}
