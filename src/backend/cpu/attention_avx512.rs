//! The fused attention of one query row and one head with AVX-512 intrinsics: scores sixteen
//! keys at a time against the transposed keys, the softmax (vectorised by the compiler inside
//! this AVX-512 function), and the weighted sum of values sixteen dimensions at a time. Each
//! product keeps four independent accumulators so the FMAs do not wait on each other.
//! The plain version in `attention.rs` is the reference it is tested against.

use std::arch::x86_64::*;

/// `[ones for the first n lanes]`, for `n <= 16`.
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    ((1u32 << n.min(16)) - 1) as u16
}

/// One query row of one head: `z_row = softmax(scale * q·K) V` over the keys `scores.len()`.
/// kt: `[d_head, padded]` transposed keys, zero-padded rows of `padded` (a multiple of 16)
/// values: (`[keys, kv_width]` values of the sequence, offset of the head, kv_width)
///
/// # Safety
/// The CPU must support AVX-512F. Slices as described: `kt` holds `d_head * padded` values with
/// `padded >= scores.len()` a multiple of 16, `values.0` holds `scores.len()` rows of
/// `kv_width >= offset + d_head`, `q_row` and `z_row` are `d_head` long.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn attend_one(
    q_row: &[f32],
    kt: &[f32],
    padded: usize,
    scale: f32,
    scores: &mut [f32],
    values: (&[f32], usize, usize),
    z_row: &mut [f32],
) {
    let d_head = q_row.len();
    let n = scores.len();
    assert!(
        padded.is_multiple_of(16)
            && padded >= n
            && kt.len() >= d_head * padded
            && z_row.len() == d_head,
        "attend_one: inconsistent shapes"
    );
    let (v_seq, offset, kv_width) = values;
    assert!(offset + d_head <= kv_width && v_seq.len() >= n * kv_width);

    // Scores, sixteen keys per block.
    let (q, k) = (q_row.as_ptr(), kt.as_ptr());
    let mut j0 = 0;
    while j0 < n {
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut d = 0;
        while d + 4 <= d_head {
            for (part, a) in acc.iter_mut().enumerate() {
                // SAFETY: d + part < d_head and j0 + 16 <= padded, so the 16 values lie in
                // row d + part of kt; q has d_head values.
                unsafe {
                    let kv = _mm512_loadu_ps(k.add((d + part) * padded + j0));
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(d + part)), kv, *a);
                }
            }
            d += 4;
        }
        while d < d_head {
            // SAFETY: as above.
            unsafe {
                let kv = _mm512_loadu_ps(k.add(d * padded + j0));
                acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(d)), kv, acc[0]);
            }
            d += 1;
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        let out = _mm512_mul_ps(sum, _mm512_set1_ps(scale));
        // SAFETY: lanes past n are masked off; the others are scores[j0 .. min(j0 + 16, n)].
        unsafe { _mm512_mask_storeu_ps(scores.as_mut_ptr().add(j0), lanes(n - j0), out) };
        j0 += 16;
    }

    super::attention::softmax_in_place(scores);

    // Values, sixteen dimensions per block, four keys per step.
    let (w, v) = (scores.as_ptr(), v_seq.as_ptr());
    let mut d0 = 0;
    while d0 < d_head {
        let mask = lanes(d_head - d0);
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut j = 0;
        while j + 4 <= n {
            for (part, a) in acc.iter_mut().enumerate() {
                // SAFETY: key j + part < n has a row of kv_width values; the unmasked lanes are
                // dimensions offset + d0 .. offset + d_head of it; masked lanes are not read.
                unsafe {
                    let row = v.add((j + part) * kv_width + offset + d0);
                    let vv = _mm512_maskz_loadu_ps(mask, row);
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*w.add(j + part)), vv, *a);
                }
            }
            j += 4;
        }
        while j < n {
            // SAFETY: as above.
            unsafe {
                let vv = _mm512_maskz_loadu_ps(mask, v.add(j * kv_width + offset + d0));
                acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(*w.add(j)), vv, acc[0]);
            }
            j += 1;
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        // SAFETY: the unmasked lanes are z_row[d0 .. min(d0 + 16, d_head)].
        unsafe { _mm512_mask_storeu_ps(z_row.as_mut_ptr().add(d0), mask, sum) };
        d0 += 16;
    }
}

/// Query vectors [`attend_block`] takes at once: each loaded key or value vector then feeds
/// eight multiply-adds instead of one, so the products are bound by the FMA units rather than
/// by loads.
pub(super) const QUERY_BLOCK: usize = 8;

/// [`QUERY_BLOCK`] query vectors that read the same kv head of one sequence (query heads of
/// a GQA group and/or neighbouring positions): `z_r = softmax(scale * q_r·K[..=t_r]) V`.
/// Scores are computed for keys up to the largest `t_r` and the ones past each vector's own
/// `t_r` get zero weight, so the result is that of [`attend_one`] per vector.
/// qs: `[QUERY_BLOCK, d_head]`   last: `[QUERY_BLOCK]` (each `t_r`)
/// kt: `[d_head, padded]` as for [`attend_one`]   scores: scratch of `QUERY_BLOCK * padded`
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
