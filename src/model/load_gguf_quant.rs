//! Hands a GGUF file's quantised weight rows to the CPU matrices dequantised from them, so
//! small-batch products read the file's blocks (see [`crate::backend::cpu::qgemv`]).
//!
//! The rows stay in the file's mapping (nothing is copied at load), which the matrices keep
//! alive; like the packed-weight cache's mapping, the file must not be truncated while the
//! model is in use.

use std::sync::Arc;

use super::config::ModelConfig;
use super::gguf::GgufFile;
use super::load_gguf::gguf_llama_names;
use super::load_llama::LlamaTensor;
use super::weights::Weights;
use crate::backend::cpu::gemm::PackedMatrix;
use crate::backend::cpu::qgemv::{QuantKind, QuantRows};

/// Attaches the stored rows of every linear weight and of the unembedding whose type the
/// quantised products decode (Q8_0, Q4_0, Q4_1) and whose shape matches its matrix; other
/// matrices keep only their packed values. `weights` must be the file's weights as loaded
/// (not processed: a processed matrix no longer equals the stored rows).
pub(crate) fn attach_quantized(
    weights: &mut Weights,
    file: &GgufFile,
    cfg: &ModelConfig,
    tied: bool,
) {
    use LlamaTensor as T;
    // llama.cpp's converter stored q/k rows in its rotary order; the loader un-permuted them.
    let q_order = || Some(stored_row_order(cfg.n_heads, cfg.d_head));
    let k_order = || Some(stored_row_order(cfg.n_kv_heads, cfg.d_head));
    for (l, w) in weights.layers.iter_mut().enumerate() {
        attach(&mut w.w_q, file, T::Q(l), q_order());
        attach(&mut w.w_k, file, T::K(l), k_order());
        attach(&mut w.w_v, file, T::V(l), None);
        attach(&mut w.w_o, file, T::O(l), None);
        attach(&mut w.w_in, file, T::Up(l), None);
        if let Some(gate) = w.w_gate.as_mut() {
            attach(gate, file, T::Gate(l), None);
        }
        attach(&mut w.w_out, file, T::Down(l), None);
    }
    let unembed = if tied { T::Embed } else { T::LmHead };
    attach(&mut weights.unembed, file, unembed, None);
}

/// Attaches tensor `t`'s rows (in the file's mapping) to `m` when they can serve it: a
/// decodable type and the matrix's shape (GGUF dims are innermost first, so `[k, n]` is `n`
/// rows of `k` weights). `row_of`: the stored row of each output column.
fn attach(m: &mut PackedMatrix, file: &GgufFile, t: LlamaTensor, row_of: Option<Vec<u32>>) {
    let name = gguf_llama_names(t);
    let Some(info) = file.tensor_info(&name) else {
        return;
    };
    let Some(kind) = QuantKind::from_ggml_type(info.ggml_type) else {
        return;
    };
    if info.dims != [m.k(), m.n()] {
        return;
    }
    let Ok(range) = file.tensor_range(&name) else {
        return;
    };
    let map: Arc<dyn AsRef<[u8]> + Send + Sync> = file.shared_map();
    if let Some(rows) = QuantRows::new(map, range.start, (kind, m.k(), m.n()), row_of) {
        m.attach_quantized(rows);
    }
}

/// For each output row of an un-permuted q/k projection, the stored row it came from: the
/// inverse of the loader's `unpermute_rows` (stored row `h * d_head + 2i + j` is output row
/// `h * d_head + j * d_head / 2 + i`).
fn stored_row_order(heads: usize, d_head: usize) -> Vec<u32> {
    let half = d_head / 2;
    let mut order = vec![0u32; heads * d_head];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                order[h * d_head + j * half + i] = (h * d_head + 2 * i + j) as u32;
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::stored_row_order;
    use crate::model::load_llama::unpermute_rows;

    #[test]
    fn the_row_order_inverts_the_loaders_unpermutation() {
        let (heads, d_head, cols) = (3, 8, 2);
        let stored: Vec<f32> = (0..heads * d_head * cols).map(|v| v as f32).collect();
        let unpermuted = unpermute_rows(&stored, heads, d_head, cols);
        for (out_row, &src) in stored_row_order(heads, d_head).iter().enumerate() {
            let src = src as usize;
            assert_eq!(
                unpermuted[out_row * cols..(out_row + 1) * cols],
                stored[src * cols..(src + 1) * cols]
            );
        }
    }
}
