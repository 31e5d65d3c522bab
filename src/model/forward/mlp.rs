//! One MLP block: `ln2`, the input product with its activation (GELU-new, or SiLU-gated),
//! and the output product into the residual stream, with the MLP hook points between them.

use super::norm::{apply_norm, NormStep};
use super::{Ctx, State};
use crate::backend::{Backend, Epilogue};
use crate::error::Result;
use crate::hooks::point::{HookKind, HookPoint};

/// `resid += mlp(ln2(resid))` for block `layer`, firing `hook_mlp_in` .. `hook_mlp_out`.
pub(super) fn block<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    layer: usize,
) -> Result<()> {
    let at = |kind| HookPoint::layer(kind, layer);
    let w = &ctx.weights.layers[layer];
    let ln2 = NormStep {
        scale_hook: at(HookKind::Ln2Scale),
        normalized_hook: at(HookKind::Ln2Normalized),
        w: &w.ln2_w,
        b: w.ln2_b.as_ref(),
        heads: None,
    };
    let (a, layout) = (&mut st.a, &st.rows.layout);
    // hook_mlp_in (opt-in) is a copy of the residual that only the MLP reads.
    if ctx.active(at(HookKind::MlpIn)) {
        let mut mlp_in = a.resid.clone(); // [rows, d_model]
        ctx.fire(at(HookKind::MlpIn), &mut mlp_in, layout)?;
        apply_norm(ctx, ln2, &mlp_in, (&mut a.normed, &mut a.scale), layout)?;
    } else {
        apply_norm(ctx, ln2, &a.resid, (&mut a.normed, &mut a.scale), layout)?;
    }
    let post_is_linear = activation(ctx, st, layer)?;
    let (b, a, layout, rows) = (ctx.b, &mut st.a, &st.rows.layout, st.rows.count());
    let post = if post_is_linear {
        &mut a.mlp_linear
    } else {
        &mut a.mlp_pre
    };
    ctx.fire(at(HookKind::MlpPost), post, layout)?;
    let (b_out, post) = (w.b_out.as_ref(), &*post);
    let mlp_out = &mut a.mlp_out;
    let produce = move || {
        b.linear(post, rows, &w.w_out, b_out, Epilogue::Store, mlp_out);
        mlp_out
    };
    if ctx.fire_deferred(at(HookKind::MlpOut), layout, produce)? {
        b.add(&mut a.resid, &a.mlp_out);
    } else {
        b.linear(post, rows, &w.w_out, b_out, Epilogue::AddInto, &mut a.resid);
    }
    Ok(())
}

/// The input product and its activation, fused into the product unless a slot in between
/// needs its value. Returns true when the post-activation is in `mlp_linear` (gated MLPs),
/// false when it is in `mlp_pre`.
fn activation<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    layer: usize,
) -> Result<bool> {
    let at = |kind| HookPoint::layer(kind, layer);
    let w = &ctx.weights.layers[layer];
    let (b, a, layout, rows) = (ctx.b, &mut st.a, &st.rows.layout, st.rows.count());
    let (b_in, normed) = (w.b_in.as_ref(), &a.normed);
    let Some(w_gate) = &w.w_gate else {
        let pre = &mut a.mlp_pre;
        let produce = move || {
            b.linear(normed, rows, &w.w_in, b_in, Epilogue::Store, pre);
            pre
        };
        if ctx.fire_deferred(at(HookKind::MlpPre), layout, produce)? {
            b.gelu_new(&mut a.mlp_pre);
        } else {
            b.linear(
                normed,
                rows,
                &w.w_in,
                b_in,
                Epilogue::GeluNew,
                &mut a.mlp_pre,
            );
        }
        return Ok(false);
    };
    b.linear(normed, rows, w_gate, None, Epilogue::Store, &mut a.mlp_pre);
    ctx.fire(at(HookKind::MlpPre), &mut a.mlp_pre, layout)?;
    let linear = &mut a.mlp_linear;
    let produce = move || {
        b.linear(normed, rows, &w.w_in, b_in, Epilogue::Store, linear);
        linear
    };
    if ctx.fire_deferred(at(HookKind::MlpPreLinear), layout, produce)? {
        b.silu_mul(&a.mlp_pre, &mut a.mlp_linear);
    } else {
        let gated = Epilogue::SiluGateMul(&a.mlp_pre);
        b.linear(normed, rows, &w.w_in, b_in, gated, &mut a.mlp_linear);
    }
    Ok(true)
}
