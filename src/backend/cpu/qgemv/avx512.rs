//! AVX-512F decoding and dot products: a block is two zmm vectors of weights (16 + 16), each
//! multiplied into every row's two accumulators.

use std::arch::x86_64::*;

use super::rows::{BLOCK, KIND_Q4_1, KIND_Q8_0};
use super::MAX_ROWS;

/// `(d, second f16)` of a block header: the scale and, for Q4_1, the minimum.
///
/// # Safety
/// F16C available; `b` readable for 4 bytes.
#[target_feature(enable = "avx512f,f16c")]
#[inline]
unsafe fn header(b: *const u8) -> (__m512, __m512) {
    // SAFETY: the caller gives 4 readable bytes.
    let raw = unsafe { b.cast::<i32>().read_unaligned() };
    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(raw)); // [d, m, 0, 0]
    (
        _mm512_broadcastss_ps(dm),
        _mm512_broadcastss_ps(_mm_movehdup_ps(dm)),
    )
}

/// One block's weights 0..16 and 16..32, with the loader's arithmetic.
///
/// # Safety
/// AVX-512F and F16C available; `b` readable for one block of `KIND`.
#[target_feature(enable = "avx512f,f16c")]
#[inline]
unsafe fn decode<const KIND: u8>(b: *const u8) -> (__m512, __m512) {
    // SAFETY (all loads): the caller gives one readable block; every load below lies inside it.
    unsafe {
        let (d, m) = header(b);
        if KIND == KIND_Q8_0 {
            let q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128(b.add(2).cast()));
            let q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128(b.add(18).cast()));
            return (
                _mm512_mul_ps(_mm512_cvtepi32_ps(q0), d),
                _mm512_mul_ps(_mm512_cvtepi32_ps(q1), d),
            );
        }
        let at = if KIND == KIND_Q4_1 { 4 } else { 2 };
        let qs = _mm_loadu_si128(b.add(at).cast());
        let low = _mm_set1_epi8(0x0F);
        let lo = _mm512_cvtepu8_epi32(_mm_and_si128(qs, low));
        let hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16::<4>(qs), low));
        let (lo, hi) = (_mm512_cvtepi32_ps(lo), _mm512_cvtepi32_ps(hi));
        if KIND == KIND_Q4_1 {
            (
                _mm512_add_ps(_mm512_mul_ps(d, lo), m),
                _mm512_add_ps(_mm512_mul_ps(d, hi), m),
            )
        } else {
            // q - 8 is exact in f32, as the loader's integer subtraction.
            let eight = _mm512_set1_ps(8.0);
            (
                _mm512_mul_ps(d, _mm512_sub_ps(lo, eight)),
                _mm512_mul_ps(d, _mm512_sub_ps(hi, eight)),
            )
        }
    }
}

/// `out[r] = row · x[r]` for `R` rows.
///
/// # Safety
/// AVX-512F and F16C available; `row` holds whole blocks of `KIND`; `x` is readable for
/// `(R - 1) * ldx + blocks * 32` values.
#[target_feature(enable = "avx512f,f16c")]
unsafe fn dots<const KIND: u8, const R: usize>(
    row: &[u8],
    block_bytes: usize,
    x: *const f32,
    ldx: usize,
    out: &mut [f32; MAX_ROWS],
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for (b, block) in row.chunks_exact(block_bytes).enumerate() {
        // SAFETY: `block` is one whole block (the caller's promise on KIND and chunking).
        let (w0, w1) = unsafe { decode::<KIND>(block.as_ptr()) };
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row r's block b lies in the readable extent of `x` the caller gives.
            let xs = unsafe { x.add(r * ldx + b * BLOCK) };
            // SAFETY: as above, 32 values from `xs`.
            unsafe {
                acc[0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xs), acc[0]);
                acc[1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xs.add(16)), acc[1]);
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = _mm512_reduce_add_ps(_mm512_add_ps(a[0], a[1]));
    }
}

super::row_dots_by_kind_and_rows!("AVX-512F and F16C");
