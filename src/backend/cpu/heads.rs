//! Per-head reshuffles of the opt-in hook points (`attn.hook_result`, split attention
//! inputs) and the assembly of keys/values from computed rows and a base run's prefix.

use super::activation::add_inplace;
use super::gemm::{gemm, PackedMatrix};
use crate::backend::HeadDims;
use crate::error::{HookLensError, Result};
use crate::layout::RowLayout;

/// `result[r, h, :] = z[r, h, :] @ W_O[h]`, TL's per-head output without `b_O`: for each
/// head, the product with the other heads' values masked to zero (an opt-in hook, so it
/// reuses the packed `W_O` rather than keeping a second copy).
/// z: `[rows, n_heads, d_head]`   w_o: packed `[n_heads * d_head, d_model]`
/// result: `[rows, n_heads, d_model]`
pub fn per_head_result(
    z: &[f32],
    w_o: &PackedMatrix,
    rows: usize,
    dims: HeadDims,
    result: &mut [f32],
) {
    let (h_n, dh, d) = (dims.n_heads, dims.d_head, w_o.n());
    let q = h_n * dh;
    let mut masked = vec![0.0f32; rows * q]; // [rows, n_heads * d_head]
    let mut out = vec![0.0f32; rows * d]; // [rows, d_model]
    for h in 0..h_n {
        masked.fill(0.0);
        for r in 0..rows {
            let src = &z[r * q + h * dh..][..dh];
            masked[r * q + h * dh..][..dh].copy_from_slice(src);
        }
        gemm(&masked, rows, w_o, None, &mut out);
        for r in 0..rows {
            result[(r * h_n + h) * d..][..d].copy_from_slice(&out[r * d..(r + 1) * d]);
        }
    }
}

/// `out[r] = Σ_h result[r, h] + b_O`. result: `[rows, n_heads, d]`   out: `[rows, d]`
pub fn sum_heads(result: &[f32], b_o: Option<&[f32]>, n_heads: usize, d: usize, out: &mut [f32]) {
    for (r, row) in out.chunks_exact_mut(d).enumerate() {
        match b_o {
            Some(b) => row.copy_from_slice(b),
            None => row.fill(0.0),
        }
        for h in 0..n_heads {
            add_inplace(row, &result[(r * n_heads + h) * d..][..d]);
        }
    }
}

/// Each row copied once per head. x: `[rows, d]` -> `[rows, heads, d]`
pub fn repeat_per_head(x: &[f32], heads: usize, d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() * heads);
    for row in x.chunks_exact(d) {
        for _ in 0..heads {
            out.extend_from_slice(row);
        }
    }
    out
}

/// Head `h` of row `r` of `out` is head `h`'s columns of the product row `(r, h)`.
/// product: `[rows, heads, heads * d_head]`   out: `[rows, heads * d_head]`
pub fn own_head_columns(product: &[f32], heads: usize, d_head: usize, out: &mut [f32]) {
    let width = heads * d_head;
    for (i, src) in product.chunks_exact(width).enumerate() {
        let (r, h) = (i / heads, i % heads);
        let cols = h * d_head..(h + 1) * d_head;
        out[r * width..][cols.clone()].copy_from_slice(&src[cols]);
    }
}

/// Writes a layer's keys (or values) for every position into `full` `[batch, seq_len, width]`:
/// computed rows from `rows` `[rows, width]`, the others from `base(s)`, the base run's
/// `[seq_len, width]` block for sequence `s`.
pub fn assemble_kv<'b>(
    full: &mut [f32],
    rows: &[f32],
    layout: &RowLayout,
    width: usize,
    base: impl Fn(usize) -> Option<&'b [f32]>,
) -> Result<()> {
    let p = layout.seq_len;
    for (s, seq) in layout.seqs.iter().enumerate() {
        let dst = &mut full[s * p * width..(s + 1) * p * width];
        if seq.positions.len() < p {
            let src = base(s).ok_or_else(|| {
                HookLensError::input("a partial pass needs the base run's keys and values")
            })?;
            dst.copy_from_slice(src);
        }
    }
    scatter_rows(full, rows, layout, width);
    Ok(())
}

/// Writes each computed row `[rows, width]` at its position of `full` `[batch, seq, width]`.
pub fn scatter_rows(full: &mut [f32], rows: &[f32], layout: &RowLayout, width: usize) {
    let p = layout.seq_len;
    for (s, seq) in layout.seqs.iter().enumerate() {
        let dst = &mut full[s * p * width..(s + 1) * p * width];
        for (i, &t) in seq.positions.iter().enumerate() {
            let r = seq.offset + i;
            dst[t * width..(t + 1) * width].copy_from_slice(&rows[r * width..(r + 1) * width]);
        }
    }
}

/// Copies `rows` of `src` (each `width` wide) into a new packed buffer.
pub fn gather_rows(src: &[f32], rows: &[usize], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&src[r * width..(r + 1) * width]);
    }
    out
}
