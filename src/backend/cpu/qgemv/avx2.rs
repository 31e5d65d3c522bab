//! AVX2 + FMA decoding and dot products: a block is four ymm vectors of weights, each
//! multiplied into every row's four accumulators.

use std::arch::x86_64::*;

use super::rows::{BLOCK, KIND_Q4_1, KIND_Q8_0};
use super::MAX_ROWS;

/// One block's weights in four vectors of eight (0..8, 8..16, 16..24, 24..32), with the
/// loader's arithmetic.
///
/// # Safety
/// AVX2, FMA and F16C available; `b` readable for one block of `KIND`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn decode<const KIND: u8>(b: *const u8) -> [__m256; 4] {
    // SAFETY (all loads): the caller gives one readable block; every load below lies inside it.
    unsafe {
        let raw = b.cast::<i32>().read_unaligned();
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(raw)); // [d, m, 0, 0]
        let d = _mm256_broadcastss_ps(dm);
        let m = _mm256_broadcastss_ps(_mm_movehdup_ps(dm));
        let mut w = [_mm256_setzero_ps(); 4];
        if KIND == KIND_Q8_0 {
            for (i, v) in w.iter_mut().enumerate() {
                let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(b.add(2 + 8 * i).cast()));
                *v = _mm256_mul_ps(_mm256_cvtepi32_ps(q), d);
            }
            return w;
        }
        let at = if KIND == KIND_Q4_1 { 4 } else { 2 };
        let qs = _mm_loadu_si128(b.add(at).cast());
        let low = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(qs, low);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(qs), low);
        let nibbles = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
        let eight = _mm256_set1_ps(8.0);
        for (v, q) in w.iter_mut().zip(nibbles) {
            let q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q));
            *v = if KIND == KIND_Q4_1 {
                _mm256_add_ps(_mm256_mul_ps(d, q), m)
            } else {
                // q - 8 is exact in f32, as the loader's integer subtraction.
                _mm256_mul_ps(d, _mm256_sub_ps(q, eight))
            };
        }
        w
    }
}

/// Sum of the eight lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn lane_sum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// `out[r] = row · x[r]` for `R` rows.
///
/// # Safety
/// AVX2, FMA and F16C available; `row` holds whole blocks of `KIND`; `x` is readable for
/// `(R - 1) * ldx + blocks * 32` values.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dots<const KIND: u8, const R: usize>(
    row: &[u8],
    block_bytes: usize,
    x: *const f32,
    ldx: usize,
    out: &mut [f32; MAX_ROWS],
) {
    let mut acc = [[_mm256_setzero_ps(); 4]; R];
    for (b, block) in row.chunks_exact(block_bytes).enumerate() {
        // SAFETY: `block` is one whole block (the caller's promise on KIND and chunking).
        let w = unsafe { decode::<KIND>(block.as_ptr()) };
        for (r, acc) in acc.iter_mut().enumerate() {
            for (i, a) in acc.iter_mut().enumerate() {
                // SAFETY: row r's block b lies in the readable extent of `x` the caller gives.
                let xv = unsafe { _mm256_loadu_ps(x.add(r * ldx + b * BLOCK + 8 * i)) };
                *a = _mm256_fmadd_ps(w[i], xv, *a);
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        let s = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
        *o = lane_sum(s);
    }
}

super::row_dots_by_kind_and_rows!("AVX2, FMA and F16C");
