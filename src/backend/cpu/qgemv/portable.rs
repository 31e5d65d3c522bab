//! The portable path (`HOOKLENS_KERNEL=portable`, and CPUs without the SIMD paths): each
//! stored row dequantised by the loader's own function into a scratch row, then dotted with
//! every row of `x`.

use super::rows::QuantKind;
use super::MAX_ROWS;
use crate::model::gguf::dequantize;

/// `out[r] = row · x[r]` for the first `rows` rows of `x` (row stride `ldx`).
/// row: `[k / 32 blocks]`   x: `[rows, ldx]` with `k <= ldx`   scratch: `[k]`
/// out: `[rows]` of `[MAX_ROWS]`
pub(super) fn row_dots(
    kind: QuantKind,
    row: &[u8],
    (x, ldx): (&[f32], usize),
    rows: usize,
    scratch: &mut [f32],
    out: &mut [f32; MAX_ROWS],
) {
    let k = scratch.len();
    dequantize(kind.ggml_type(), row, k, scratch)
        .expect("QuantRows::new checked that a row is whole blocks of its type");
    for (r, o) in out.iter_mut().enumerate().take(rows) {
        let xs = &x[r * ldx..r * ldx + k];
        let mut acc = [0.0f32; 8];
        for (wl, xl) in scratch.chunks_exact(8).zip(xs.chunks_exact(8)) {
            for l in 0..8 {
                acc[l] += wl[l] * xl[l];
            }
        }
        *o = acc.iter().sum();
    }
}
