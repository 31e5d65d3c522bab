//! Readings of model outputs and caches: probabilities and top-k tokens here; residual-stream
//! stacks with TL semantics ([`stack`]), direct logit attribution ([`dla`]), the logit lens
//! ([`lens`]), per-head differences over pairs of prompts ([`head_diff`]) and the per-head OV /
//! QK circuits kept factored ([`factored`], [`Model::ov`] / [`Model::qk`]).

mod circuits;
pub mod dla;
pub mod factored;
pub mod head_diff;
pub mod lens;
pub mod stack;

pub use dla::{direct_logit_attribution, DlaEntry, DlaReport};
pub use factored::FactoredMatrix;
pub use head_diff::{head_z_diff, DiffPositions, HeadDiff};
pub use lens::{logit_lens, LensRow};
pub use stack::{CacheAnalysis, PosSlice, ResidStack};

use crate::error::{HookLensError, Result};
use crate::model::input::{LogitPositions, RunOptions, TokenBatch};
use crate::model::Model;

/// One candidate next token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenProb {
    /// The token id.
    pub token_id: u32,
    /// Its softmax probability.
    pub prob: f32,
    /// Its logit.
    pub logit: f32,
}

/// Softmax of a logit row, computed in f64 for accuracy.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| (e / sum) as f32).collect()
}

/// The `k` most likely tokens of a logit row, most likely first (ties by lower id).
pub fn top_k(logits: &[f32], k: usize) -> Vec<TokenProb> {
    let probs = softmax(logits);
    let mut ids: Vec<usize> = (0..logits.len()).collect();
    ids.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    ids.into_iter()
        .take(k)
        .map(|i| TokenProb {
            token_id: i as u32,
            prob: probs[i],
            logit: logits[i],
        })
        .collect()
}

/// The model's `k` most likely next tokens after `tokens` (one sequence), most likely first:
/// the default target of a sweep.
pub fn top_next_tokens(model: &Model, tokens: &[u32], k: usize) -> Result<Vec<u32>> {
    let opts = RunOptions {
        logits_at: LogitPositions::Last,
        ..RunOptions::default()
    };
    let out = model.forward(&TokenBatch::single(tokens.to_vec())?, &opts)?;
    let logits = out
        .logits
        .ok_or_else(|| HookLensError::input("no logits"))?; // [1, 1, d_vocab]
    Ok(top_k(&logits.data, k).iter().map(|t| t.token_id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_logit() {
        let top = top_k(&[0.0, 2.0, 1.0, 2.0], 3);
        let ids: Vec<u32> = top.iter().map(|t| t.token_id).collect();
        assert_eq!(ids, [1, 3, 2]);
        // p = e^2 / (1 + 2 e^2 + e)
        let e = std::f32::consts::E;
        assert!((top[0].prob - e * e / (1.0 + 2.0 * e * e + e)).abs() < 1e-6);
    }
}
