//! The floating-point work a sweep's passes do, counted from what they compute (multiply-add
//! = 2): the projections, the MLP, causal attention and the unembedding. Norms, rotary,
//! activations and residual adds are left out (a few per cent of a block at most).

use crate::model::config::ModelConfig;

/// What one sequence of a pass computes.
#[derive(Clone, Copy, Debug)]
pub(super) struct SeqWork<'a> {
    /// The first block it runs (`n_layers`: none, it starts at the final norm).
    pub first_block: usize,
    /// The first position it computes; it runs positions `start..seq_len`.
    pub start: usize,
    /// Tokens in the sequence.
    pub seq_len: usize,
    /// In the last block, the only positions whose queries, attention, output projection and
    /// MLP run (keys and values still cover every computed position); `None`: all of them.
    pub final_positions: Option<&'a [usize]>,
}

/// Per-row FLOPs of one block's matrix products.
struct BlockProducts {
    /// The query projection.
    query: f64,
    /// The key and value projections.
    keys_values: f64,
    /// The output projection and the MLP.
    output_mlp: f64,
}

fn block_products(cfg: &ModelConfig) -> BlockProducts {
    let d = cfg.d_model as f64;
    let q_width = (cfg.n_heads * cfg.d_head) as f64;
    let kv_width = (cfg.n_kv_heads * cfg.d_head) as f64;
    let mlp_mats = if cfg.gated_mlp() { 3.0 } else { 2.0 };
    BlockProducts {
        query: 2.0 * d * q_width,
        keys_values: 2.0 * d * 2.0 * kv_width,
        output_mlp: 2.0 * q_width * d + mlp_mats * 2.0 * d * cfg.d_mlp as f64,
    }
}

/// Scores and value mixing of one query at `position`: it attends to `position + 1` keys.
fn attention_flops(cfg: &ModelConfig, position: usize) -> f64 {
    4.0 * (cfg.n_heads * cfg.d_head) as f64 * (position + 1) as f64
}

/// FLOPs of one sequence's blocks (no unembedding).
pub(super) fn seq_flops(cfg: &ModelConfig, work: SeqWork<'_>) -> f64 {
    let products = block_products(cfg);
    let positions = work.start..work.seq_len;
    let queries_at = |ps: &mut dyn Iterator<Item = usize>| -> f64 {
        ps.map(|t| products.query + products.output_mlp + attention_flops(cfg, t))
            .sum()
    };
    let mut total = 0.0;
    for layer in work.first_block..cfg.n_layers {
        total += positions.len() as f64 * products.keys_values;
        total += match work.final_positions {
            Some(keep) if layer + 1 == cfg.n_layers => {
                queries_at(&mut positions.clone().filter(|t| keep.contains(t)))
            }
            _ => queries_at(&mut positions.clone()),
        };
    }
    total
}

/// FLOPs of unembedding `rows` rows.
pub(crate) fn unembed_flops(cfg: &ModelConfig, rows: usize) -> f64 {
    2.0 * rows as f64 * cfg.d_model as f64 * cfg.d_vocab as f64
}

/// FLOPs of a whole forward of `batch` sequences of `seq_len` tokens with logits everywhere.
pub(crate) fn full_pass_flops(cfg: &ModelConfig, batch: usize, seq_len: usize) -> f64 {
    let one = SeqWork {
        first_block: 0,
        start: 0,
        seq_len,
        final_positions: None,
    };
    batch as f64 * seq_flops(cfg, one) + unembed_flops(cfg, batch * seq_len)
}

/// FLOPs of a forward of `batch` sequences of `seq_len` tokens with logits only at each
/// sequence's last position (`LogitPositions::Last` with nothing watched in the last block).
pub(crate) fn last_logits_pass_flops(cfg: &ModelConfig, batch: usize, seq_len: usize) -> f64 {
    let last = [seq_len.saturating_sub(1)];
    let one = SeqWork {
        first_block: 0,
        start: 0,
        seq_len,
        final_positions: Some(&last),
    };
    batch as f64 * seq_flops(cfg, one) + unembed_flops(cfg, batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// d_model 4, 2 query heads and 1 key/value head of width 2, gated MLP of width 6, vocab
    /// 10, 3 blocks. Per row: query 2*4*4 = 32, keys and values 2*4*(2*2) = 32, output 2*4*4
    /// = 32, MLP 3*2*4*6 = 144; a query at position t attends to t + 1 keys: 4*4*(t + 1).
    fn tiny() -> ModelConfig {
        ModelConfig {
            n_layers: 3,
            d_model: 4,
            n_heads: 2,
            n_kv_heads: 1,
            d_head: 2,
            d_mlp: 6,
            d_vocab: 10,
            ..ModelConfig::smollm2_135m()
        }
    }

    #[test]
    fn a_full_pass_counts_every_block_row_and_logit() {
        // Per block: 3 rows * 240 + attention 16 * (1 + 2 + 3) = 816; 3 blocks = 2448;
        // logits 3 * 2 * 4 * 10 = 240.
        assert_eq!(full_pass_flops(&tiny(), 1, 3), 2688.0);
        assert_eq!(full_pass_flops(&tiny(), 2, 3), 2.0 * 2688.0);
    }

    #[test]
    fn a_last_logits_pass_restricts_the_last_block_and_the_unembedding() {
        // Blocks 0, 1: 816 each. Block 2: keys and values 3 * 32 = 96, the rest at position
        // 2 only: 32 + 32 + 144 + 16 * 3 = 256. Logits: one row, 2 * 4 * 10 = 80.
        assert_eq!(
            last_logits_pass_flops(&tiny(), 1, 3),
            2.0 * 816.0 + 352.0 + 80.0
        );
        assert_eq!(
            last_logits_pass_flops(&tiny(), 4, 3),
            4.0 * (2.0 * 816.0 + 352.0 + 80.0)
        );
    }

    #[test]
    fn a_variant_counts_its_blocks_positions_and_the_restricted_last_block() {
        let work = SeqWork {
            first_block: 1,
            start: 1,
            seq_len: 3,
            final_positions: Some(&[2]),
        };
        // Block 1 at positions 1, 2: 2 * 240 + 16 * (2 + 3) = 560. Block 2: keys and values
        // at both positions 2 * 32 = 64, the rest only at position 2: 32 + 32 + 144 + 16 * 3
        // = 256.
        assert_eq!(seq_flops(&tiny(), work), 880.0);
        let unwatched = SeqWork {
            final_positions: Some(&[0]),
            ..work
        };
        assert_eq!(seq_flops(&tiny(), unwatched), 560.0 + 64.0);
        let from_final_norm = SeqWork {
            first_block: 3,
            ..work
        };
        assert_eq!(seq_flops(&tiny(), from_final_norm), 0.0);
    }

    #[test]
    fn unembedding_counts_one_product_per_row() {
        assert_eq!(unembed_flops(&tiny(), 7), 7.0 * 2.0 * 4.0 * 10.0);
    }
}
