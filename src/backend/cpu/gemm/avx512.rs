//! The AVX-512F micro-kernel: a `14 x 32` tile of `C` held in 28 zmm accumulators; each step of
//! `k` loads one 16-wide row from each of two packed `W` panels, broadcasts 14 values of packed
//! `A` (folded into the FMAs as memory broadcasts) and issues 28 FMAs. Fewer rows (the edge of
//! `M`, small batches) and one-panel tiles (the last panel of an odd count) use the same code
//! with fewer accumulators, chosen at compile time; edge columns use masked loads and stores.

use std::arch::x86_64::*;

use super::kernel::{finish_tile, Tile};
use super::NR;

/// Rows of the AVX-512 register tile.
const MR: usize = 14;

/// How many steps of `k` ahead the kernel prefetches packed weights (one 64-byte row per panel
/// per step).
const PREFETCH: usize = 32;

/// Computes one tile; see [`super::kernel::CheckedKernel::run`].
///
/// # Safety
/// The CPU must support AVX-512F; `a` must hold `kc * tile.rows` values, `b0` `kc * NR`, and `b1`
/// `kc * NR` when `tile.cols > NR`; otherwise as [`super::kernel::CheckedKernel::run`].
pub(super) unsafe fn run(kc: usize, a: &[f32], b0: &[f32], b1: &[f32], tile: &Tile) {
    let (a, b0) = (a.as_ptr(), b0.as_ptr());
    macro_rules! dispatch {
        ($($r:literal)*) => {
            match (tile.rows, tile.cols > NR) {
                $(
                    // SAFETY: the caller's contract, with R == tile.rows and, for two panels,
                    // b1 holding kc * NR values.
                    ($r, true) => unsafe {
                        tile_rows::<$r, 2, { sets($r) }>(kc, a, b0, b1.as_ptr(), tile)
                    },
                    // SAFETY: as above; with one panel, b1 is not read.
                    ($r, false) => unsafe {
                        tile_rows::<$r, 1, { sets($r) }>(kc, a, b0, b0, tile)
                    },
                )*
                _ => unreachable!("tile rows {} outside 1..={MR}", tile.rows),
            }
        };
    }
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14);
}

/// Independent accumulator sets for `rows` rows. With few rows each FMA chain would wait on the
/// previous step's result (4 cycles) instead of the FMA units; several sets, taking alternate
/// steps of `k` and added at the end, keep the units busy (still at most 28 accumulators).
const fn sets(rows: usize) -> usize {
    match rows {
        1..=2 => 4,
        3..=4 => 2,
        _ => 1,
    }
}

/// `R` rows x `P` panels of 16 columns, with `S` accumulator sets.
///
/// # Safety
/// AVX-512F available; `a` readable for `kc * R` values (`[kc, R]`), `b0` (and `b1` if
/// `P == 2`) for `kc * NR`; `tile` as in [`super::kernel::CheckedKernel::run`] with
/// `tile.rows == R` and `tile.cols <= P * NR`.
#[target_feature(enable = "avx512f")]
unsafe fn tile_rows<const R: usize, const P: usize, const S: usize>(
    kc: usize,
    a: *const f32,
    b0: *const f32,
    b1: *const f32,
    tile: &Tile,
) {
    // Ask for the tile of C now: its lines (read for the sum, or owned for the store) then
    // arrive while the k loop runs instead of stalling the stores at its end (measured 5-7 %
    // faster at M = 2304 on the machine in docs/bench-gemm.md).
    for r in 0..R {
        for q in 0..P {
            _mm_prefetch::<_MM_HINT_ET0>(tile.c.wrapping_add(r * tile.ldc + q * NR).cast());
        }
    }
    let mut sets = [[[_mm512_setzero_ps(); P]; R]; S];
    let mut p = 0;
    while p < kc {
        // Step p goes to set p % S; the loop is unrolled by S so the index is a constant.
        for acc in sets.iter_mut() {
            if p == kc {
                break;
            }
            // SAFETY: p < kc, so the 16 values at b0 / b1 + p * NR and the R values at a + p * R
            // are inside the ranges the contract gives.
            unsafe { step::<R, P>(p, a, b0, b1, acc) };
            p += 1;
        }
    }
    let mut acc = sets[0];
    for other in &sets[1..] {
        for (acc_r, other_r) in acc.iter_mut().zip(other) {
            for (v, &o) in acc_r.iter_mut().zip(other_r) {
                *v = _mm512_add_ps(*v, o);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (q, &sum) in acc_r.iter().enumerate() {
            let c0 = q * NR;
            let valid = tile.cols.saturating_sub(c0).min(NR);
            // Lanes past the tile's columns are masked off: they are neither read nor written.
            let mask: __mmask16 = if valid == NR {
                0xFFFF
            } else {
                (1u16 << valid) - 1
            };
            // SAFETY: row r < R = tile.rows; the unmasked lanes are columns c0 .. c0 + valid <
            // tile.cols of the tile (and of the bias), valid by the contract; masked-off lanes
            // are not accessed (AVX-512 masked loads and stores suppress their faults).
            unsafe {
                let c = tile.c.add(r * tile.ldc + c0);
                let mut v = match tile.bias {
                    Some(bias) => _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, bias.add(c0))),
                    None => sum,
                };
                if tile.add_c {
                    v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, c), v);
                }
                _mm512_mask_storeu_ps(c, mask, v);
            }
        }
    }
    // SAFETY: the tile contract is passed through; the tile is stored.
    unsafe { finish_tile(tile) };
}

/// One step `p` of `k`: `acc[r][q] += a[p, r] * b_q[p, :]`.
///
/// # Safety
/// AVX-512F available; `p` < the `kc` of [`tile_rows`]'s contract.
#[inline(always)]
unsafe fn step<const R: usize, const P: usize>(
    p: usize,
    a: *const f32,
    b0: *const f32,
    b1: *const f32,
    acc: &mut [[__m512; P]; R],
) {
    // SAFETY: p < kc (contract), so the 16 values at b0 / b1 + p * NR and the R values at
    // a + p * R are inside the ranges tile_rows's contract gives; AVX-512F is available.
    unsafe {
        let bv = [
            _mm512_loadu_ps(b0.add(p * NR)),
            _mm512_loadu_ps(if P == 2 { b1 } else { b0 }.add(p * NR)),
        ];
        // Ask for the weights PREFETCH k-steps ahead: batch-1 products stream them from
        // memory. (A prefetch never faults, so running past the end is harmless; wrapping_add
        // keeps the address arithmetic defined.)
        _mm_prefetch::<_MM_HINT_T0>(b0.wrapping_add((p + PREFETCH) * NR).cast());
        if P == 2 {
            _mm_prefetch::<_MM_HINT_T0>(b1.wrapping_add((p + PREFETCH) * NR).cast());
        }
        let ap = a.add(p * R);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ap.add(r));
            for (q, acc_rq) in acc_r.iter_mut().enumerate() {
                *acc_rq = _mm512_fmadd_ps(av, bv[q], *acc_rq);
            }
        }
    }
}
