//! The AVX2 + FMA micro-kernel: a `6 x 16` tile of `C` held in 12 ymm accumulators; each step
//! of `k` loads two vectors of packed `B`, broadcasts six values of packed `A` and issues 12
//! FMAs (15 of the 16 ymm registers in use). Fewer rows (the edge of `M`, or batch 1..5) use
//! the same code with fewer accumulators, chosen at compile time.

use std::arch::x86_64::*;

use super::kernel::{finish_tile, store_tile, Tile};
use super::NR;

/// Rows of the AVX2 register tile.
const MR: usize = 6;

/// How many steps of `k` ahead the kernel prefetches packed weights.
const PREFETCH: usize = 32;

/// Computes one tile; see [`super::kernel::CheckedKernel::run`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; otherwise as [`super::kernel::CheckedKernel::run`].
pub(super) unsafe fn run(kc: usize, a: &[f32], b: &[f32], tile: &Tile) {
    assert!(a.len() >= kc * tile.rows && b.len() >= kc * NR);
    // SAFETY (all arms): the features are the caller's promise; `a` and `b` hold `kc` steps
    // (asserted above); the tile contract is passed through.
    unsafe {
        match tile.rows {
            1 => tile_rows::<1, 4>(kc, a.as_ptr(), b.as_ptr(), tile),
            2 => tile_rows::<2, 2>(kc, a.as_ptr(), b.as_ptr(), tile),
            3 => tile_rows::<3, 2>(kc, a.as_ptr(), b.as_ptr(), tile),
            4 => tile_rows::<4, 1>(kc, a.as_ptr(), b.as_ptr(), tile),
            5 => tile_rows::<5, 1>(kc, a.as_ptr(), b.as_ptr(), tile),
            _ => tile_rows::<MR, 1>(kc, a.as_ptr(), b.as_ptr(), tile),
        }
    }
}

/// `R` rows with `S` independent accumulator sets taking alternate steps of `k` (few rows would
/// otherwise wait on the 4-cycle FMA latency; at most 12 accumulators in all).
///
/// # Safety
/// AVX2 + FMA available; `a` readable for `kc * R` values (`[kc, R]`), `b` for `kc * NR`;
/// `tile` as in [`super::kernel::CheckedKernel::run`] with `tile.rows == R`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_rows<const R: usize, const S: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    tile: &Tile,
) {
    // The output tile's rows are a row stride apart (12 KiB at n = 3072), so a block's tiles
    // fall into few cache sets and are rarely still cached: ask for them now, so they arrive
    // while the k loop runs instead of stalling the stores at its end. A row of 16 values
    // spans at most two lines.
    for r in 0..R {
        let row = tile.c.wrapping_add(r * tile.ldc);
        _mm_prefetch::<_MM_HINT_T0>(row.cast());
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1).cast());
    }
    // [S][R] pairs: columns 0..8 and 8..16 of each row.
    let mut sets = [[[_mm256_setzero_ps(); 2]; R]; S];
    let mut p = 0;
    while p < kc {
        // Step p goes to set p % S; the loop is unrolled by S so the index is a constant.
        for acc in sets.iter_mut() {
            if p == kc {
                break;
            }
            // SAFETY: p < kc, so the 16 values at b + p * NR and the R values at a + p * R
            // are inside the ranges the contract gives.
            unsafe {
                let bp = b.add(p * NR);
                let b0 = _mm256_loadu_ps(bp);
                let b1 = _mm256_loadu_ps(bp.add(8));
                // Prefetch the weights PREFETCH k-steps ahead, as in the AVX-512 kernel (a
                // prefetch never faults; wrapping_add keeps the address arithmetic defined).
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add((p + PREFETCH) * NR).cast());
                let ap = a.add(p * R);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*ap.add(r));
                    acc_r[0] = _mm256_fmadd_ps(av, b0, acc_r[0]);
                    acc_r[1] = _mm256_fmadd_ps(av, b1, acc_r[1]);
                }
            }
            p += 1;
        }
    }
    let mut lo = [_mm256_setzero_ps(); R];
    let mut hi = [_mm256_setzero_ps(); R];
    for set in &sets {
        for (r, acc_r) in set.iter().enumerate() {
            lo[r] = _mm256_add_ps(lo[r], acc_r[0]);
            hi[r] = _mm256_add_ps(hi[r], acc_r[1]);
        }
    }
    if tile.cols == NR {
        for r in 0..R {
            // SAFETY: a full-width tile: row r < R = tile.rows has NR valid columns at
            // c + r * ldc (contract), and a bias, if any, has NR values.
            unsafe {
                let c = tile.c.add(r * tile.ldc);
                let (mut v0, mut v1) = (lo[r], hi[r]);
                if let Some(bias) = tile.bias {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias.add(8)));
                }
                if tile.add_c {
                    v0 = _mm256_add_ps(_mm256_loadu_ps(c), v0);
                    v1 = _mm256_add_ps(_mm256_loadu_ps(c.add(8)), v1);
                }
                _mm256_storeu_ps(c, v0);
                _mm256_storeu_ps(c.add(8), v1);
            }
        }
    } else {
        let mut acc = [[0.0f32; NR]; R];
        for r in 0..R {
            // SAFETY: acc[r] is a local array of NR = 16 floats: two 8-float stores fit.
            unsafe {
                _mm256_storeu_ps(acc[r].as_mut_ptr(), lo[r]);
                _mm256_storeu_ps(acc[r].as_mut_ptr().add(8), hi[r]);
            }
        }
        // SAFETY: the tile contract is passed through.
        unsafe { store_tile(&acc, tile) };
    }
    // SAFETY: the tile contract is passed through; the tile is stored.
    unsafe { finish_tile(tile) };
}
