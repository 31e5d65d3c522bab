//! CPU weights moved onto another backend. A device load with TL's weight processing runs
//! the processing on the CPU weights (`process.rs` works on packed CPU matrices) and then
//! uploads the result, so every backend gets the same processed weights.

use super::weights::{LayerWeights, TokenEmbedding, Weights};
use crate::backend::cpu::gemm::PackedMatrix;
use crate::backend::{Backend, HostMatrix, HostOrder};

/// `w` (CPU weights) uploaded onto `backend`: each matrix unpacked to `[k, n]` and handed
/// to [`Backend::matrix`], each vector to [`Backend::vector`].
pub(crate) fn weights_onto<B: Backend>(w: Weights, backend: &B) -> Weights<B> {
    let vector = |v: Vec<f32>| backend.vector(v);
    Weights {
        w_e: match w.w_e {
            TokenEmbedding::Table(t) => TokenEmbedding::Table(vector(t)),
            TokenEmbedding::TiedToUnembed => TokenEmbedding::TiedToUnembed,
        },
        w_pos: w.w_pos.map(vector),
        layers: (w.layers.into_iter())
            .map(|l| layer_onto(l, backend))
            .collect(),
        ln_final_w: vector(w.ln_final_w),
        ln_final_b: w.ln_final_b.map(vector),
        unembed: matrix_onto(&w.unembed, backend),
        b_u: w.b_u.map(vector),
    }
}

/// One block's weights uploaded onto `backend`.
fn layer_onto<B: Backend>(l: LayerWeights, backend: &B) -> LayerWeights<B> {
    let vector = |v: Vec<f32>| backend.vector(v);
    let matrix = |m: &PackedMatrix| matrix_onto(m, backend);
    LayerWeights {
        ln1_w: vector(l.ln1_w),
        ln1_b: l.ln1_b.map(vector),
        w_q: matrix(&l.w_q),
        b_q: l.b_q.map(vector),
        w_k: matrix(&l.w_k),
        b_k: l.b_k.map(vector),
        w_v: matrix(&l.w_v),
        b_v: l.b_v.map(vector),
        w_o: matrix(&l.w_o),
        b_o: l.b_o.map(vector),
        ln2_w: vector(l.ln2_w),
        ln2_b: l.ln2_b.map(vector),
        w_in: matrix(&l.w_in),
        b_in: l.b_in.map(vector),
        w_gate: l.w_gate.as_ref().map(matrix),
        w_out: matrix(&l.w_out),
        b_out: l.b_out.map(vector),
    }
}

/// A packed CPU matrix as `backend`'s matrix. `[k, n]`
fn matrix_onto<B: Backend>(m: &PackedMatrix, backend: &B) -> B::Matrix {
    let data = m.to_k_by_n(); // [k, n]
    backend.matrix(HostMatrix {
        data: &data,
        k: m.k(),
        n: m.n(),
        order: HostOrder::KByN,
    })
}
