//! Blocked (flash-style) causal attention with AVX2 + FMA intrinsics, for the unwatched path:
//! tiles of six query vectors that read one kv head go through the keys sixteen at a time
//! with an online softmax; up to four tiles share each block of keys and values while it is
//! in L1, and no row of scores longer than sixteen is ever stored. Both products use a
//! `6 x 16` register tile (12 ymm accumulators), the shape of the AVX2 GEMM micro-kernel.
//!
//! For query row `r` with its last visible key `t_r`, the running state over the keys seen
//! so far is the max score `m_r`, the sum `l_r = Σ exp(s - m_r)` and the unnormalised output
//! `o_r = Σ exp(s - m_r) v`; a new block with max `m'` rescales both by `exp(m_r - m')`.
//! At the end `z_r = o_r / l_r`: the softmax-weighted sum of values, as the three-kernel path
//! in `attention.rs` (its reference) computes it in two passes.

use std::arch::x86_64::*;

use super::activation::exp_fast;

/// Query vectors per block: the rows of the register tile.
pub(super) const QUERY_BLOCK: usize = 6;
/// Keys per block: the columns of the register tile (two ymm registers).
const KEYS: usize = 16;

/// Tiles of query vectors [`attend_tiles`] takes at most: each block of keys and values is
/// loaded into L1 once for all of them, so the keys of a long prompt stream from L2/L3 once
/// per `TILES * QUERY_BLOCK` query vectors.
pub(super) const TILES: usize = 4;

/// The running softmax state of one tile of query vectors.
/// o: `[QUERY_BLOCK, d_head]`
struct Running<'a> {
    max: [f32; QUERY_BLOCK],
    sum: [f32; QUERY_BLOCK],
    o: &'a mut [f32],
}

/// Keys `0..keys` of one kv head in blocks of sixteen, each block transposed and the last
/// zero-padded: `kb[(b * d_head + d) * 16 + c] = k[16 b + c, head, d]`, so one block of
/// keys is `d_head * 16` contiguous values.
/// k_seq: `[keys, kv_width]` with the head at `offset .. offset + d_head` of each row
/// kb: `[keys.div_ceil(16), d_head, 16]`
pub(super) fn block_keys(
    k_seq: &[f32],
    (offset, kv_width, d_head): (usize, usize, usize),
    keys: usize,
    kb: &mut Vec<f32>,
) {
    kb.clear();
    kb.resize(keys.div_ceil(KEYS) * d_head * KEYS, 0.0);
    for j in 0..keys {
        let k_row = &k_seq[j * kv_width + offset..][..d_head];
        let block = &mut kb[(j / KEYS) * d_head * KEYS..][..d_head * KEYS];
        for (d, &x) in k_row.iter().enumerate() {
            block[d * KEYS + j % KEYS] = x;
        }
    }
}

/// Up to [`TILES`] tiles of [`QUERY_BLOCK`] query vectors that read the same kv head of one
/// sequence: `z_r = softmax(scale * q_r·K[..=t_r]) V[..=t_r]` for every vector `r`.
/// qs: `[n_tiles * QUERY_BLOCK, d_head]`   last: `[n_tiles * QUERY_BLOCK]` (each `t_r`)
/// kb: keys as [`block_keys`] lays them out, at least `max t_r + 1` of them
/// values: (`[keys, kv_width]` values of the sequence, offset of the head, kv_width)
/// zs: `[n_tiles * QUERY_BLOCK, d_head]` (the output; also the running sums meanwhile)
///
/// # Safety
/// The CPU must support AVX2 and FMA. Shapes as described, with `n_tiles <= TILES`, `kb`
/// holding `(max t_r + 1).div_ceil(16) * d_head * 16` values, and `values.0` holding
/// `max t_r + 1` rows.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn attend_tiles(
    qs: &[f32],
    last: &[usize],
    kb: &[f32],
    scale: f32,
    values: (&[f32], usize, usize),
    zs: &mut [f32],
) {
    let n_tiles = last.len() / QUERY_BLOCK;
    let d_head = qs.len() / last.len().max(1);
    let keys = last.iter().max().map_or(0, |&t| t + 1);
    let (v_seq, offset, kv_width) = values;
    assert!(
        last.len() == n_tiles * QUERY_BLOCK
            && (1..=TILES).contains(&n_tiles)
            && qs.len() == last.len() * d_head
            && zs.len() == qs.len()
            && kb.len() >= keys.div_ceil(KEYS) * d_head * KEYS
            && offset + d_head <= kv_width
            && v_seq.len() >= keys * kv_width,
        "attend_tiles: inconsistent shapes"
    );
    zs.fill(0.0);
    // One running state and key count per tile (no allocation per call).
    let mut outputs = zs.chunks_exact_mut(QUERY_BLOCK * d_head);
    let mut states: [Option<Running>; TILES] = std::array::from_fn(|_| {
        outputs.next().map(|o| Running {
            max: [f32::NEG_INFINITY; QUERY_BLOCK],
            sum: [0.0; QUERY_BLOCK],
            o,
        })
    });
    let mut tile_keys = [0; TILES];
    for (keys_of_tile, l) in tile_keys.iter_mut().zip(last.chunks_exact(QUERY_BLOCK)) {
        *keys_of_tile = l.iter().max().map_or(0, |&t| t + 1);
    }
    for j0 in (0..keys).step_by(KEYS) {
        let k_block = &kb[(j0 / KEYS) * d_head * KEYS..][..d_head * KEYS]; // [d_head, KEYS]
        let n_keys = KEYS.min(keys - j0);
        let v_block = &v_seq[j0 * kv_width..(j0 + n_keys) * kv_width]; // [n_keys, kv_width]
        for (tile, state) in states.iter_mut().flatten().enumerate() {
            if j0 >= tile_keys[tile] {
                continue; // every vector of this tile is before this block of keys
            }
            let rows = tile * QUERY_BLOCK..(tile + 1) * QUERY_BLOCK;
            let q_tile = &qs[rows.start * d_head..rows.end * d_head]; // [QUERY_BLOCK, d_head]
            let last_tile: &[usize; QUERY_BLOCK] = last[rows]
                .try_into()
                .expect("a tile of QUERY_BLOCK positions");
            // SAFETY: k_block is [d_head, 16]; q_tile is [QUERY_BLOCK, d_head].
            let s = unsafe { score_tile(q_tile, d_head, k_block) }; // [QUERY_BLOCK, KEYS]
            let mut p = [[0.0f32; KEYS]; QUERY_BLOCK]; // [QUERY_BLOCK, KEYS]
                                                       // SAFETY: AVX2 + FMA, as this function's contract says.
            let alpha = unsafe { online_softmax(&s, scale, last_tile, j0, state, &mut p) };
            // SAFETY: v_block holds n_keys rows of kv_width >= offset + d_head values; o is
            // [QUERY_BLOCK, d_head].
            unsafe { accumulate_values(&p, n_keys, &alpha, (v_block, offset, kv_width), state.o) };
        }
    }
    for state in states.iter_mut().flatten() {
        for (r, o_r) in state.o.chunks_exact_mut(d_head).enumerate() {
            // At least 1: the row's largest score contributed exp(0).
            let inv = 1.0 / state.sum[r];
            o_r.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// Unscaled scores of a tile's six query rows against one block of sixteen keys.
/// qs: `[QUERY_BLOCK, d_head]`   k_block: `[d_head, 16]`
///
/// # Safety
/// AVX2 + FMA; the slices hold the values their shapes say.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn score_tile(qs: &[f32], d_head: usize, k_block: &[f32]) -> [[__m256; 2]; QUERY_BLOCK] {
    debug_assert!(qs.len() >= QUERY_BLOCK * d_head && k_block.len() >= d_head * KEYS);
    let (q, k) = (qs.as_ptr(), k_block.as_ptr());
    let mut acc = [[_mm256_setzero_ps(); 2]; QUERY_BLOCK];
    for d in 0..d_head {
        // SAFETY: row d < d_head of k_block has 16 values; q row r has d_head values.
        unsafe {
            let row = k.add(d * KEYS);
            let k0 = _mm256_loadu_ps(row);
            let k1 = _mm256_loadu_ps(row.add(8));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let b = _mm256_broadcast_ss(&*q.add(r * d_head + d));
                acc_r[0] = _mm256_fmadd_ps(b, k0, acc_r[0]);
                acc_r[1] = _mm256_fmadd_ps(b, k1, acc_r[1]);
            }
        }
    }
    acc
}

/// Scales and masks one tile of scores (keys past a row's `t_r` get no weight), updates each
/// row's running max and sum, writes the block's weights `exp(s - max)` into `p` and returns
/// the factors `exp(old max - new max)` the rows' running outputs must be scaled by before
/// this block's values are added.
/// s: `[QUERY_BLOCK]` rows of two vectors (keys `j0 .. j0 + 16`)   p: `[QUERY_BLOCK, KEYS]`
///
/// # Safety
/// AVX2 + FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn online_softmax(
    s: &[[__m256; 2]; QUERY_BLOCK],
    scale: f32,
    last: &[usize; QUERY_BLOCK],
    j0: usize,
    state: &mut Running,
    p: &mut [[f32; KEYS]; QUERY_BLOCK],
) -> [f32; QUERY_BLOCK] {
    let mut alpha = [1.0f32; QUERY_BLOCK];
    let lane = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let (scale, minus_inf) = (_mm256_set1_ps(scale), _mm256_set1_ps(f32::NEG_INFINITY));
    for (r, s_r) in s.iter().enumerate() {
        let visible = (last[r] + 1).saturating_sub(j0).min(KEYS);
        if visible == 0 {
            continue; // every key of the block is past this row's position: weights stay 0
        }
        // Scaled scores; lanes at or past `visible` become -inf.
        let v = _mm256_set1_ps(visible as f32);
        let hi_lane = _mm256_add_ps(lane, _mm256_set1_ps(8.0));
        let keep0 = _mm256_cmp_ps::<_CMP_LT_OQ>(lane, v);
        let keep1 = _mm256_cmp_ps::<_CMP_LT_OQ>(hi_lane, v);
        let x0 = _mm256_blendv_ps(minus_inf, _mm256_mul_ps(s_r[0], scale), keep0);
        let x1 = _mm256_blendv_ps(minus_inf, _mm256_mul_ps(s_r[1], scale), keep1);
        let new_max = state.max[r].max(horizontal_max(_mm256_max_ps(x0, x1)));
        alpha[r] = exp_fast(state.max[r] - new_max);
        let m = _mm256_set1_ps(new_max);
        let w0 = exp8(_mm256_sub_ps(x0, m));
        let w1 = exp8(_mm256_sub_ps(x1, m));
        // SAFETY: p[r] holds 16 values: two 8-value stores.
        unsafe {
            _mm256_storeu_ps(p[r].as_mut_ptr(), w0);
            _mm256_storeu_ps(p[r].as_mut_ptr().add(8), w1);
        }
        state.sum[r] = state.sum[r] * alpha[r] + horizontal_sum(_mm256_add_ps(w0, w1));
        state.max[r] = new_max;
    }
    alpha
}

/// The largest of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn horizontal_max(x: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_shuffle_ps::<1>(m, m));
    _mm_cvtss_f32(m)
}

/// The sum of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn horizontal_sum(x: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
    _mm_cvtss_f32(s)
}

/// [`exp_fast`] on eight lanes, with the same operations in the same order (so the same
/// results): `2^n · p(r)` with `n` rounded by the 1.5·2²³ trick and a degree-6 polynomial;
/// 0 below -87 (so `-inf` gives exactly 0).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let small = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-87.0));
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
        _mm256_set1_ps(88.0),
    );
    let round = _mm256_set1_ps(ROUND);
    let shifted = _mm256_add_ps(
        _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        round,
    );
    let n = _mm256_sub_ps(shifted, round);
    let r = _mm256_sub_ps(
        _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693_145_75))),
        _mm256_mul_ps(n, _mm256_set1_ps(1.428_606_8e-6)),
    );
    // 1 + r(1 + r(1/2 + r(1/6 + r(1/24 + r(1/120 + r/720))))), innermost first.
    let mut poly = _mm256_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        poly = _mm256_add_ps(_mm256_set1_ps(c), _mm256_mul_ps(r, poly));
    }
    let biased = _mm256_add_epi32(
        _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_castps_si256(round)),
        _mm256_set1_epi32(127),
    );
    let e = _mm256_mul_ps(poly, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased)));
    _mm256_andnot_ps(small, e)
}

/// `o_r = alpha_r * o_r + Σ_c p[c][r] v[c]` for the block's `n_keys` keys, sixteen dimensions
/// at a time in a `6 x 16` register tile (dimensions past the last multiple of sixteen one at
/// a time).
/// p: `[QUERY_BLOCK, KEYS]`   values: (`[n_keys, kv_width]`, offset of the head, kv_width)
/// o: `[QUERY_BLOCK, d_head]`
///
/// # Safety
/// AVX2 + FMA; `values.0` holds `n_keys <= 16` rows of `kv_width >= offset + d_head` values.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_values(
    p: &[[f32; KEYS]; QUERY_BLOCK],
    n_keys: usize,
    alpha: &[f32; QUERY_BLOCK],
    (v, offset, kv_width): (&[f32], usize, usize),
    o: &mut [f32],
) {
    let d_head = o.len() / QUERY_BLOCK;
    let wide = d_head - d_head % 16;
    let (vp, op) = (v.as_ptr(), o.as_mut_ptr());
    for d0 in (0..wide).step_by(16) {
        let mut acc = [[_mm256_setzero_ps(); 2]; QUERY_BLOCK];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r of o has d_head >= d0 + 16 values.
            unsafe {
                let a = _mm256_set1_ps(alpha[r]);
                let row = op.add(r * d_head + d0);
                acc_r[0] = _mm256_mul_ps(a, _mm256_loadu_ps(row));
                acc_r[1] = _mm256_mul_ps(a, _mm256_loadu_ps(row.add(8)));
            }
        }
        for c in 0..n_keys {
            // SAFETY: key c < n_keys has a row of kv_width values, 16 of them from
            // offset + d0 (offset + d0 + 16 <= offset + d_head <= kv_width).
            unsafe {
                let row = vp.add(c * kv_width + offset + d0);
                let v0 = _mm256_loadu_ps(row);
                let v1 = _mm256_loadu_ps(row.add(8));
                for (acc_r, p_r) in acc.iter_mut().zip(p) {
                    let b = _mm256_broadcast_ss(&p_r[c]);
                    acc_r[0] = _mm256_fmadd_ps(b, v0, acc_r[0]);
                    acc_r[1] = _mm256_fmadd_ps(b, v1, acc_r[1]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: as for the loads above.
            unsafe {
                let row = op.add(r * d_head + d0);
                _mm256_storeu_ps(row, acc_r[0]);
                _mm256_storeu_ps(row.add(8), acc_r[1]);
            }
        }
    }
    for (r, o_r) in o.chunks_exact_mut(d_head).enumerate() {
        for (d, o_rd) in o_r.iter_mut().enumerate().skip(wide) {
            let mut acc = alpha[r] * *o_rd;
            for (c, &w) in p[r].iter().enumerate().take(n_keys) {
                acc += w * v[c * kv_width + offset + d];
            }
            *o_rd = acc;
        }
    }
}
