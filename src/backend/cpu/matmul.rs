//! Matrix products: `x @ W` with `W` stored `[k, n]`, and `x @ Wᵀ` with `W` stored `[n, k]`
//! (the unembedding, whose rows are tokens). Threads split the output columns, so each thread
//! streams its own part of the weights once; this is what matters for the memory-bound
//! batch-1 case.

use super::threads::{num_threads, reserve_workers};

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// A raw output pointer that threads writing disjoint columns may share (here and in
/// `qgemv`).
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: every user hands an OutPtr only to threads that each write their own column range of
// the output, and holds the unique borrow of the buffer until they all finish.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer; a method (not a field read) so closures capture the whole `Send` wrapper.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Splits `0..n` into one contiguous range per thread (or one, unless `parallel`), each a
/// multiple of 16 wide except the last, and runs `f(j0, j1)` for each on the worker pool
/// (here and in `qgemv`).
pub(crate) fn for_column_ranges(n: usize, parallel: bool, f: impl Fn(usize, usize) + Sync) {
    let wanted = if !parallel {
        1
    } else {
        num_threads().min(n.div_ceil(16))
    };
    let workers = reserve_workers(wanted);
    let threads = workers.threads();
    if threads == 1 {
        f(0, n);
        return;
    }
    let width = n.div_ceil(threads).div_ceil(16) * 16;
    let ranges: Vec<(usize, usize)> = (0..n)
        .step_by(width)
        .map(|j0| (j0, (j0 + width).min(n)))
        .collect();
    workers.run_parts(ranges, |(j0, j1)| f(j0, j1));
}

/// `out = x @ w (+ bias)`.
/// x: `[m, k]`   w: `[k, n]`   bias: `[n]`   out: `[m, n]`
pub fn matmul(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    (m, k, n): (usize, usize, usize),
    out: &mut [f32],
) {
    assert!(x.len() >= m * k && w.len() >= k * n && out.len() >= m * n);
    if let Some(b) = bias {
        assert!(b.len() >= n);
    }
    let ptr = OutPtr(out.as_mut_ptr());
    for_column_ranges(n, m * k * n >= PARALLEL_MIN_WORK, |j0, j1| {
        let width = j1 - j0;
        // Four rows of x share each streamed row of w.
        for i0 in (0..m).step_by(4) {
            let rows = (m - i0).min(4);
            // SAFETY: rows i0..i0+rows, columns j0..j1 of `out` belong to this thread alone (see
            // OutPtr); the ranges are in bounds by the assert above, and the slices do not overlap.
            let mut out_rows: Vec<&mut [f32]> = (0..rows)
                .map(|r| unsafe {
                    std::slice::from_raw_parts_mut(ptr.get().add((i0 + r) * n + j0), width)
                })
                .collect();
            for row in out_rows.iter_mut() {
                match bias {
                    Some(b) => row.copy_from_slice(&b[j0..j1]),
                    None => row.fill(0.0),
                }
            }
            for kk in 0..k {
                let w_row = &w[kk * n + j0..kk * n + j1];
                for (r, row) in out_rows.iter_mut().enumerate() {
                    let a = x[(i0 + r) * k + kk];
                    for (o, &wv) in row.iter_mut().zip(w_row) {
                        *o += a * wv;
                    }
                }
            }
        }
    });
}

/// Dot product with eight independent accumulators so the compiler can vectorise it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (xa, xb) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += xa[l] * xb[l];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// `out = x @ wᵀ (+ bias)`.
/// x: `[m, k]`   w: `[n, k]`   bias: `[n]`   out: `[m, n]`
pub fn matmul_transposed(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    (m, k, n): (usize, usize, usize),
    out: &mut [f32],
) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    if let Some(b) = bias {
        assert!(b.len() >= n);
    }
    let ptr = OutPtr(out.as_mut_ptr());
    for_column_ranges(n, m * k * n >= PARALLEL_MIN_WORK, |j0, j1| {
        for j in j0..j1 {
            let w_row = &w[j * k..(j + 1) * k];
            let b = bias.map_or(0.0, |b| b[j]);
            for i in 0..m {
                let v = dot(&x[i * k..(i + 1) * k], w_row) + b;
                // SAFETY: column j lies in this thread's range j0..j1 (see OutPtr), and i * n + j
                // is in bounds by the assert above.
                unsafe { *ptr.get().add(i * n + j) = v };
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::threads::set_num_threads;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn reference(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        m: usize,
        k: usize,
        n: usize,
    ) -> Vec<f32> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |b| b[j] as f64);
                for kk in 0..k {
                    s += x[i * k + kk] as f64 * w[kk * n + j] as f64;
                }
                out[i * n + j] = s;
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn matmul_matches_reference_at_awkward_sizes() {
        for threads in [1, 3] {
            set_num_threads(threads);
            for &(m, k, n) in &[
                (1, 1, 1),
                (1, 37, 53),
                (5, 17, 33),
                (7, 131, 97),
                (13, 64, 257),
                (3, 520, 700),
            ] {
                let x = random(m * k, 1);
                let w = random(k * n, 2);
                let b = random(n, 3);
                let want = reference(&x, &w, Some(&b), m, k, n);
                let mut got = vec![f32::NAN; m * n];
                matmul(&x, &w, Some(&b), (m, k, n), &mut got);
                for (g, r) in got.iter().zip(&want) {
                    assert!((g - r).abs() < 1e-4, "{m}x{k}x{n}: {g} vs {r}");
                }
                // Transposed form against the same reference.
                let wt = crate::model::weights::transpose(&w, k, n);
                let mut got_t = vec![f32::NAN; m * n];
                matmul_transposed(&x, &wt, Some(&b), (m, k, n), &mut got_t);
                for (g, r) in got_t.iter().zip(&want) {
                    assert!((g - r).abs() < 1e-4, "transposed {m}x{k}x{n}: {g} vs {r}");
                }
            }
        }
        set_num_threads(0);
    }
}
