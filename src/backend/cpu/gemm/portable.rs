//! The portable micro-kernel: the same `MR x NR` register tile in plain Rust. It is always
//! compiled (it is the fallback on CPUs without AVX2/FMA and on other architectures) and is
//! tested on this machine by forcing it.

use super::kernel::{finish_tile, store_tile, Tile};
use super::NR;

/// Rows of the portable register tile.
const MR: usize = 6;

/// `rows x NR` outer-product accumulation over `kc`, for `R` rows known at compile time so the
/// accumulator stays in registers.
/// a: `[kc, R]`   b: `[kc, NR]`
fn accumulate<const R: usize>(kc: usize, a: &[f32], b: &[f32]) -> [[f32; NR]; R] {
    let mut acc = [[0.0f32; NR]; R];
    for (ap, bp) in a.chunks_exact(R).zip(b.chunks_exact(NR)).take(kc) {
        for r in 0..R {
            let av = ap[r];
            for (o, &bv) in acc[r].iter_mut().zip(bp) {
                *o += av * bv;
            }
        }
    }
    acc
}

/// Computes one tile; see [`super::kernel::CheckedKernel::run`].
///
/// # Safety
/// As [`super::kernel::CheckedKernel::run`].
pub(super) unsafe fn run(kc: usize, a: &[f32], b: &[f32], tile: &Tile) {
    debug_assert!(tile.rows <= MR && tile.cols <= NR);
    // SAFETY (all arms): the tile contract is the caller's, passed through to store_tile and
    // finish_tile.
    unsafe {
        match tile.rows {
            1 => store_tile(&accumulate::<1>(kc, a, b), tile),
            2 => store_tile(&accumulate::<2>(kc, a, b), tile),
            3 => store_tile(&accumulate::<3>(kc, a, b), tile),
            4 => store_tile(&accumulate::<4>(kc, a, b), tile),
            5 => store_tile(&accumulate::<5>(kc, a, b), tile),
            _ => store_tile(&accumulate::<MR>(kc, a, b), tile),
        }
        finish_tile(tile);
    }
}
