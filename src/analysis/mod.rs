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

use crate::backend::cpu::activation::log_sum_exp;
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

/// The softmax probability of token `id` in a logit row: `exp(logit - ln sum exp)`, the
/// normaliser from [`log_sum_exp`] (f64-accurate, vectorised); `None` when `id` is outside
/// the row. NaN when the row has a NaN or `+inf` logit or only `-inf` ones, as [`softmax`].
pub fn token_prob(logits: &[f32], id: usize) -> Option<f32> {
    let logit = *logits.get(id)?;
    Some((logit as f64 - log_sum_exp(logits)).exp() as f32)
}

/// The `k` most likely tokens of a logit row, most likely first (ties by lower id). The `k`
/// are selected in linear time (no sort of the whole vocabulary) and their probabilities
/// taken from one normaliser, as [`token_prob`].
pub fn top_k(logits: &[f32], k: usize) -> Vec<TokenProb> {
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    let lse = log_sum_exp(logits);
    let first = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    let mut ids: Vec<usize> = (0..logits.len()).collect();
    if k < ids.len() {
        ids.select_nth_unstable_by(k - 1, first);
        ids.truncate(k);
    }
    ids.sort_unstable_by(first);
    ids.into_iter()
        .map(|i| TokenProb {
            token_id: i as u32,
            prob: (logits[i] as f64 - lse).exp() as f32,
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

    /// The simple reference: the whole row sorted, probabilities from the f64 softmax.
    fn top_k_by_sorting(logits: &[f32], k: usize) -> Vec<TokenProb> {
        let probs = softmax(logits);
        let mut ids: Vec<usize> = (0..logits.len()).collect();
        ids.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        (ids.into_iter().take(k))
            .map(|i| TokenProb {
                token_id: i as u32,
                prob: probs[i],
                logit: logits[i],
            })
            .collect()
    }

    #[test]
    fn top_k_equals_sorting_the_row_on_random_rows_with_ties() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for len in [1usize, 2, 7, 33, 1000, 49_157] {
            // Coarse values so many logits tie; a wide spread so probabilities span decades.
            let row: Vec<f32> = (0..len)
                .map(|_| (next() % 97) as f32 * 0.25 - 12.0)
                .collect();
            for k in [1, 3, 10, len, len + 5] {
                let (got, want) = (top_k(&row, k), top_k_by_sorting(&row, k));
                assert_eq!(got.len(), want.len(), "len {len} k {k}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(
                        (g.token_id, g.logit),
                        (w.token_id, w.logit),
                        "len {len} k {k}"
                    );
                    let rel = ((g.prob - w.prob) / w.prob).abs();
                    assert!(rel < 2e-6, "len {len} k {k}: prob {} vs {}", g.prob, w.prob);
                    let alone = token_prob(&row, g.token_id as usize).unwrap();
                    assert!(((alone - w.prob) / w.prob).abs() < 2e-6);
                }
            }
        }
    }

    #[test]
    fn top_k_of_special_rows_matches_the_softmax() {
        assert!(top_k(&[], 3).is_empty());
        assert!(top_k(&[1.0, 2.0], 0).is_empty());
        assert_eq!(token_prob(&[1.0, 2.0], 2), None, "an id outside the row");
        for row in [
            vec![1.0, f32::NAN, 0.5],
            vec![1.0, f32::INFINITY, 0.5],
            vec![f32::NEG_INFINITY; 4],
        ] {
            let (got, want) = (top_k(&row, 2), top_k_by_sorting(&row, 2));
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.token_id, w.token_id, "{row:?}");
                assert!(
                    g.prob.is_nan() && w.prob.is_nan(),
                    "{row:?}: {} vs {}",
                    g.prob,
                    w.prob
                );
            }
        }
    }
}
