//! Direct logit attribution at the last position: every head, each layer's attention bias and
//! MLP, and the embeddings, each through the cached final-norm scale onto the unembedding
//! direction of a token (or a token difference). The decomposition is that of TL's model
//! processed with `fold_ln`, `center_writing_weights` and `fold_value_biases`: a head's share
//! excludes the value bias its pattern carries, which goes to the layer's attention bias.

use serde::Serialize;

use super::stack::{CacheAnalysis, PosSlice, ResidStack};
use crate::error::{HookLensError, Result};
use crate::hooks::cache::NamesFilter;
use crate::hooks::point::{HookKind, HookPoint};
use crate::model::config::PositionKind;
use crate::model::input::{LogitPositions, RunOptions, TokenBatch};
use crate::model::Model;
use crate::tensor::Tensor;

/// One component's attribution.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DlaEntry {
    /// The layer (none, serialized as null, for the embeddings).
    pub layer: Option<usize>,
    /// The head (heads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<usize>,
    /// `head`, `attn_bias`, `mlp`, `embed` or `pos_embed`.
    pub component: &'static str,
    /// Its contribution to the logit (difference).
    pub value: f32,
}

/// Every component's attribution, and the check against the model's output.
#[derive(Clone, Debug, PartialEq)]
pub struct DlaReport {
    /// Embeddings first, then per layer its heads, attention bias and MLP.
    pub entries: Vec<DlaEntry>,
    /// The sum of the entries.
    pub sum: f32,
    /// The part of the logit (difference) no component carries: the final norm's bias and
    /// `b_U` (zero for RMSNorm models without an unembedding bias).
    pub constant: f32,
    /// The model's logit of the target (minus the other's) at the last position.
    pub logit: f32,
}

impl DlaReport {
    /// `|sum + constant - logit|`: zero up to rounding.
    pub fn check_error(&self) -> f32 {
        (self.sum + self.constant - self.logit).abs()
    }
}

/// Direct logit attribution for one sequence at its last position.
pub fn direct_logit_attribution(
    model: &Model,
    tokens: &[u32],
    target: u32,
    against: Option<u32>,
) -> Result<DlaReport> {
    let batch = TokenBatch::single(tokens.to_vec())?;
    let filter = NamesFilter::regex(
        r"^(hook_embed|hook_pos_embed|blocks\.\d+\.attn\.hook_z|blocks\.\d+\.hook_mlp_out|ln_final\.hook_scale)$",
    )?;
    let opts = RunOptions {
        logits_at: LogitPositions::Last,
        ..RunOptions::default()
    };
    let (out, cache) = model.run_with_cache(&batch, &filter, &opts)?;
    let logits = out
        .logits
        .ok_or_else(|| HookLensError::input("no logits"))?; // [1, 1, d_vocab]
    let logit_of = |t: u32| logits.data[t as usize];
    let logit = logit_of(target) - against.map_or(0.0, logit_of);
    let analysis = CacheAnalysis::new(model, &cache);
    let (stack, entries) = components(&analysis)?;
    let attrs = analysis.logit_attrs(&stack, target, against)?; // [components, 1]
    let entries: Vec<DlaEntry> = (entries.into_iter().zip(&attrs.data))
        .map(|(e, &value)| DlaEntry { value, ..e })
        .collect();
    let sum = entries.iter().map(|e| e.value as f64).sum::<f64>() as f32;
    let constant = constant(model, target, against)?;
    Ok(DlaReport {
        entries,
        sum,
        constant,
        logit,
    })
}

/// The components at the last position, stacked up to the final norm, with their entries
/// (values still zero).
fn components(a: &CacheAnalysis<'_>) -> Result<(ResidStack, Vec<DlaEntry>)> {
    let model = a.model();
    let cfg = model.config();
    let last = PosSlice::At(-1);
    let entry = |layer, head, component| DlaEntry {
        layer,
        head,
        component,
        value: 0.0,
    };
    let mut data = a.sliced(HookPoint::global(HookKind::Embed), last)?;
    let mut entries = vec![entry(None, None, "embed")];
    if cfg.positions == PositionKind::Learned {
        data.extend(a.sliced(HookPoint::global(HookKind::PosEmbed), last)?);
        entries.push(entry(None, None, "pos_embed"));
    }
    for l in 0..cfg.n_layers {
        for (h, rows) in a.head_results(l, last, true)?.into_iter().enumerate() {
            data.extend(rows);
            entries.push(entry(Some(l), Some(h), "head"));
        }
        data.extend(attn_bias(a, l)?);
        entries.push(entry(Some(l), None, "attn_bias"));
        data.extend(a.sliced(HookPoint::layer(HookKind::MlpOut, l), last)?);
        entries.push(entry(Some(l), None, "mlp"));
    }
    let labels = entries.iter().map(label).collect();
    let stack = ResidStack {
        tensor: Tensor::new(data, vec![entries.len(), 1, cfg.d_model])?,
        labels,
        pos: last,
        layer: cfg.n_layers,
        ln_applied: false,
    };
    Ok((stack, entries))
}

/// A TL-style label for an entry (`L3H1`, `3_attn_bias`, `3_mlp_out`, `embed`).
fn label(e: &DlaEntry) -> String {
    match (e.layer, e.head, e.component) {
        (Some(l), Some(h), _) => format!("L{l}H{h}"),
        (Some(l), None, "mlp") => format!("{l}_mlp_out"),
        (Some(l), None, c) => format!("{l}_{c}"),
        (None, _, c) => c.to_string(),
    }
}

/// Layer `l`'s attention bias with the value biases folded in:
/// `b_O + sum_h value_bias[h] @ W_O[h]`. `[d_model]`
fn attn_bias(a: &CacheAnalysis<'_>, l: usize) -> Result<Vec<f32>> {
    let model = a.model();
    let cfg = model.config();
    let (d, dh) = (cfg.d_model, cfg.d_head);
    let mut out = model.tl_weight(&format!("blocks.{l}.attn.b_O"))?.data;
    let vb = a.value_bias(l)?; // [H, d_head]
    let w_o = model.tl_weight(&format!("blocks.{l}.attn.W_O"))?; // [H, d_head, d_model]
    for (hj, &b) in vb.iter().enumerate() {
        for (o, &w) in out.iter_mut().zip(&w_o.data[hj * d..][..d]) {
            *o += b * w;
        }
    }
    debug_assert_eq!(vb.len(), cfg.n_heads * dh);
    Ok(out)
}

/// `ln_final.b · dir + b_U[target] - b_U[against]`.
fn constant(model: &Model, target: u32, against: Option<u32>) -> Result<f32> {
    let cfg = model.config();
    let b_u = model.tl_weight("b_U")?.data;
    let mut c = b_u[target as usize] - against.map_or(0.0, |a| b_u[a as usize]);
    if cfg.norm == crate::model::config::NormKind::LayerNorm {
        let ln_b = model.tl_weight("ln_final.b")?.data;
        let dir = model.logit_direction(target, against)?;
        c += ln_b.iter().zip(&dir).map(|(&b, &v)| b * v).sum::<f32>();
    }
    Ok(c)
}
