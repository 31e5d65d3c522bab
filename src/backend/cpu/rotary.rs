//! Rotary position embeddings in HF's half-rotation layout: within each head the pairs are
//! `(x[i], x[i + d_head/2])`.

use super::simd::multiversion;
use super::threads::{reserve_workers, threads_for};

/// cos/sin tables for positions `0..seq`. Each is // [seq, d_head / 2]
pub struct RotaryTables {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl RotaryTables {
    /// Tables for `seq` positions, head width `d_head`, base `theta`. Angles are formed in f64
    /// and rounded once, so they match HF's f32 tables to rounding.
    pub fn new(seq: usize, d_head: usize, theta: f32) -> Self {
        let half = d_head / 2;
        let mut cos = Vec::with_capacity(seq * half);
        let mut sin = Vec::with_capacity(seq * half);
        for p in 0..seq {
            for i in 0..half {
                // HF: inv_freq = 1 / theta^(2i / d_head), computed in f32.
                let inv_freq = 1.0f32 / (theta as f64).powf((2 * i) as f64 / d_head as f64) as f32;
                let angle = p as f64 * inv_freq as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RotaryTables { cos, sin, half }
    }

    /// The (cos, sin) tables, each `[seq, d_head / 2]` (a GPU backend uploads them).
    pub fn tables(&self) -> (&[f32], &[f32]) {
        (&self.cos, &self.sin)
    }

    /// Rotates every head of every row in place; row `r` is at absolute `positions[r]`.
    /// x: // [rows, heads, d_head]
    pub fn apply(&self, x: &mut [f32], positions: &[usize], heads: usize) {
        let width = heads * 2 * self.half;
        if width == 0 {
            return;
        }
        let rows = positions.len().min(x.len() / width);
        let workers = reserve_workers(threads_for(rows * width, MIN_PER_THREAD));
        let per_part = rows.div_ceil(workers.threads()).max(1);
        let parts: Vec<_> = x[..rows * width]
            .chunks_mut(per_part * width)
            .zip(positions.chunks(per_part))
            .collect();
        workers.run_parts(parts, |(x, positions)| {
            rotate_rows(x, positions, (&self.cos, &self.sin), (heads, self.half))
        });
    }
}

/// Values per thread at least (rotary over fewer runs on the calling thread).
const MIN_PER_THREAD: usize = 1 << 14;

multiversion! {
    /// [`RotaryTables::apply`] on a share of the rows; tables: (cos, sin), each
    /// `[positions, half]`; dims: (heads, half).
    fn rotate_rows(
        x: &mut [f32],
        positions: &[usize],
        tables: (&[f32], &[f32]),
        dims: (usize, usize),
    ) {
        let ((cos, sin), (heads, half)) = (tables, dims);
        let d_head = 2 * half;
        for (r, &p) in positions.iter().enumerate() {
            let cos = &cos[p * half..(p + 1) * half];
            let sin = &sin[p * half..(p + 1) * half];
            for h in 0..heads {
                let start = (r * heads + h) * d_head;
                let (lo, hi) = x[start..start + d_head].split_at_mut(half);
                for i in 0..half {
                    let (a, c) = (lo[i], hi[i]);
                    lo[i] = a * cos[i] - c * sin[i];
                    hi[i] = c * cos[i] + a * sin[i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity_and_norm_is_kept() {
        let t = RotaryTables::new(3, 4, 10000.0);
        let mut x = vec![
            1.0f32, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 0.5, -1.0, 2.0, 0.25,
        ];
        let orig = x.clone();
        t.apply(&mut x, &[0, 1, 2], 1);
        assert_eq!(&x[..4], &orig[..4]);
        for p in 1..3 {
            let n0: f32 = orig[p * 4..p * 4 + 4].iter().map(|v| v * v).sum();
            let n1: f32 = x[p * 4..p * 4 + 4].iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-5);
        }
        // Position 1, pair 0 rotates by angle 1 rad (inv_freq = 1 for i = 0).
        let (a, c) = (orig[4], orig[6]);
        assert!((x[4] - (a * 1f32.cos() - c * 1f32.sin())).abs() < 1e-6);
        assert!((x[6] - (c * 1f32.cos() + a * 1f32.sin())).abs() < 1e-6);
    }

    #[test]
    fn threaded_rows_equal_the_formula() {
        // 300 rows x 4 heads x 32 values: above the threading threshold.
        let (rows, heads, d_head) = (300, 4, 32);
        let t = RotaryTables::new(rows, d_head, 10000.0);
        let x: Vec<f32> = (0..rows * heads * d_head)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let positions: Vec<usize> = (0..rows).rev().collect();
        let mut got = x.clone();
        t.apply(&mut got, &positions, heads);
        let half = d_head / 2;
        for (r, &p) in positions.iter().enumerate() {
            for h in 0..heads {
                for i in 0..half {
                    let base = (r * heads + h) * d_head;
                    let (a, c) = (x[base + i], x[base + half + i]);
                    let (cos, sin) = (t.cos[p * half + i], t.sin[p * half + i]);
                    assert_eq!(
                        got[base + i],
                        a * cos - c * sin,
                        "row {r} head {h} pair {i}"
                    );
                    assert_eq!(got[base + half + i], c * cos + a * sin);
                }
            }
        }
    }
}
