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

/// `out = norm(x)`, `scale` its divisor per row, firing the norm's slots.
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
    let params = NormParams {
        w: step.w,
        b: step.b,
        d,
        eps: ctx.cfg.norm_eps,
        layer_norm,
    };
    if !ctx.active(step.scale_hook) && !ctx.active(step.normalized_hook) {
        // Nobody watches the intermediate values: one pass instead of three.
        b.norm_fused(x, out, scale, &params);
        return Ok(());
    }
    b.norm_scale(x, out, scale, &params);
    fire_norm_hook(ctx, step.scale_hook, scale, layout, (step.heads, 1))?;
    b.divide_by_scale(out, scale, d);
    if layer_norm {
        // TL reports LayerNorm's hook_normalized after the affine...
        b.affine(out, step.w, step.b, d);
        fire_norm_hook(ctx, step.normalized_hook, out, layout, (step.heads, d))?;
    } else {
        // ...and RMSNorm's before the weight.
        fire_norm_hook(ctx, step.normalized_hook, out, layout, (step.heads, d))?;
        b.affine(out, step.w, None, d);
    }
    Ok(())
}

/// Fires a norm hook with its usual shape, or the per-head one (`width` = 1 or d_model).
fn fire_norm_hook<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    point: HookPoint,
    data: &mut B::Buf,
    layout: &RowLayout,
    (heads, width): (Option<usize>, usize),
) -> Result<()> {
    let computed = layout.positions_per_seq();
    let shape = heads.map(|h| vec![layout.batch(), computed, h, width]);
    ctx.slots.fire_shaped(ctx.b, point, data, layout, shape)
}
