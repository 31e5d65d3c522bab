//! Stacks of residual-stream components read from an activation cache, with TransformerLens'
//! semantics: `accumulated_resid`, `decompose_resid`, `stack_head_results`, `apply_ln_to_stack`
//! and `logit_attrs` of TL's `ActivationCache`.
//!
//! Two deliberate differences from TL 2.x: `apply_ln_to_stack` multiplies by the norm's weight
//! (TL leaves it out, assuming `fold_ln`), so the values on an unprocessed model equal TL's on
//! the processed one; and [`CacheAnalysis::logit_attrs`] does not apply the norm to a stack
//! that already had it applied (TL applies it again).

use crate::error::{HookLensError, Result};
use crate::hooks::cache::ActivationCache;
use crate::hooks::point::{HookKind, HookPoint};
use crate::model::config::{NormKind, PositionKind};
use crate::model::Model;
use crate::tensor::Tensor;

/// Which positions a stack keeps (TL's `pos_slice`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PosSlice {
    /// Every position: stacks are `[components, batch, pos, d_model]`.
    #[default]
    All,
    /// One position (negative counts from the end); the position axis is dropped:
    /// `[components, batch, d_model]`.
    At(isize),
}

/// Labelled components of the residual stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidStack {
    /// `[components, batch, pos, d_model]`, or `[components, batch, d_model]` for
    /// [`PosSlice::At`].
    pub tensor: Tensor,
    /// One label per component (TL's: `0_pre`, `embed`, `L3H1`, ...).
    pub labels: Vec<String>,
    /// The positions kept.
    pub pos: PosSlice,
    /// The norm whose cached scale [`CacheAnalysis::apply_ln_to_stack`] uses: `ln1` of this
    /// layer, or `ln_final` when it is `n_layers`.
    pub layer: usize,
    /// True once the norm has been applied.
    pub ln_applied: bool,
}

/// Analysis of one cached run of a model.
pub struct CacheAnalysis<'a> {
    model: &'a Model,
    cache: &'a ActivationCache,
}

impl<'a> CacheAnalysis<'a> {
    /// Analysis of `cache`, a run of `model` (weights are read from the model).
    pub fn new(model: &'a Model, cache: &'a ActivationCache) -> Self {
        CacheAnalysis { model, cache }
    }

    /// The model.
    pub fn model(&self) -> &'a Model {
        self.model
    }

    /// The residual stream before each layer up to `layer` (default: all, then
    /// `final_post`), with each `resid_mid` between when `incl_mid`. With `apply_ln` up to
    /// the final norm, each component goes through the whole final norm with its own
    /// statistics, weight and bias (TL's `recompute_ln`: the logit lens); before a layer, the
    /// layer's cached `ln1` scale is used.
    pub fn accumulated_resid(
        &self,
        layer: Option<usize>,
        incl_mid: bool,
        apply_ln: bool,
        pos: PosSlice,
    ) -> Result<ResidStack> {
        let n = self.model.config().n_layers;
        let layer = self.check_layer(layer)?;
        let mut parts = Vec::new();
        for l in 0..=layer {
            if l == n {
                parts.push((
                    HookPoint::layer(HookKind::ResidPost, n - 1),
                    "final_post".into(),
                ));
                continue;
            }
            parts.push((HookPoint::layer(HookKind::ResidPre, l), format!("{l}_pre")));
            if incl_mid && l < layer {
                parts.push((HookPoint::layer(HookKind::ResidMid, l), format!("{l}_mid")));
            }
        }
        let stack = self.finish(self.stack_points(&parts, pos)?, layer, false)?;
        match (apply_ln, layer == n) {
            (true, true) => self.final_norm_each(stack),
            (true, false) => self.apply_ln_to_stack(&stack),
            (false, _) => Ok(stack),
        }
    }

    /// Every component through the final norm with its own statistics (weight and bias).
    fn final_norm_each(&self, mut stack: ResidStack) -> Result<ResidStack> {
        let cfg = self.model.config();
        let w = self.model.tl_weight("ln_final.w")?.data; // [d_model]
        let b = match cfg.norm {
            NormKind::LayerNorm => Some(self.model.tl_weight("ln_final.b")?.data),
            NormKind::RmsNorm => None,
        };
        for row in stack.tensor.data.chunks_exact_mut(cfg.d_model) {
            let d = row.len() as f64;
            let mean = match cfg.norm {
                NormKind::LayerNorm => row.iter().map(|&v| v as f64).sum::<f64>() / d,
                NormKind::RmsNorm => 0.0,
            };
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d;
            let scale = (var + cfg.norm_eps as f64).sqrt();
            for (i, v) in row.iter_mut().enumerate() {
                let bias = b.as_ref().map_or(0.0, |b| b[i]);
                *v = ((*v as f64 - mean) / scale) as f32 * w[i] + bias;
            }
        }
        stack.ln_applied = true;
        Ok(stack)
    }

    /// The embeddings and every attention and MLP output before `layer` (default: all).
    pub fn decompose_resid(
        &self,
        layer: Option<usize>,
        apply_ln: bool,
        pos: PosSlice,
    ) -> Result<ResidStack> {
        let layer = self.check_layer(layer)?;
        let mut parts = vec![(HookPoint::global(HookKind::Embed), "embed".to_string())];
        if self.model.config().positions == PositionKind::Learned {
            parts.push((HookPoint::global(HookKind::PosEmbed), "pos_embed".into()));
        }
        for l in 0..layer {
            parts.push((
                HookPoint::layer(HookKind::AttnOut, l),
                format!("{l}_attn_out"),
            ));
            parts.push((
                HookPoint::layer(HookKind::MlpOut, l),
                format!("{l}_mlp_out"),
            ));
        }
        self.finish(self.stack_points(&parts, pos)?, layer, apply_ln)
    }

    /// Every head's output (`z @ W_O[h]`, without `b_O`) of the layers before `layer`
    /// (default: all), labelled `L{l}H{h}`, layer-major.
    pub fn stack_head_results(
        &self,
        layer: Option<usize>,
        apply_ln: bool,
        pos: PosSlice,
    ) -> Result<ResidStack> {
        let layer = self.check_layer(layer)?;
        let mut stack = self.empty(pos)?;
        for l in 0..layer {
            for (h, rows) in self.head_results(l, pos, false)?.into_iter().enumerate() {
                stack.tensor.data.extend(rows);
                stack.labels.push(format!("L{l}H{h}"));
            }
        }
        self.finish(stack, layer, apply_ln)
    }

    /// TL's `compute_head_results` for layer `l`, at the positions kept: per head
    /// `[batch, pos', d_model]`. With `without_value_bias`, each head's `z` first loses the
    /// value bias its pattern carries (`b_V`, plus the folded `ln1` bias for LayerNorm): the
    /// heads of TL's model processed with `fold_value_biases`.
    pub fn head_results(
        &self,
        l: usize,
        pos: PosSlice,
        without_value_bias: bool,
    ) -> Result<Vec<Vec<f32>>> {
        let cfg = self.model.config();
        let (h, dh, d) = (cfg.n_heads, cfg.d_head, cfg.d_model);
        let z = self.sliced(HookPoint::layer(HookKind::Z, l), pos)?; // [rows, H, d_head]
        let w_o = self.model.tl_weight(&format!("blocks.{l}.attn.W_O"))?; // [H, d_head, d_model]
        let bias = match without_value_bias {
            true => self.value_bias(l)?, // [H, d_head]
            false => vec![0.0; h * dh],
        };
        let rows = z.len() / (h * dh);
        let mut out = vec![vec![0.0f32; rows * d]; h];
        for (head, res) in out.iter_mut().enumerate() {
            let w = &w_o.data[head * dh * d..][..dh * d];
            for r in 0..rows {
                let zr = &z[(r * h + head) * dh..][..dh];
                let o = &mut res[r * d..][..d];
                for (j, (&zv, &bv)) in zr.iter().zip(&bias[head * dh..]).enumerate() {
                    let zv = zv - bv;
                    for (ov, &wv) in o.iter_mut().zip(&w[j * d..][..d]) {
                        *ov += zv * wv;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The bias every value vector of layer `l` carries: `b_V`, plus `ln1.b @ W_V` for
    /// LayerNorm. `[H, d_head]`
    pub fn value_bias(&self, l: usize) -> Result<Vec<f32>> {
        let m = self.model;
        let cfg = m.config();
        let mut bias = m.tl_weight(&format!("blocks.{l}.attn.b_V"))?.data;
        if cfg.norm == NormKind::LayerNorm {
            let ln_b = m.tl_weight(&format!("blocks.{l}.ln1.b"))?.data; // [d_model]
            let w_v = m.tl_weight(&format!("blocks.{l}.attn.W_V"))?; // [H, d_model, d_head]
            let (d, dh) = (cfg.d_model, cfg.d_head);
            for (hj, b) in bias.iter_mut().enumerate() {
                let (h, j) = (hj / dh, hj % dh);
                *b += (0..d)
                    .map(|i| ln_b[i] * w_v.data[(h * d + i) * dh + j])
                    .sum::<f32>();
            }
        }
        Ok(bias)
    }

    /// Divides each component by the cached scale of the stack's norm (after centring, for
    /// LayerNorm) and multiplies by the norm's weight. The norm's bias, a constant no
    /// component carries, is not added.
    pub fn apply_ln_to_stack(&self, stack: &ResidStack) -> Result<ResidStack> {
        if stack.ln_applied {
            return Ok(stack.clone());
        }
        let cfg = self.model.config();
        let (scale_point, w_name) = if stack.layer == cfg.n_layers {
            (
                HookPoint::global(HookKind::LnFinalScale),
                "ln_final.w".into(),
            )
        } else {
            let l = stack.layer;
            (
                HookPoint::layer(HookKind::Ln1Scale, l),
                format!("blocks.{l}.ln1.w"),
            )
        };
        let scale = self.sliced(scale_point, stack.pos)?; // [rows]
        let w = self.model.tl_weight(&w_name)?.data; // [d_model]
        let d = cfg.d_model;
        let mut out = stack.clone();
        for (i, row) in out.tensor.data.chunks_exact_mut(d).enumerate() {
            let s = scale[i % scale.len()];
            let mean = match cfg.norm {
                NormKind::LayerNorm => row.iter().map(|&v| v as f64).sum::<f64>() / d as f64,
                NormKind::RmsNorm => 0.0,
            };
            for (v, &wv) in row.iter_mut().zip(&w) {
                *v = ((*v as f64 - mean) / s as f64) as f32 * wv;
            }
        }
        out.ln_applied = true;
        Ok(out)
    }

    /// Each component's contribution to the logit of `target` (minus that of `against`):
    /// the normed component (the norm applied here unless it already was) dotted with the
    /// unembedding direction. `[components, batch, pos]` or `[components, batch]`.
    pub fn logit_attrs(
        &self,
        stack: &ResidStack,
        target: u32,
        against: Option<u32>,
    ) -> Result<Tensor> {
        let cfg = self.model.config();
        if stack.layer != cfg.n_layers {
            return Err(HookLensError::input(
                "logit attributions need a stack up to the final norm (layer = n_layers)",
            ));
        }
        let normed = self.apply_ln_to_stack(stack)?;
        let dir = self.model.logit_direction(target, against)?;
        let data = (normed.tensor.data.chunks_exact(cfg.d_model))
            .map(|row| dot(row, &dir))
            .collect();
        let shape = normed.tensor.shape[..normed.tensor.shape.len() - 1].to_vec();
        Tensor::new(data, shape)
    }

    /// `layer`, or `n_layers` for `None`; an error past it.
    fn check_layer(&self, layer: Option<usize>) -> Result<usize> {
        let n = self.model.config().n_layers;
        match layer {
            None => Ok(n),
            Some(l) if l <= n => Ok(l),
            Some(l) => Err(HookLensError::input(format!(
                "layer {l} is past the model's {n} layers"
            ))),
        }
    }

    /// The cached points stacked, labelled.
    fn stack_points(&self, parts: &[(HookPoint, String)], pos: PosSlice) -> Result<ResidStack> {
        let mut stack = self.empty(pos)?;
        for (point, label) in parts {
            stack.tensor.data.extend(self.sliced(*point, pos)?);
            stack.labels.push(label.clone());
        }
        Ok(stack)
    }

    /// A stack of no components yet; its shape is fixed by [`CacheAnalysis::finish`].
    fn empty(&self, pos: PosSlice) -> Result<ResidStack> {
        Ok(ResidStack {
            tensor: Tensor {
                data: Vec::new(),
                shape: Vec::new(),
            },
            labels: Vec::new(),
            pos,
            layer: 0,
            ln_applied: false,
        })
    }

    /// Sets the stack's shape and layer, and applies the norm when asked.
    fn finish(&self, mut stack: ResidStack, layer: usize, apply_ln: bool) -> Result<ResidStack> {
        let (batch, seq) = self.batch_seq()?;
        let mut shape = vec![stack.labels.len(), batch];
        if stack.pos == PosSlice::All {
            shape.push(seq);
        }
        shape.push(self.model.config().d_model);
        stack.tensor = Tensor::new(std::mem::take(&mut stack.tensor.data), shape)?;
        stack.layer = layer;
        match apply_ln {
            true => self.apply_ln_to_stack(&stack),
            false => Ok(stack),
        }
    }

    /// `(batch, pos)` of the cached run.
    fn batch_seq(&self) -> Result<(usize, usize)> {
        let t = self.cache.get(HookPoint::global(HookKind::Embed))?;
        Ok((t.shape[0], t.shape[1]))
    }

    /// A cached value `[batch, pos, ...]` at the kept positions, flattened.
    pub(crate) fn sliced(&self, point: HookPoint, pos: PosSlice) -> Result<Vec<f32>> {
        let t = self.cache.get(point)?;
        let (batch, seq) = (t.shape[0], t.shape[1]);
        let PosSlice::At(i) = pos else {
            return Ok(t.data.clone());
        };
        let p = resolve_pos(i, seq)?;
        let inner = t.numel() / (batch * seq).max(1);
        Ok((0..batch)
            .flat_map(|b| t.data[(b * seq + p) * inner..][..inner].iter().copied())
            .collect())
    }
}

/// Position `i` of `seq` (negative from the end), or an error.
pub fn resolve_pos(i: isize, seq: usize) -> Result<usize> {
    let p = if i < 0 { seq as isize + i } else { i };
    if p < 0 || p as usize >= seq {
        return Err(HookLensError::input(format!(
            "position {i} is outside a sequence of {seq} positions"
        )));
    }
    Ok(p as usize)
}

/// `a · b` accumulated in f64.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum::<f64>() as f32
}
