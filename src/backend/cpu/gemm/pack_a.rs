//! Packing a block of the left-hand side `x` on the fly into `mr`-row micro-panels, so the
//! micro-kernel reads `A` with unit stride: for each step of `k`, the `mr` values of one column.

use super::kernel::{CheckedKernel, Kernel};

/// Where a block of `x` comes from: rows `i0 .. i0 + mc`, columns `p0 .. p0 + kc`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ABlock {
    pub i0: usize,
    pub mc: usize,
    pub p0: usize,
    pub kc: usize,
}

/// Packs `blk` of `x` (row stride `k`) into `buf` as micro-panels of the kernel's tile height
/// `mr`, each stored `[kc, rows]`: full panels have `rows = mr`, the last one only the rows that
/// exist (no zero padding, so batch 1 packs just its one row).
/// x: `[m, k]`   buf: `[mc.div_ceil(mr) panels of [kc, rows]]` (at least mc * kc long)
///
/// With the AVX-512 kernel the panels are transposed 16 columns at a time in registers
/// ([`super::pack_avx512`]); otherwise, and as the reference, by [`pack_a_plain`].
pub(super) fn pack_a(x: &[f32], k: usize, blk: ABlock, kernel: CheckedKernel, buf: &mut [f32]) {
    let mr = kernel.kernel().mr();
    check(x, k, blk, mr, buf);
    #[cfg(target_arch = "x86_64")]
    if kernel.kernel() == Kernel::Avx512 {
        // SAFETY: a CheckedKernel of Avx512 exists only where the CPU reports avx512f; the
        // ranges were checked above.
        unsafe { super::pack_avx512::pack(x, k, blk, mr, buf) };
        return;
    }
    pack_a_plain(x, k, blk, mr, buf);
}

/// Panics unless `x` holds the block's rows and columns and `buf` has room for it.
fn check(x: &[f32], k: usize, blk: ABlock, mr: usize, buf: &[f32]) {
    assert!(
        blk.p0 + blk.kc <= k && (blk.i0 + blk.mc) * k <= x.len(),
        "pack_a: block {blk:?} outside x of {} values with row length {k}",
        x.len()
    );
    assert!(
        buf.len() >= blk.mc * blk.kc && mr > 0,
        "pack_a: buffer of {} values for a block of {} x {}",
        buf.len(),
        blk.mc,
        blk.kc
    );
}

/// [`pack_a`] in plain Rust: one row at a time, spread into its panel with a stride.
pub(super) fn pack_a_plain(x: &[f32], k: usize, blk: ABlock, mr: usize, buf: &mut [f32]) {
    let ABlock { i0, mc, p0, kc } = blk;
    for (panel, chunk) in buf.chunks_mut(kc * mr).take(mc.div_ceil(mr)).enumerate() {
        let rows = mr.min(mc - panel * mr);
        let dst = &mut chunk[..kc * rows]; // [kc, rows]
        for r in 0..rows {
            let row = i0 + panel * mr + r;
            let src = &x[row * k + p0..row * k + p0 + kc]; // [kc]
            if rows == 1 {
                dst.copy_from_slice(src);
            } else {
                for (d, &v) in dst.chunks_exact_mut(rows).zip(src) {
                    d[r] = v;
                }
            }
        }
    }
}
