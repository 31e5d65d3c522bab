//! Small dense f64 kernels behind [`super::FactoredMatrix`]: products, Gram traces and the
//! singular values of `A @ B` from a `k x k`-sized problem (Householder QR of both factors, then
//! a one-sided Jacobi SVD of the small core). Every matrix is row-major.

use crate::model::weights::transpose;

/// `a @ b` (`a` `[m, k]`, `b` `[k, n]`), accumulated in f64. `[m, n]`
pub fn matmul(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * n); // [m, n]
    let mut row = vec![0.0f64; n]; // [n]
    for i in 0..m {
        row.fill(0.0);
        for t in 0..k {
            let av = a[i * k + t] as f64;
            for (acc, &bv) in row.iter_mut().zip(&b[t * n..(t + 1) * n]) {
                *acc += av * bv as f64;
            }
        }
        out.extend(row.iter().map(|&v| v as f32));
    }
    out
}

/// `‖a @ b‖_F` without the product: `sqrt(trace((aᵀa)(bbᵀ)))`, both Gram matrices `[k, k]`.
pub fn frobenius(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> f64 {
    let at = transpose(&widen(a), m, k); // [k, m]
    let g = gram_rows(&at, k, m); // aᵀa [k, k]
    let h = gram_rows(&widen(b), k, n); // bbᵀ [k, k]
    let trace: f64 = g.iter().zip(&h).map(|(x, y)| x * y).sum(); // both symmetric
    trace.max(0.0).sqrt()
}

/// `x xᵀ` of a row-major `[rows, cols]` matrix. `[rows, rows]`
fn gram_rows(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut g = vec![0.0f64; rows * rows]; // [rows, rows]
    for p in 0..rows {
        for q in p..rows {
            let v = dot(&x[p * cols..][..cols], &x[q * cols..][..cols]);
            g[p * rows + q] = v;
            g[q * rows + p] = v;
        }
    }
    g
}

/// The singular values of `a @ b`, descending, `min(m, k, n)` of them. `[min(m, k, n)]`
pub fn singular_values(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    let ra = qr_r(widen(a), m, k); // [min(m, k), k]
    let rb = qr_r(transpose(&widen(b), k, n), n, k); // [min(n, k), k]
    let (pa, pb) = (m.min(k), n.min(k));
    // a @ b = Qa Ra Rbᵀ Qbᵀ: the core's columns are the rows of Rb mapped through Ra.
    let cols: Vec<Vec<f64>> = (0..pb)
        .map(|j| {
            let rbj = &rb[j * k..][..k];
            (0..pa).map(|i| dot(&ra[i * k..][..k], rbj)).collect()
        })
        .collect(); // pb columns of [pa]
    let mut s = jacobi_column_norms(cols);
    s.sort_by(|x, y| y.total_cmp(x));
    s.truncate(pa.min(pb));
    s.into_iter().map(|v| v as f32).collect()
}

/// The f64 copy of a slice.
fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// The dot product of two equal-length slices.
fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// The `R` of a Householder QR of a row-major `[p, q]` matrix: its first `min(p, q)` rows,
/// upper trapezoidal. Rank-deficient input gives zero rows, not a failure. `[min(p, q), q]`
fn qr_r(mut x: Vec<f64>, p: usize, q: usize) -> Vec<f64> {
    let r = p.min(q);
    for j in 0..r {
        let norm = (j..p).map(|i| x[i * q + j].powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let alpha = if x[j * q + j] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (j..p).map(|i| x[i * q + j]).collect(); // [p - j]
        v[0] -= alpha;
        let vv = dot(&v, &v);
        if vv == 0.0 {
            continue;
        }
        for c in j..q {
            let f = 2.0 * (j..p).map(|i| v[i - j] * x[i * q + c]).sum::<f64>() / vv;
            for i in j..p {
                x[i * q + c] -= f * v[i - j];
            }
        }
    }
    x.truncate(r * q);
    for i in 0..r {
        x[i * q..i * q + i].fill(0.0);
    }
    x
}

/// One-sided (Hestenes) Jacobi: rotates pairs of columns until all are orthogonal; their norms
/// are then the singular values of the matrix they form (unsorted).
fn jacobi_column_norms(mut cols: Vec<Vec<f64>>) -> Vec<f64> {
    const SWEEPS: usize = 80;
    for _ in 0..SWEEPS {
        let mut rotated = false;
        for p in 0..cols.len() {
            for q in p + 1..cols.len() {
                let (left, right) = cols.split_at_mut(q);
                rotated |= rotate_pair(&mut left[p], &mut right[0]);
            }
        }
        if !rotated {
            break;
        }
    }
    cols.iter().map(|c| dot(c, c).sqrt()).collect()
}

/// Rotates columns `x`, `y` to be orthogonal; false when they already are (to f64 precision).
fn rotate_pair(x: &mut [f64], y: &mut [f64]) -> bool {
    let (alpha, beta, gamma) = (dot(x, x), dot(y, y), dot(x, y));
    if gamma == 0.0 || gamma.abs() <= 1e-15 * (alpha * beta).sqrt() {
        return false;
    }
    let zeta = (beta - alpha) / (2.0 * gamma);
    let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
    let c = 1.0 / (1.0 + t * t).sqrt();
    let s = c * t;
    for (u, v) in x.iter_mut().zip(y.iter_mut()) {
        let (a, b) = (*u, *v);
        *u = c * a - s * b;
        *v = s * a + c * b;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_r_keeps_column_norms_and_is_upper() {
        // [[3, 1], [4, 2], [0, 2]]: ‖col0‖ = 5, ‖col1‖ = 3.
        let r = qr_r(vec![3.0, 1.0, 4.0, 2.0, 0.0, 2.0], 3, 2);
        assert_eq!(r.len(), 4);
        assert_eq!(r[2], 0.0);
        assert!((r[0].abs() - 5.0).abs() < 1e-12);
        assert!(((r[1] * r[1] + r[3] * r[3]).sqrt() - 3.0).abs() < 1e-12);
        // r00 r01 = col0 · col1 = 3 + 8 = 11
        assert!((r[0] * r[1] - 11.0).abs() < 1e-12);
    }

    #[test]
    fn jacobi_of_a_2x2_matches_the_closed_form() {
        // [[2, 0], [1, 1]] (columns [2, 1] and [0, 1]): σ² are the roots of x² - 6x + 4.
        let s = jacobi_column_norms(vec![vec![2.0, 1.0], vec![0.0, 1.0]]);
        let mut s2: Vec<f64> = s.iter().map(|v| v * v).collect();
        s2.sort_by(|a, b| b.total_cmp(a));
        assert!((s2[0] - (3.0 + 5f64.sqrt())).abs() < 1e-12);
        assert!((s2[1] - (3.0 - 5f64.sqrt())).abs() < 1e-12);
    }
}
