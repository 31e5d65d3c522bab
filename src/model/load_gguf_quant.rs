//! Hands a GGUF file's quantised weight rows to the CPU matrices dequantised from them, so
//! small-batch products read the file's blocks (see [`crate::backend::cpu::qgemv`]).
//!
//! The rows stay in the file's mapping (nothing is copied at load), which the matrices keep
//! alive; like the packed-weight cache's mapping, the file must not be truncated while the
//! model is in use.

use std::ops::Range;
use std::sync::Arc;

use super::config::ModelConfig;
use super::gguf::{GgmlType, GgufFile};
use super::load_gguf::gguf_llama_names;
use super::load_llama::LlamaTensor;
use super::weights::Weights;
use crate::backend::cpu::gemm::PackedMatrix;
use crate::backend::cpu::qgemv::{QuantKind, QuantRows};

/// A matrix of a Llama model's weights.
#[derive(Clone, Copy, Debug)]
enum Which {
    Q(usize),
    K(usize),
    V(usize),
    O(usize),
    Up(usize),
    Gate(usize),
    Down(usize),
    Unembed,
}

/// One tensor to attach: its matrix, type, stored bytes and row order.
struct Planned {
    which: Which,
    kind: QuantKind,
    bytes: Range<usize>,
    row_of: Option<Vec<u32>>,
}

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
    let plan: Vec<Planned> = every_matrix(cfg, tied)
        .filter_map(|(which, t)| plan_one(weights, file, cfg, which, t))
        .collect();
    if plan.is_empty() {
        return;
    }
    let map: Arc<dyn AsRef<[u8]> + Send + Sync> = file.shared_map();
    for p in plan {
        let m = matrix_mut(weights, p.which).expect("planned matrices exist");
        let shape = (p.kind, m.k(), m.n());
        if let Some(rows) = QuantRows::new(Arc::clone(&map), p.bytes.start, shape, p.row_of) {
            m.attach_quantized(rows);
        }
    }
}

/// Every matrix with the tensor it was read from.
fn every_matrix(cfg: &ModelConfig, tied: bool) -> impl Iterator<Item = (Which, LlamaTensor)> {
    use LlamaTensor as T;
    let layers = (0..cfg.n_layers).flat_map(|l| {
        [
            (Which::Q(l), T::Q(l)),
            (Which::K(l), T::K(l)),
            (Which::V(l), T::V(l)),
            (Which::O(l), T::O(l)),
            (Which::Up(l), T::Up(l)),
            (Which::Gate(l), T::Gate(l)),
            (Which::Down(l), T::Down(l)),
        ]
    });
    let unembed = if tied { T::Embed } else { T::LmHead };
    layers.chain(std::iter::once((Which::Unembed, unembed)))
}

/// The matrix `which` names, if the model has it.
fn matrix_mut(w: &mut Weights, which: Which) -> Option<&mut PackedMatrix> {
    Some(match which {
        Which::Q(l) => &mut w.layers.get_mut(l)?.w_q,
        Which::K(l) => &mut w.layers.get_mut(l)?.w_k,
        Which::V(l) => &mut w.layers.get_mut(l)?.w_v,
        Which::O(l) => &mut w.layers.get_mut(l)?.w_o,
        Which::Up(l) => &mut w.layers.get_mut(l)?.w_in,
        Which::Gate(l) => w.layers.get_mut(l)?.w_gate.as_mut()?,
        Which::Down(l) => &mut w.layers.get_mut(l)?.w_out,
        Which::Unembed => &mut w.unembed,
    })
}

/// Tensor `t` for matrix `which`, when its rows can serve it: a decodable type and the
/// matrix's shape (GGUF dims are innermost first, so `[k, n]` is `n` rows of `k` weights).
fn plan_one(
    w: &mut Weights,
    file: &GgufFile,
    cfg: &ModelConfig,
    which: Which,
    t: LlamaTensor,
) -> Option<Planned> {
    let name = gguf_llama_names(t);
    let info = file.tensor_info(&name)?;
    let kind = match info.ggml_type {
        GgmlType::Q8_0 => QuantKind::Q8_0,
        GgmlType::Q4_0 => QuantKind::Q4_0,
        GgmlType::Q4_1 => QuantKind::Q4_1,
        _ => return None,
    };
    let m = matrix_mut(w, which)?;
    if info.dims != [m.k(), m.n()] {
        return None;
    }
    let bytes = file.tensor_range(&name).ok()?;
    // llama.cpp's converter stored q/k rows in its rotary order; the loader un-permuted them.
    let row_of = match which {
        Which::Q(_) => Some(stored_row_order(cfg.n_heads, cfg.d_head)),
        Which::K(_) => Some(stored_row_order(cfg.n_kv_heads, cfg.d_head)),
        _ => None,
    };
    Some(Planned {
        which,
        kind,
        bytes,
        row_of,
    })
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
