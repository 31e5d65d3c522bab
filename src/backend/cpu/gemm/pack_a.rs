//! Packing a block of the left-hand side `x` on the fly into `mr`-row micro-panels, so the
//! micro-kernel reads `A` with unit stride: for each step of `k`, the `mr` values of one column.

/// Where a block of `x` comes from: rows `i0 .. i0 + mc`, columns `p0 .. p0 + kc`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ABlock {
    pub i0: usize,
    pub mc: usize,
    pub p0: usize,
    pub kc: usize,
}

/// Packs `blk` of `x` (row stride `k`) into `buf` as micro-panels of `mr` rows (the kernel's
/// tile height), each stored `[kc, rows]`: full panels have `rows = mr`, the last one only the
/// rows that exist (no zero padding, so batch 1 packs just its one row).
/// x: `[m, k]`   buf: `[mc.div_ceil(mr) panels of [kc, rows]]` (at least mc * kc long)
pub(super) fn pack_a(x: &[f32], k: usize, blk: ABlock, mr: usize, buf: &mut [f32]) {
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
