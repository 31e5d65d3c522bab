//! The weights under TransformerLens' names and in its shapes (`W_Q` `[L, H, d_model, d_head]`,
//! `blocks.0.attn._W_K` `[n_kv_heads, d_model, d_head]`, ...), as host tensors derived on request
//! from the weights the backend prepared (the CPU's packed GEMM panels are unpacked; nothing
//! extra is kept at load). Biases a model lacks are zeros, as in TL.

use super::config::{ModelConfig, NormKind, PositionKind};
use super::weights::Weights;
use super::Model;
use crate::backend::cpu::gemm::PackedMatrix;
use crate::error::{HookLensError, Result};
use crate::tensor::Tensor;

/// Names [`Model::tl_weight`] takes for all layers stacked (`W_Q` is `[L, H, d_model, d_head]`).
pub const STACKED_NAMES: [&str; 15] = [
    "W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_in", "W_gate", "W_out", "b_in",
    "b_out", "_W_K", "_W_V",
];

/// Names [`Model::tl_weight`] takes per layer, after `blocks.{l}.`.
pub const LAYER_NAMES: [&str; 23] = [
    "attn.W_Q",
    "attn.W_K",
    "attn.W_V",
    "attn.W_O",
    "attn.b_Q",
    "attn.b_K",
    "attn.b_V",
    "attn.b_O",
    "attn._W_K",
    "attn._W_V",
    "attn._b_K",
    "attn._b_V",
    "mlp.W_in",
    "mlp.W_gate",
    "mlp.W_out",
    "mlp.b_in",
    "mlp.b_out",
    "ln1.w",
    "ln1.b",
    "ln2.w",
    "ln2.b",
    "attn.OV",
    "attn.QK",
];

impl Model {
    /// A weight under its TL name, as a host tensor: `W_E` `[d_vocab, d_model]`, `W_pos`
    /// `[n_ctx, d_model]`, `W_U` `[d_model, d_vocab]`, `b_U`, `ln_final.w` / `ln_final.b`,
    /// every name of [`STACKED_NAMES`] (all layers; `W_K` / `W_V` expanded to every query head
    /// as TL's `model.W_K`, `_W_K` per key/value head) and `blocks.{l}.` + a name of
    /// [`LAYER_NAMES`] (`attn.OV` is `W_V @ W_O` `[H, d_model, d_model]` and `attn.QK`
    /// `W_Q @ W_Kᵀ` `[H, d_model, d_model]`, the factored products multiplied out).
    pub fn tl_weight(&self, name: &str) -> Result<Tensor> {
        let w = self.weights().ok_or_else(|| {
            HookLensError::unsupported("TL weights of a model that is not on the CPU")
        })?;
        let view = TlView {
            model: self,
            cfg: self.config(),
            w,
        };
        view.get(name)
    }
}

/// Weights read under TL names.
struct TlView<'a> {
    model: &'a Model,
    cfg: &'a ModelConfig,
    w: &'a Weights,
}

impl TlView<'_> {
    /// Any supported name.
    fn get(&self, name: &str) -> Result<Tensor> {
        if let Some(rest) = name.strip_prefix("blocks.") {
            let (layer, what) = rest.split_once('.').unwrap_or((rest, ""));
            let l: usize = layer
                .parse()
                .ok()
                .filter(|&l| l < self.cfg.n_layers)
                .ok_or_else(|| unknown(name, self.cfg))?;
            return self.layer(l, what).ok_or_else(|| unknown(name, self.cfg))?;
        }
        if let Some(t) = self.global(name)? {
            return Ok(t);
        }
        if !STACKED_NAMES.contains(&name) {
            return Err(unknown(name, self.cfg));
        }
        let per = |l| {
            self.layer(l, &stacked_to_layer(name))
                .expect("a known name")
        };
        let layers = (0..self.cfg.n_layers)
            .map(per)
            .collect::<Result<Vec<_>>>()?;
        stack(layers)
    }

    /// The weights outside the blocks; `None` for another name.
    fn global(&self, name: &str) -> Result<Option<Tensor>> {
        let (c, w) = (self.cfg, self.w);
        let d = c.d_model;
        Ok(Some(match name {
            "W_E" => tensor(self.model.embedding_host().into_owned(), &[c.d_vocab, d]),
            "W_pos" => match (&w.w_pos, c.positions) {
                (Some(p), PositionKind::Learned) => tensor(p.clone(), &[p.len() / d, d]),
                _ => {
                    return Err(HookLensError::input(
                        "W_pos: this model has rotary positions",
                    ))
                }
            },
            "W_U" => tensor(w.unembed.to_k_by_n(), &[d, c.d_vocab]),
            "b_U" => tensor(or_zeros(&w.b_u, c.d_vocab), &[c.d_vocab]),
            "ln_final.w" => tensor(w.ln_final_w.clone(), &[d]),
            "ln_final.b" => tensor(self.norm_bias(&w.ln_final_b, name)?, &[d]),
            _ => return Ok(None),
        }))
    }

    /// `what` of block `l`; `None` for an unknown name.
    fn layer(&self, l: usize, what: &str) -> Option<Result<Tensor>> {
        let (c, w) = (self.cfg, &self.w.layers[l]);
        let (d, h, k, dh) = (c.d_model, c.n_heads, c.n_kv_heads, c.d_head);
        let heads_out =
            |m: &PackedMatrix, n| tensor(heads_last(&m.to_k_by_n(), d, n, dh), &[n, d, dh]);
        let bias = |b: &Option<Vec<f32>>, n: usize| tensor(or_zeros(b, n * dh), &[n, dh]);
        Some(Ok(match what {
            "attn.W_Q" => heads_out(&w.w_q, h),
            "attn._W_K" => heads_out(&w.w_k, k),
            "attn._W_V" => heads_out(&w.w_v, k),
            "attn.W_K" => expand(heads_out(&w.w_k, k), c),
            "attn.W_V" => expand(heads_out(&w.w_v, k), c),
            "attn.W_O" => tensor(w.w_o.to_k_by_n(), &[h, dh, d]),
            "attn.b_Q" => bias(&w.b_q, h),
            "attn._b_K" => bias(&w.b_k, k),
            "attn._b_V" => bias(&w.b_v, k),
            "attn.b_K" => expand(bias(&w.b_k, k), c),
            "attn.b_V" => expand(bias(&w.b_v, k), c),
            "attn.b_O" => tensor(or_zeros(&w.b_o, d), &[d]),
            "attn.OV" => return Some(self.model.ov(Some(l)).map(|f| f.ab())),
            "attn.QK" => return Some(self.model.qk(Some(l)).map(|f| f.ab())),
            "mlp.W_in" => tensor(w.w_in.to_k_by_n(), &[d, c.d_mlp]),
            "mlp.W_gate" => match &w.w_gate {
                Some(g) => tensor(g.to_k_by_n(), &[d, c.d_mlp]),
                None => return Some(Err(HookLensError::input("W_gate: this MLP is not gated"))),
            },
            "mlp.W_out" => tensor(w.w_out.to_k_by_n(), &[c.d_mlp, d]),
            "mlp.b_in" => tensor(or_zeros(&w.b_in, c.d_mlp), &[c.d_mlp]),
            "mlp.b_out" => tensor(or_zeros(&w.b_out, d), &[d]),
            "ln1.w" => tensor(w.ln1_w.clone(), &[d]),
            "ln2.w" => tensor(w.ln2_w.clone(), &[d]),
            "ln1.b" => return Some(self.norm_bias(&w.ln1_b, what).map(|b| tensor(b, &[d]))),
            "ln2.b" => return Some(self.norm_bias(&w.ln2_b, what).map(|b| tensor(b, &[d]))),
            _ => return None,
        }))
    }

    /// A LayerNorm's bias (an error for RMSNorm, which TL gives none).
    fn norm_bias(&self, b: &Option<Vec<f32>>, name: &str) -> Result<Vec<f32>> {
        match self.cfg.norm {
            NormKind::LayerNorm => Ok(or_zeros(b, self.cfg.d_model)),
            NormKind::RmsNorm => Err(HookLensError::input(format!("{name}: RMSNorm has no bias"))),
        }
    }
}

/// The layer name of a stacked name (`W_Q` -> `attn.W_Q`).
fn stacked_to_layer(name: &str) -> String {
    let module = if name.starts_with("W_in")
        || name.starts_with("W_gate")
        || name.starts_with("W_out")
        || name.starts_with("b_in")
        || name.starts_with("b_out")
    {
        "mlp"
    } else {
        "attn"
    };
    format!("{module}.{name}")
}

/// An error naming what is supported.
fn unknown(name: &str, cfg: &ModelConfig) -> HookLensError {
    HookLensError::input(format!(
        "unknown weight `{name}`: expected W_E, W_pos, W_U, b_U, ln_final.w, ln_final.b, one of \
         {} or blocks.{{0..{}}}. followed by one of {}",
        STACKED_NAMES.join(", "),
        cfg.n_layers.saturating_sub(1),
        LAYER_NAMES.join(", ")
    ))
}

/// A tensor of a shape the weights are known to fill.
fn tensor(data: Vec<f32>, shape: &[usize]) -> Tensor {
    debug_assert_eq!(data.len(), shape.iter().product::<usize>());
    Tensor {
        data,
        shape: shape.to_vec(),
    }
}

/// The values of an optional bias, or `n` zeros.
fn or_zeros(b: &Option<Vec<f32>>, n: usize) -> Vec<f32> {
    b.clone().unwrap_or_else(|| vec![0.0; n])
}

/// `[d, n * dh]` (heads flattened into the columns) to `[n, d, dh]`.
fn heads_last(w: &[f32], d: usize, n: usize, dh: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()]; // [n, d, dh]
    for i in 0..d {
        for h in 0..n {
            let src = &w[i * n * dh + h * dh..][..dh];
            out[(h * d + i) * dh..][..dh].copy_from_slice(src);
        }
    }
    out
}

/// Repeats each key/value head for the query heads that read it (TL's `repeat_interleave`).
fn expand(t: Tensor, cfg: &ModelConfig) -> Tensor {
    let group = cfg.heads_per_kv();
    let per = t.numel() / t.shape[0];
    let data = (0..cfg.n_heads)
        .flat_map(|h| t.data[(h / group) * per..][..per].iter().copied())
        .collect();
    let mut shape = t.shape;
    shape[0] = cfg.n_heads;
    Tensor { data, shape }
}

/// Stacks same-shaped tensors along a new first axis.
fn stack(parts: Vec<Tensor>) -> Result<Tensor> {
    let inner = parts.first().map(|t| t.shape.clone()).unwrap_or_default();
    let mut shape = vec![parts.len()];
    shape.extend(&inner);
    let data = parts.into_iter().flat_map(|t| t.data).collect();
    Tensor::new(data, shape)
}

impl Model {
    /// Column `token` of `W_U`: the residual direction whose dot product with the final
    /// normed residual is the token's logit (before `b_U`). `[d_model]`
    pub fn unembed_direction(&self, token: u32) -> Result<Vec<f32>> {
        let cfg = self.config();
        if token as usize >= cfg.d_vocab {
            return Err(HookLensError::input(format!(
                "token id {token} is out of range for a vocabulary of {}",
                cfg.d_vocab
            )));
        }
        let w = self.weights().ok_or_else(|| {
            HookLensError::unsupported("the unembedding of a model that is not on the CPU")
        })?;
        Ok((0..cfg.d_model)
            .map(|i| w.unembed.get(i, token as usize))
            .collect())
    }
}

impl Model {
    /// `W_U[:, target] - W_U[:, against]` (just the target's column without `against`).
    /// `[d_model]`
    pub fn logit_direction(&self, target: u32, against: Option<u32>) -> Result<Vec<f32>> {
        let mut dir = self.unembed_direction(target)?;
        if let Some(a) = against {
            for (v, o) in dir.iter_mut().zip(self.unembed_direction(a)?) {
                *v -= o;
            }
        }
        Ok(dir)
    }
}
