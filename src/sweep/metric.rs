//! What a sweep measures on each variant's output.

use serde::{Deserialize, Serialize};

use crate::backend::cpu::activation::log_sum_exp;
use crate::error::{HookLensError, Result};

/// A scalar read off the logits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Metric {
    /// log p(target) at the last position.
    LogProb {
        /// The target token.
        target: u32,
    },
    /// p(target) at the last position.
    Prob {
        /// The target token.
        target: u32,
    },
    /// logit(target) - logit(other) at the last position.
    LogitDiff {
        /// The target token.
        target: u32,
        /// The token it is compared with.
        other: u32,
    },
    /// Mean next-token cross-entropy over the sequence.
    Loss,
    /// KL(clean || variant) of the next-token distribution at the last position.
    KlToClean,
}

impl Metric {
    /// The positions whose logits the metric reads, for a sequence of `seq_len`.
    pub fn positions(&self, seq_len: usize) -> Vec<usize> {
        match self {
            Metric::Loss => (0..seq_len.saturating_sub(1)).collect(),
            _ => vec![seq_len - 1],
        }
    }

    /// A short name for tables (`logprob`, `prob`, `logit-diff`, `loss`, `kl`).
    pub fn name(&self) -> &'static str {
        match self {
            Metric::LogProb { .. } => "logprob",
            Metric::Prob { .. } => "prob",
            Metric::LogitDiff { .. } => "logit-diff",
            Metric::Loss => "loss",
            Metric::KlToClean => "kl",
        }
    }

    /// Checks the token ids against the vocabulary.
    pub fn validate(&self, d_vocab: usize) -> Result<()> {
        let ids: Vec<u32> = match self {
            Metric::LogProb { target } | Metric::Prob { target } => vec![*target],
            Metric::LogitDiff { target, other } => vec![*target, *other],
            Metric::Loss | Metric::KlToClean => vec![],
        };
        match ids.iter().find(|&&t| t as usize >= d_vocab) {
            Some(t) => Err(HookLensError::input(format!(
                "metric token id {t} is outside the vocabulary ({d_vocab})"
            ))),
            None => Ok(()),
        }
    }

    /// Evaluates the metric. `logits_at(t)` gives the logits at position `t` (one of
    /// [`Metric::positions`]); `tokens` is the sequence; `clean_last` the clean run's logits at
    /// the last position (for KL).
    pub fn evaluate<'a>(
        &self,
        logits_at: impl Fn(usize) -> &'a [f32],
        tokens: &[u32],
        clean_last: Option<&[f32]>,
    ) -> f64 {
        let last = tokens.len() - 1;
        match self {
            Metric::LogProb { target } => log_softmax_at(logits_at(last), *target as usize),
            Metric::Prob { target } => log_softmax_at(logits_at(last), *target as usize).exp(),
            Metric::LogitDiff { target, other } => {
                let l = logits_at(last);
                l[*target as usize] as f64 - l[*other as usize] as f64
            }
            Metric::Loss => {
                let n = tokens.len() - 1;
                let total: f64 = (0..n)
                    .map(|t| -log_softmax_at(logits_at(t), tokens[t + 1] as usize))
                    .sum();
                total / n.max(1) as f64
            }
            Metric::KlToClean => {
                let clean = clean_last.expect("KL needs the clean logits");
                kl(clean, logits_at(last))
            }
        }
    }
}

/// `log softmax(logits)[i]`, in f64 (the normaliser from [`log_sum_exp`]: vectorised
/// exponentials summed in f64, within a few parts in 1e7 of an all-f64 sum).
pub fn log_softmax_at(logits: &[f32], i: usize) -> f64 {
    logits[i] as f64 - log_sum_exp(logits)
}

/// KL(p || q) for the softmaxes of two logit rows, in f64.
pub fn kl(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let (lp, lq) = (log_sum_exp(p_logits), log_sum_exp(q_logits));
    p_logits
        .iter()
        .zip(q_logits)
        .map(|(&a, &b)| {
            let log_p = a as f64 - lp;
            log_p.exp() * (log_p - (b as f64 - lq))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        // logits [0, ln 3] -> p = [1/4, 3/4].
        let l = [0.0f32, 3f32.ln()];
        let m = Metric::Prob { target: 1 };
        assert!((m.evaluate(|_| &l, &[0, 0], None) - 0.75).abs() < 1e-7);
        let m = Metric::LogProb { target: 0 };
        assert!((m.evaluate(|_| &l, &[0, 0], None) - 0.25f64.ln()).abs() < 1e-7);
        let m = Metric::LogitDiff {
            target: 1,
            other: 0,
        };
        assert!((m.evaluate(|_| &l, &[0, 0], None) - 3f64.ln()).abs() < 1e-6);
        // KL([1/4,3/4] || [1/2,1/2]) = 1/4 ln(1/2) + 3/4 ln(3/2)
        let q = [0.0f32, 0.0];
        let want = 0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln();
        assert!((kl(&l, &q) - want).abs() < 1e-7);
        // Loss over tokens [x, 1, 0]: -(ln 3/4 + ln 1/4) / 2
        let m = Metric::Loss;
        let want = -(0.75f64.ln() + 0.25f64.ln()) / 2.0;
        assert!((m.evaluate(|_| &l, &[5, 1, 0], None) - want).abs() < 1e-7);
    }
}
