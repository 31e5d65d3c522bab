//! LayerNorm / RMSNorm in three steps, so that `hook_scale` and `hook_normalized` can fire
//! between them and a hook that edits the scale changes the normalised values, as in TL.

use super::simd::multiversion;
use super::threads::{reserve_workers, threads_for};

/// The mean (0 without centring) and `sqrt(mean((x - mean)²) + eps)` of one row, summed in f64.
#[inline(always)]
fn mean_and_scale(row: &[f32], eps: f32, center: bool) -> (f32, f32) {
    let d = row.len() as f64;
    let mean = if center {
        (lane_sum_f64(row, |v| v as f64) / d) as f32
    } else {
        0.0
    };
    let sq = lane_sum_f64(row, |v| {
        let c = (v - mean) as f64;
        c * c
    });
    (mean, ((sq / d) as f32 + eps).sqrt())
}

/// `Σ f(v)` over `row` in f64, in eight partial sums so the compiler vectorises the loop.
#[inline(always)]
fn lane_sum_f64(row: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v);
        }
    }
    lanes.iter().sum::<f64>() + chunks.remainder().iter().map(|&v| f(v)).sum::<f64>()
}

/// How many threads a pass over `rows` rows of `d` values takes, and the rows of each part.
fn row_split(rows: usize, d: usize) -> (super::threads::Workers, usize) {
    let workers = reserve_workers(threads_for(rows * d, MIN_PER_THREAD));
    let per_part = rows.div_ceil(workers.threads()).max(1);
    (workers, per_part)
}

/// One part per thread of a norm's input, output and scales: `((x, out), scale)`.
type NormPart<'a> = ((&'a [f32], &'a mut [f32]), &'a mut [f32]);

/// The threads for a norm over `x` and its parts. x, out: `[rows, d]`   scale: `[rows]`
fn norm_parts<'a>(
    x: &'a [f32],
    out: &'a mut [f32],
    scale: &'a mut [f32],
    d: usize,
) -> (super::threads::Workers, Vec<NormPart<'a>>) {
    let (workers, per_part) = row_split(scale.len(), d);
    let parts = x
        .chunks(per_part * d)
        .zip(out.chunks_mut(per_part * d))
        .zip(scale.chunks_mut(per_part))
        .collect();
    (workers, parts)
}

/// First step: writes the row to normalise into `out` (centred for LayerNorm, copied for
/// RMSNorm) and `scale = sqrt(mean(out²) + eps)` per row. Rows are split across the pool.
/// x, out: `[rows, d]`   scale: `[rows]`
pub fn norm_scale(x: &[f32], out: &mut [f32], scale: &mut [f32], d: usize, eps: f32, center: bool) {
    let (workers, parts) = norm_parts(x, out, scale, d);
    workers.run_parts(parts, |((x, out), scale)| {
        norm_scale_rows(x, out, scale, (d, eps, center))
    });
}

multiversion! {
    /// [`norm_scale`] on a share of the rows; shape: (d, eps, center).
    fn norm_scale_rows(x: &[f32], out: &mut [f32], scale: &mut [f32], shape: (usize, f32, bool)) {
        let (d, eps, center) = shape;
        for ((xr, or), s) in x
            .chunks_exact(d)
            .zip(out.chunks_exact_mut(d))
            .zip(scale.iter_mut())
        {
            let mean;
            (mean, *s) = mean_and_scale(xr, eps, center);
            for (o, &v) in or.iter_mut().zip(xr) {
                *o = v - mean;
            }
        }
    }
}

/// Second step: `out /= scale` per row, rows split across the pool.
/// out: `[rows, d]`   scale: `[rows]`
pub fn divide_by_scale(out: &mut [f32], scale: &[f32], d: usize) {
    let (workers, per_part) = row_split(scale.len(), d);
    let parts: Vec<_> = out
        .chunks_mut(per_part * d)
        .zip(scale.chunks(per_part))
        .collect();
    workers.run_parts(parts, |(out, scale)| divide_rows(out, scale, d));
}

multiversion! {
    /// [`divide_by_scale`] on a share of the rows.
    fn divide_rows(out: &mut [f32], scale: &[f32], d: usize) {
        for (or, &s) in out.chunks_exact_mut(d).zip(scale) {
            for o in or.iter_mut() {
                *o /= s;
            }
        }
    }
}

/// Third step: `out = out * w (+ b)` per row, rows split across the pool.
/// out: `[rows, d]`   w, b: `[d]`
pub fn affine(out: &mut [f32], w: &[f32], b: Option<&[f32]>, d: usize) {
    let (workers, per_part) = row_split(out.len() / d.max(1), d);
    let parts: Vec<_> = out.chunks_mut(per_part * d.max(1)).collect();
    workers.run_parts(parts, |out| affine_rows(out, (w, b), d));
}

multiversion! {
    /// [`affine`] on a share of the rows.
    fn affine_rows(out: &mut [f32], weights: (&[f32], Option<&[f32]>), d: usize) {
        let (w, b) = weights;
        for or in out.chunks_exact_mut(d) {
            match b {
                Some(b) => {
                    for ((o, &wv), &bv) in or.iter_mut().zip(w).zip(b) {
                        *o = *o * wv + bv;
                    }
                }
                None => {
                    for (o, &wv) in or.iter_mut().zip(w) {
                        *o *= wv;
                    }
                }
            }
        }
    }
}

/// All three steps in one pass over each row, for when neither norm hook is watched:
/// `out = (x - mean) / sqrt(mean((x - mean)²) + eps) * w (+ b)` (no centring for RMSNorm).
/// Rows are split across the worker pool.
/// x, out: `[rows, d]`   scale: `[rows]`   w, b: `[d]`
pub fn norm_fused(
    x: &[f32],
    out: &mut [f32],
    scale: &mut [f32],
    (w, b): (&[f32], Option<&[f32]>),
    d: usize,
    eps: f32,
    center: bool,
) {
    let (workers, parts) = norm_parts(x, out, scale, d);
    workers.run_parts(parts, |((x, out), scale)| {
        norm_fused_rows(x, out, scale, (w, b), (d, eps, center))
    });
}

/// Values per thread at least (a norm over fewer runs on the calling thread).
const MIN_PER_THREAD: usize = 1 << 14;

multiversion! {
    /// [`norm_fused`] on a share of the rows; shape: (d, eps, center).
    fn norm_fused_rows(
        x: &[f32],
        out: &mut [f32],
        scale: &mut [f32],
        weights: (&[f32], Option<&[f32]>),
        shape: (usize, f32, bool),
    ) {
        let ((w, b), (d, eps, center)) = (weights, shape);
        for ((xr, or), s) in x
            .chunks_exact(d)
            .zip(out.chunks_exact_mut(d))
            .zip(scale.iter_mut())
        {
            let mean;
            (mean, *s) = mean_and_scale(xr, eps, center);
            let inv = 1.0 / *s;
            match b {
                Some(b) => {
                    for (((o, &v), &wv), &bv) in or.iter_mut().zip(xr).zip(w).zip(b) {
                        *o = (v - mean) * inv * wv + bv;
                    }
                }
                None => {
                    for ((o, &v), &wv) in or.iter_mut().zip(xr).zip(w) {
                        *o = (v - mean) * inv * wv;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_equals_three_steps_at_awkward_sizes() {
        let mut g = crate::sweep::noise::Gaussian::new(3);
        // (100, 577) is above the threading threshold: rows split across workers.
        for &(rows, d) in &[(1, 1), (3, 7), (5, 37), (2, 577), (100, 577)] {
            let x: Vec<f32> = (0..rows * d).map(|_| 2.0 * g.sample() + 0.5).collect();
            let w: Vec<f32> = (0..d).map(|_| 1.0 + 0.3 * g.sample()).collect();
            let b: Vec<f32> = (0..d).map(|_| 0.1 * g.sample()).collect();
            for center in [true, false] {
                let bias = center.then_some(b.as_slice());
                let (mut o1, mut s1) = (vec![0.0; rows * d], vec![0.0; rows]);
                norm_scale(&x, &mut o1, &mut s1, d, 1e-5, center);
                divide_by_scale(&mut o1, &s1, d);
                affine(&mut o1, &w, bias, d);
                let (mut o2, mut s2) = (vec![0.0; rows * d], vec![0.0; rows]);
                norm_fused(&x, &mut o2, &mut s2, (&w, bias), d, 1e-5, center);
                for (a, c) in o1.iter().zip(&o2).chain(s1.iter().zip(&s2)) {
                    assert!(
                        (a - c).abs() <= 1e-5 * a.abs().max(1.0),
                        "{rows}x{d}: {a} vs {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn layer_norm_of_a_hand_row() {
        // x = [1, 2, 3, 6]: mean 3, centred [-2, -1, 0, 3], mean square 14/4 = 3.5.
        let x = [1.0f32, 2.0, 3.0, 6.0];
        let mut out = [0.0f32; 4];
        let mut scale = [0.0f32; 1];
        norm_scale(&x, &mut out, &mut scale, 4, 0.0, true);
        assert!((scale[0] - 3.5f32.sqrt()).abs() < 1e-6);
        divide_by_scale(&mut out, &scale, 4);
        affine(
            &mut out,
            &[1.0, 2.0, 1.0, 1.0],
            Some(&[0.0, 0.0, 0.5, 0.0]),
            4,
        );
        let s = 3.5f32.sqrt();
        let want = [-2.0 / s, -2.0 / s, 0.5, 3.0 / s];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6);
        }
    }

    #[test]
    fn rms_norm_does_not_center() {
        let x = [3.0f32, 4.0];
        let mut out = [0.0f32; 2];
        let mut scale = [0.0f32; 1];
        norm_scale(&x, &mut out, &mut scale, 2, 1e-5, false);
        assert!((scale[0] - (12.5f32 + 1e-5).sqrt()).abs() < 1e-6);
        assert_eq!(out, x);
    }
}
