//! The fused attention of a block of query vectors with AVX-512 intrinsics: scores 32 keys at
//! a time against the transposed keys, the softmax (vectorised by the compiler inside this
//! AVX-512 function), and the weighted sum of values 32 dimensions at a time, each loaded
//! vector feeding the multiply-adds of every query in the block. Each vector's sums run in
//! one fixed order (dimension by dimension, key by key) whatever else is in its block, so
//! its output has the same bits in any block. The plain version in `attention.rs` is the
//! reference it is tested against.

use std::arch::x86_64::*;

/// `[ones for the first n lanes]`, for `n <= 16`.
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    ((1u32 << n.min(16)) - 1) as u16
}

/// Query vectors [`attend_block`] takes at once: each loaded key or value vector then feeds
/// eight multiply-adds instead of one, so the products are bound by the FMA units rather than
/// by loads.
pub(super) const QUERY_BLOCK: usize = 8;

/// [`QUERY_BLOCK`] query vectors that read the same kv head of one sequence (query heads of
/// a GQA group and/or neighbouring positions): `z_r = softmax(scale * q_r·K[..=t_r]) V`.
/// Scores are computed for keys up to the largest `t_r` and the ones past each vector's own
/// `t_r` get zero weight; each vector's arithmetic is independent of the others in the block.
/// qs: `[QUERY_BLOCK, d_head]`   last: `[QUERY_BLOCK]` (each `t_r`)
/// kt: `[d_head, padded]` transposed keys, zero-padded rows of `padded`   scores: scratch of `QUERY_BLOCK * padded`
/// values: (`[keys, kv_width]` values of the sequence, offset of the head, kv_width)
/// zs: `[QUERY_BLOCK, d_head]`
///
/// # Safety
/// The CPU must support AVX-512F. Shapes as described, with `padded` a multiple of 16 greater
/// than every `t_r`, and `values.0` holding `max t_r + 1` rows.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn attend_block(
    qs: &[f32],
    last: &[usize; QUERY_BLOCK],
    (kt, padded): (&[f32], usize),
    scale: f32,
    scores: &mut [f32],
    values: (&[f32], usize, usize),
    zs: &mut [f32],
) {
    const QB: usize = QUERY_BLOCK;
    let d_head = qs.len() / QB;
    let keys = last.iter().max().map_or(0, |&t| t + 1);
    let (v_seq, offset, kv_width) = values;
    assert!(
        padded.is_multiple_of(16)
            && padded >= keys
            && qs.len() == QB * d_head
            && zs.len() == QB * d_head
            && kt.len() >= d_head * padded
            && scores.len() >= QB * padded
            && offset + d_head <= kv_width
            && v_seq.len() >= keys * kv_width,
        "attend_block: inconsistent shapes"
    );

    // Scores, 32 keys (two vectors) per block for all eight queries: per step of d, two key
    // loads and eight broadcasts feed sixteen multiply-adds.
    let (q, k, s) = (qs.as_ptr(), kt.as_ptr(), scores.as_mut_ptr());
    let scale_v = _mm512_set1_ps(scale);
    let mut j0 = 0;
    while j0 < keys {
        let two = j0 + 16 < keys; // j0 + 32 <= padded then, as padded is a multiple of 16
        let mut acc = [[_mm512_setzero_ps(); 2]; QB];
        for d in 0..d_head {
            // SAFETY: d < d_head and j0 + 16 (j0 + 32 when `two`) <= padded, so the vectors
            // lie in row d of kt; each q row has d_head values.
            unsafe {
                let row = k.add(d * padded + j0);
                let k0 = _mm512_loadu_ps(row);
                let k1 = if two {
                    _mm512_loadu_ps(row.add(16))
                } else {
                    _mm512_setzero_ps()
                };
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(*q.add(r * d_head + d));
                    acc_r[0] = _mm512_fmadd_ps(b, k0, acc_r[0]);
                    acc_r[1] = _mm512_fmadd_ps(b, k1, acc_r[1]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: row r of scores has padded >= j0 + 16 (j0 + 32 when `two`) values.
            unsafe {
                _mm512_storeu_ps(s.add(r * padded + j0), _mm512_mul_ps(acc_r[0], scale_v));
                if two {
                    let v = _mm512_mul_ps(acc_r[1], scale_v);
                    _mm512_storeu_ps(s.add(r * padded + j0 + 16), v);
                }
            }
        }
        j0 += 32;
    }

    // Softmax over each vector's own keys; the keys after them up to `keys` weigh zero.
    for (r, &t) in last.iter().enumerate() {
        let row = &mut scores[r * padded..r * padded + keys];
        super::attention::softmax_in_place(&mut row[..=t]);
        row[t + 1..].fill(0.0);
    }

    // Values, 32 dimensions (two vectors) per block for all eight queries: per key, two
    // value loads and eight broadcasts feed sixteen multiply-adds.
    let (w, v, z) = (scores.as_ptr(), v_seq.as_ptr(), zs.as_mut_ptr());
    let mut d0 = 0;
    while d0 < d_head {
        let m0 = lanes(d_head - d0);
        let m1 = lanes((d_head - d0).saturating_sub(16));
        let mut acc = [[_mm512_setzero_ps(); 2]; QB];
        for j in 0..keys {
            // SAFETY: key j < keys has a row of kv_width values; the unmasked lanes are
            // dimensions offset + d0 .. offset + d_head of it (masked lanes are not read);
            // row r of scores has keys values.
            unsafe {
                let row = v.add(j * kv_width + offset + d0);
                let v0 = _mm512_maskz_loadu_ps(m0, row);
                // wrapping_add: with m1 empty the address may lie past the slice (not read).
                let v1 = _mm512_maskz_loadu_ps(m1, row.wrapping_add(16));
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(*w.add(r * padded + j));
                    acc_r[0] = _mm512_fmadd_ps(b, v0, acc_r[0]);
                    acc_r[1] = _mm512_fmadd_ps(b, v1, acc_r[1]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: the unmasked lanes are zs[r][d0 .. min(d0 + 32, d_head)].
            unsafe {
                let out = z.add(r * d_head + d0);
                _mm512_mask_storeu_ps(out, m0, acc_r[0]);
                _mm512_mask_storeu_ps(out.wrapping_add(16), m1, acc_r[1]);
            }
        }
        d0 += 32;
    }
}
