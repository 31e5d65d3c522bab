//! The logit lens: the residual stream before every layer (and after the last) read through
//! the final norm and the unembedding, as if the model stopped there.

use serde::Serialize;

use super::stack::{CacheAnalysis, PosSlice};
use super::{token_prob, top_k};
use crate::error::{HookLensError, Result};
use crate::hooks::cache::NamesFilter;
use crate::model::input::{Input, RunOptions, TokenBatch};
use crate::model::Model;
use crate::tensor::Tensor;

/// What the lens reads at one layer and position.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LensRow {
    /// The accumulated residual read: `0_pre` .. `{L-1}_pre`, `final_post`.
    pub label: String,
    /// The layer whose input it is (`n_layers` for `final_post`).
    pub layer: usize,
    /// The position.
    pub pos: usize,
    /// The most likely token there.
    pub top_token: u32,
    /// Its probability.
    pub top_prob: f32,
    /// The target's probability, when a target was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_prob: Option<f32>,
}

/// The logit lens over one sequence: every layer at the last position, or at every position
/// with `all_positions` (rows ordered by layer, then position).
pub fn logit_lens(
    model: &Model,
    tokens: &[u32],
    target: Option<u32>,
    all_positions: bool,
) -> Result<Vec<LensRow>> {
    let cfg = model.config();
    if let Some(t) = target.filter(|&t| t as usize >= cfg.d_vocab) {
        return Err(HookLensError::input(format!(
            "target id {t} is out of range for a vocabulary of {}",
            cfg.d_vocab
        )));
    }
    let batch = TokenBatch::single(tokens.to_vec())?;
    let filter = NamesFilter::regex(r"^(hook_embed|blocks\.\d+\.hook_resid_(pre|post))$")?;
    let (_, cache) = model.run_with_cache(&batch, &filter, &RunOptions::default())?;
    let pos = if all_positions {
        PosSlice::All
    } else {
        PosSlice::At(-1)
    };
    let stack = CacheAnalysis::new(model, &cache).accumulated_resid(None, false, false, pos)?;
    let n = stack.labels.len();
    let positions: Vec<usize> = match all_positions {
        true => (0..tokens.len()).collect(),
        false => vec![tokens.len() - 1],
    };
    // [components, positions, d_model] entering the final norm
    let resid = Tensor::new(stack.tensor.data, vec![n, positions.len(), cfg.d_model])?;
    let opts = RunOptions {
        start_at_layer: Some(cfg.n_layers as i64),
        ..RunOptions::default()
    };
    let input = Input::Residual {
        resid: &resid,
        tokens: None,
    };
    let logits = model.forward(input, &opts)?.logits;
    let logits = logits.ok_or_else(|| HookLensError::input("no logits"))?; // [n, positions, d_vocab]
    let rows = logits.data.chunks_exact(cfg.d_vocab).enumerate();
    Ok(rows
        .map(|(i, row)| {
            let (c, p) = (i / positions.len(), positions[i % positions.len()]);
            let top = &top_k(row, 1)[0];
            LensRow {
                label: stack.labels[c].clone(),
                layer: c,
                pos: p,
                top_token: top.token_id,
                top_prob: top.prob,
                target_prob: target.and_then(|t| token_prob(row, t as usize)),
            }
        })
        .collect())
}
