//! Next-token cross-entropy, as TL's `return_type="loss"`.

use super::input::TokenBatch;
use crate::backend::cpu::activation::log_sum_exp;
use crate::error::{HookLensError, Result};
use crate::tensor::Tensor;

/// `-log softmax(logits[b, i])[tokens[b, i + 1]]` for every position but the last; in a
/// padded batch 0 where position `i` or `i + 1` is a pad (TL's loss with an attention mask).
/// logits: // [b, p, vocab]   returns // [b, p - 1]
pub fn next_token_loss(logits: &Tensor, tokens: &TokenBatch) -> Result<Tensor> {
    let (batch, seq) = (tokens.batch(), tokens.seq());
    let vocab = *logits.shape.last().unwrap_or(&0);
    if logits.shape != [batch, seq, vocab] {
        return Err(HookLensError::input(format!(
            "loss needs logits at every position: got shape {:?} for {batch}x{seq} tokens",
            logits.shape
        )));
    }
    let mut out = Vec::with_capacity(batch * seq.saturating_sub(1));
    for b in 0..batch {
        let span = tokens.span(b);
        for i in 0..seq.saturating_sub(1) {
            if !(span.contains(i) && span.contains(i + 1)) {
                out.push(0.0);
                continue;
            }
            let row = &logits.data[(b * seq + i) * vocab..][..vocab];
            let lse = log_sum_exp(row);
            let target = tokens.ids()[b * seq + i + 1] as usize;
            out.push((lse - row[target] as f64) as f32);
        }
    }
    Tensor::new(out, vec![batch, seq.saturating_sub(1)])
}

/// The (position, next position) pairs a loss averages over: both real.
pub fn loss_pairs(tokens: &TokenBatch) -> usize {
    (0..tokens.batch())
        .map(|b| tokens.span(b).len.saturating_sub(1))
        .sum()
}
