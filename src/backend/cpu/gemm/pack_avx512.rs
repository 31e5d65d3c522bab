//! AVX-512 packing of `x` micro-panels: 16 columns of up to 16 rows are loaded as rows,
//! transposed in registers (four rounds of shuffles) and stored as 16 columns of `rows` values.

use std::arch::x86_64::*;

use super::pack_a::ABlock;

/// How many columns ahead of the transposed block the rows of `x` are prefetched.
const PREFETCH_COLS: usize = 128;

/// [`super::pack_a::pack_a`] for panels of `mr <= 16` rows.
///
/// # Safety
/// The CPU must support AVX-512F; the block must lie inside `x` (row stride `k`) and `buf` must
/// hold at least `mc * kc` values (as checked by `pack_a`).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pack(x: &[f32], k: usize, blk: ABlock, mr: usize, buf: &mut [f32]) {
    assert!(mr <= 16, "pack_avx512: panels of {mr} rows");
    let ABlock { i0, mc, p0, kc } = blk;
    for (panel, chunk) in buf.chunks_mut(kc * mr).take(mc.div_ceil(mr)).enumerate() {
        let rows = mr.min(mc - panel * mr);
        let dst = &mut chunk[..kc * rows]; // [kc, rows]
        let first = (i0 + panel * mr) * k + p0;
        let src = &x[first..first + (rows - 1) * k + kc]; // rows of stride k, kc used each
        macro_rules! dispatch {
            ($($r:literal)*) => {
                match rows {
                    1 => dst.copy_from_slice(src),
                    $(
                        // SAFETY: AVX-512F is available (this function's contract); `src`
                        // holds $r rows of stride k with kc values each, `dst` kc * $r values.
                        $r => unsafe { panel_of::<$r>(src, k, kc, dst) },
                    )*
                    _ => unreachable!("panel of {rows} rows (mr <= 16)"),
                }
            };
        }
        dispatch!(2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }
}

/// One micro-panel of `R` rows: `dst[c * R + r] = src[r * k + c]` for `c < kc`, 16 columns at a
/// time. `R` is a constant so that the 16 row registers stay in registers.
/// src: `R` rows of stride `k`, `kc` values used from each   dst: `[kc, R]`
///
/// # Safety
/// AVX-512F available; `src` holds at least `(R - 1) * k + kc` values and `dst` `kc * R`.
#[target_feature(enable = "avx512f")]
unsafe fn panel_of<const R: usize>(src: &[f32], k: usize, kc: usize, dst: &mut [f32]) {
    debug_assert!(src.len() >= (R - 1) * k + kc && dst.len() >= kc * R);
    let row_mask: __mmask16 = ((1u32 << R) - 1) as u16;
    let mut c0 = 0;
    while c0 < kc {
        let cols = (kc - c0).min(16);
        let col_mask: __mmask16 = ((1u32 << cols) - 1) as u16;
        let mut v = [_mm512_setzero_ps(); 16];
        for (r, v_r) in v.iter_mut().enumerate().take(R) {
            // SAFETY: row r < R, columns c0 .. c0 + cols <= kc of it lie in `src`; masked-off
            // lanes are not read.
            *v_r = unsafe { _mm512_maskz_loadu_ps(col_mask, src.as_ptr().add(r * k + c0)) };
            // Rows of x often come from memory: ask for them PREFETCH_COLS ahead. (A prefetch
            // never faults; wrapping_add keeps the address arithmetic defined.)
            _mm_prefetch::<_MM_HINT_T0>(
                src.as_ptr().wrapping_add(r * k + c0 + PREFETCH_COLS).cast(),
            );
        }
        let t = transpose16(v);
        for (c, t_c) in t.iter().enumerate().take(cols) {
            // SAFETY: column c0 + c < kc of the panel: R values at (c0 + c) * R lie in `dst`
            // ([kc, R]); lanes past R are masked off and not written.
            unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().add((c0 + c) * R), row_mask, *t_c) };
        }
        c0 += cols;
    }
}

/// Transposes a 16 x 16 block held as 16 row registers: lane `j` of output `i` is lane `i` of
/// input `j`.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Round 1: interleave pairs of rows (32-bit elements).
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // Round 2: interleave pairs of pairs (64-bit elements).
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
        let pd = _mm512_castps_pd;
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a), pd(c)));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a), pd(c)));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(b), pd(d)));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(b), pd(d)));
    }
    // Rounds 3 and 4: move 128-bit lanes between groups of four rows.
    let mut w = [_mm512_setzero_ps(); 16];
    for g in 0..2 {
        for j in 0..4 {
            let (a, b) = (u[8 * g + j], u[8 * g + 4 + j]);
            w[8 * g + j] = _mm512_shuffle_f32x4::<0x88>(a, b);
            w[8 * g + 4 + j] = _mm512_shuffle_f32x4::<0xdd>(a, b);
        }
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for j in 0..8 {
        out[j] = _mm512_shuffle_f32x4::<0x88>(w[j], w[8 + j]);
        out[8 + j] = _mm512_shuffle_f32x4::<0xdd>(w[j], w[8 + j]);
    }
    out
}
