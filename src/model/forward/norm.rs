//! LayerNorm / RMSNorm with its two hook points: fused when neither is watched, else in
//! three kernels with the slots between them (TL's order differs between the two norms).

use super::Ctx;
use crate::backend::{Backend, NormParams};
use crate::error::Result;
use crate::hooks::point::HookPoint;
use crate::layout::RowLayout;
use crate::model::config::NormKind;

/// A norm with its two hook points.
pub(crate) struct NormStep<'w, B: Backend> {
    /// Where the scale fires (`ln1.hook_scale`, ...).
    pub scale_hook: HookPoint,
    /// Where the normalised value fires.
    pub normalized_hook: HookPoint,
    /// The norm's weight. `[d_model]`
    pub w: &'w B::Buf,
    /// The LayerNorm bias. `[d_model]`
    pub b: Option<&'w B::Buf>,
    /// `Some(h)` when each row holds `h` per-head inputs (split attention inputs): the hooks
    /// then see TL's per-head shapes `[batch, pos, h, 1]` and `[batch, pos, h, d_model]`.
    pub heads: Option<usize>,
}

/// `out = norm(x)`, `scale` its divisor per row, firing the norm's slots. The fused kernel
/// runs unless a slot needs its value: a cache, an intervention, or a hook that reads or
/// writes it (the slots defer the unfused kernels until then).
/// x, out: `[rows, d_model]`   scale: `[rows]`
pub(crate) fn apply_norm<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    step: NormStep<'_, B>,
    x: &B::Buf,
    (out, scale): (&mut B::Buf, &mut B::Buf),
    layout: &RowLayout,
) -> Result<()> {
    let (b, d) = (ctx.b, ctx.cfg.d_model);
    let layer_norm = ctx.cfg.norm == NormKind::LayerNorm;
    let params = &NormParams {
        w: step.w,
        b: step.b,
        d,
        eps: ctx.cfg.norm_eps,
        layer_norm,
    };
    let scale_at = (step.scale_hook, hook_shape(layout, step.heads, 1));
    let (o, sc) = (&mut *out, &mut *scale);
    let produce_scale = move || {
        b.norm_scale(x, o, sc, params);
        sc
    };
    if ctx
        .slots
        .fire_deferred(b, scale_at, layout, produce_scale)?
    {
        return after_scale(ctx, &step, (out, scale), layout, params);
    }
    // The scale stayed unread: the normalised value, computed only if its slot needs it.
    let normalized_at = (step.normalized_hook, hook_shape(layout, step.heads, d));
    let (o, sc) = (&mut *out, &mut *scale);
    let produce_normalized = move || {
        b.norm_scale(x, o, sc, params);
        b.divide_by_scale(o, sc, d);
        if layer_norm {
            b.affine(o, step.w, step.b, d);
        }
        o
    };
    match ctx
        .slots
        .fire_deferred(b, normalized_at, layout, produce_normalized)?
    {
        // Nobody needed either value: one pass instead of three.
        false => b.norm_fused(x, out, scale, params),
        true if !layer_norm => b.affine(out, step.w, None, d),
        true => {}
    }
    Ok(())
}

/// The norm's steps after `hook_scale` fired on a computed scale: `out` holds the centred
/// (LayerNorm) or copied (RMSNorm) row; divides it, applies the weights, and fires
/// `hook_normalized` where TL does (the two norms differ).
fn after_scale<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    step: &NormStep<'_, B>,
    (out, scale): (&mut B::Buf, &mut B::Buf),
    layout: &RowLayout,
    params: &NormParams<'_, B>,
) -> Result<()> {
    let (b, d) = (ctx.b, params.d);
    b.divide_by_scale(out, scale, d);
    let shape = hook_shape(layout, step.heads, d);
    if params.layer_norm {
        // TL reports LayerNorm's hook_normalized after the affine...
        b.affine(out, step.w, step.b, d);
        ctx.slots
            .fire_shaped(b, step.normalized_hook, out, layout, shape)?;
    } else {
        // ...and RMSNorm's before the weight.
        ctx.slots
            .fire_shaped(b, step.normalized_hook, out, layout, shape)?;
        b.affine(out, step.w, None, d);
    }
    Ok(())
}

/// A norm hook's shape when each row holds `heads` per-head inputs (`width` = 1 for the
/// scale, d_model for the normalised value); `None`: the point's usual shape.
fn hook_shape(layout: &RowLayout, heads: Option<usize>, width: usize) -> Option<Vec<usize>> {
    let computed = layout.positions_per_seq();
    heads.map(|h| vec![layout.batch(), computed, h, width])
}
