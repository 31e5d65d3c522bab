//! Plain-Rust decoding and dot products: the reference the SIMD versions are tested against,
//! and the path of `HOOKLENS_KERNEL=portable`.

use super::rows::{QuantKind, BLOCK};
use super::MAX_ROWS;

/// An f16 stored little-endian at `b[at..at + 2]`, as f32.
pub(super) fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// The 32 weights of one block, with the loader's arithmetic (bit-identical to it).
pub(super) fn decode_block(kind: QuantKind, b: &[u8], w: &mut [f32; BLOCK]) {
    let d = f16_at(b, 0);
    match kind {
        QuantKind::Q8_0 => {
            for (v, &q) in w.iter_mut().zip(&b[2..34]) {
                *v = (q as i8) as f32 * d;
            }
        }
        QuantKind::Q4_0 => {
            for (j, &q) in b[2..18].iter().enumerate() {
                w[j] = d * ((q & 0x0F) as i32 - 8) as f32;
                w[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
            }
        }
        QuantKind::Q4_1 => {
            let m = f16_at(b, 2);
            for (j, &q) in b[4..20].iter().enumerate() {
                w[j] = d * (q & 0x0F) as f32 + m;
                w[j + 16] = d * (q >> 4) as f32 + m;
            }
        }
    }
}

/// `out[r] = row · x[r]` for the first `rows` rows of `x` (row stride `ldx`), one stored
/// row decoded a block at a time.
/// row: `[k / 32 blocks]`   x: `[rows, ldx]` with `k <= ldx`   out: `[rows]` of `[MAX_ROWS]`
pub(super) fn row_dots(
    kind: QuantKind,
    row: &[u8],
    x: &[f32],
    ldx: usize,
    rows: usize,
    out: &mut [f32; MAX_ROWS],
) {
    let mut acc = [[0.0f32; 8]; MAX_ROWS];
    let mut w = [0.0f32; BLOCK];
    for (b, block) in row.chunks_exact(kind.block_bytes()).enumerate() {
        decode_block(kind, block, &mut w);
        for (r, acc) in acc.iter_mut().enumerate().take(rows) {
            let xs = &x[r * ldx + b * BLOCK..r * ldx + (b + 1) * BLOCK];
            for (wl, xl) in w.chunks_exact(8).zip(xs.chunks_exact(8)) {
                for l in 0..8 {
                    acc[l] += wl[l] * xl[l];
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc).take(rows) {
        *o = a.iter().sum();
    }
}
