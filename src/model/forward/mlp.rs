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
    let b_out = w.b_out.as_ref();
    if ctx.active(at(HookKind::MlpOut)) {
        b.linear(post, rows, &w.w_out, b_out, Epilogue::Store, &mut a.mlp_out);
        ctx.fire(at(HookKind::MlpOut), &mut a.mlp_out, layout)?;
        b.add(&mut a.resid, &a.mlp_out);
    } else {
        b.linear(post, rows, &w.w_out, b_out, Epilogue::AddInto, &mut a.resid);
    }
    Ok(())
}

/// The input product and its activation, fused into the product unless a hook watches the
/// value in between. Returns true when the post-activation is in `mlp_linear` (gated MLPs),
/// false when it is in `mlp_pre`.
fn activation<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    layer: usize,
) -> Result<bool> {
    let at = |kind| HookPoint::layer(kind, layer);
    let w = &ctx.weights.layers[layer];
    let (b, a, layout, rows) = (ctx.b, &mut st.a, &st.rows.layout, st.rows.count());
    let b_in = w.b_in.as_ref();
    let Some(w_gate) = &w.w_gate else {
        if !ctx.active(at(HookKind::MlpPre)) {
            let gelu = Epilogue::GeluNew;
            b.linear(&a.normed, rows, &w.w_in, b_in, gelu, &mut a.mlp_pre);
            return Ok(false);
        }
        b.linear(
            &a.normed,
            rows,
            &w.w_in,
            b_in,
            Epilogue::Store,
            &mut a.mlp_pre,
        );
        ctx.fire(at(HookKind::MlpPre), &mut a.mlp_pre, layout)?;
        b.gelu_new(&mut a.mlp_pre);
        return Ok(false);
    };
    b.linear(
        &a.normed,
        rows,
        w_gate,
        None,
        Epilogue::Store,
        &mut a.mlp_pre,
    );
    ctx.fire(at(HookKind::MlpPre), &mut a.mlp_pre, layout)?;
    if ctx.active(at(HookKind::MlpPreLinear)) {
        b.linear(
            &a.normed,
            rows,
            &w.w_in,
            b_in,
            Epilogue::Store,
            &mut a.mlp_linear,
        );
        ctx.fire(at(HookKind::MlpPreLinear), &mut a.mlp_linear, layout)?;
        b.silu_mul(&a.mlp_pre, &mut a.mlp_linear);
    } else {
        let gated = Epilogue::SiluGateMul(&a.mlp_pre);
        b.linear(&a.normed, rows, &w.w_in, b_in, gated, &mut a.mlp_linear);
    }
    Ok(true)
}
