//! `FactoredMatrix` on synthetic matrices: singular values at awkward sizes (odd `k`,
//! `m != n`, `k` above both, rank-deficient factors, a leading batch) against an independent
//! reference (the explicit product in f64, the eigenvalues of its smaller Gram matrix by a
//! plain two-sided cyclic Jacobi), hand-derived diagonal and rank-one cases, and the typed
//! errors on bad shapes.

use hooklens::{FactoredMatrix, HookLensError, Tensor};

/// Deterministic values in [-1, 1) (SplitMix64 of the index).
fn random(n: usize, seed: u64) -> Vec<f32> {
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn t(data: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::new(data, shape.to_vec()).unwrap()
}

/// The explicit product in f64. `[m, n]`
fn product(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|t| a[i * k + t] as f64 * b[t * n + j] as f64)
                .sum();
        }
    }
    out
}

/// The eigenvalues of a symmetric `[p, p]` matrix by cyclic two-sided Jacobi rotations.
fn jacobi_eigenvalues(mut g: Vec<f64>, p: usize) -> Vec<f64> {
    for _ in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| g[i * p + j].powi(2))
            .sum();
        if off < 1e-30 {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let gij = g[i * p + j];
                if gij == 0.0 {
                    continue;
                }
                let theta = 0.5 * (2.0 * gij).atan2(g[j * p + j] - g[i * p + i]);
                let (s, c) = theta.sin_cos();
                for r in 0..p {
                    let (x, y) = (g[r * p + i], g[r * p + j]);
                    g[r * p + i] = c * x - s * y;
                    g[r * p + j] = s * x + c * y;
                }
                for r in 0..p {
                    let (x, y) = (g[i * p + r], g[j * p + r]);
                    g[i * p + r] = c * x - s * y;
                    g[j * p + r] = s * x + c * y;
                }
            }
        }
    }
    (0..p).map(|i| g[i * p + i]).collect()
}

/// The reference singular values of `a @ b`, descending, `min(m, k, n)` of them.
fn reference_singular_values(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f64> {
    let c = product(a, b, (m, k, n)); // [m, n]
    let p = m.min(n);
    let mut g = vec![0.0; p * p]; // the smaller of c cᵀ and cᵀ c
    for i in 0..p {
        for j in 0..p {
            g[i * p + j] = if m <= n {
                (0..n).map(|x| c[i * n + x] * c[j * n + x]).sum()
            } else {
                (0..m).map(|x| c[x * n + i] * c[x * n + j]).sum()
            };
        }
    }
    let mut s: Vec<f64> = jacobi_eigenvalues(g, p)
        .into_iter()
        .map(|e| e.max(0.0).sqrt())
        .collect();
    s.sort_by(|x, y| y.total_cmp(x));
    s.truncate(m.min(k).min(n));
    s
}

fn assert_singular_values(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: count");
    let scale = want.first().copied().unwrap_or(1.0).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (*g as f64 - w).abs();
        assert!(d <= 1e-4 * scale, "{what}: S[{i}] {g} vs {w}");
    }
    assert!(
        got.windows(2).all(|w| w[0] >= w[1]),
        "{what}: not descending"
    );
}

#[test]
fn singular_values_at_awkward_sizes_match_the_explicit_product() {
    // (m, k, n): odd inner sizes, m != n, k above both, a tall and a wide product.
    for (i, dims) in [
        (7, 5, 9),
        (13, 11, 3),
        (4, 9, 6),
        (1, 1, 1),
        (2, 17, 2),
        (23, 7, 19),
    ]
    .into_iter()
    .enumerate()
    {
        let (m, k, n) = dims;
        let (a, b) = (random(m * k, 2 * i as u64), random(k * n, 2 * i as u64 + 1));
        let fm = FactoredMatrix::new(t(a.clone(), &[m, k]), t(b.clone(), &[k, n])).unwrap();
        let s = fm.singular_values();
        assert_eq!(s.shape, [m.min(k).min(n)]);
        let want = reference_singular_values(&a, &b, dims);
        assert_singular_values(&s.data, &want, &format!("{dims:?}"));
        let frob: f64 = product(&a, &b, dims)
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt();
        let norm = fm.norm();
        assert_eq!(norm.shape, Vec::<usize>::new());
        assert!(
            (norm.data[0] as f64 - frob).abs() <= 1e-5 * frob,
            "{dims:?} norm"
        );
    }
}

#[test]
fn rank_deficient_factors_give_trailing_zeros() {
    // a = u @ w with inner rank 2: a [9, 7] has rank 2, so a @ b has two nonzero values.
    let (m, k, n, r) = (9, 7, 8, 2);
    let (u, w) = (random(m * r, 11), random(r * k, 12));
    let a: Vec<f32> = product(&u, &w, (m, r, k))
        .iter()
        .map(|&v| v as f32)
        .collect();
    let b = random(k * n, 13);
    let fm = FactoredMatrix::new(t(a.clone(), &[m, k]), t(b.clone(), &[k, n])).unwrap();
    let s = fm.singular_values().data;
    assert_singular_values(&s, &reference_singular_values(&a, &b, (m, k, n)), "rank 2");
    assert!(s[1] > 1e-2 * s[0], "the second value is a real one");
    assert!(s[2..].iter().all(|&v| v <= 1e-5 * s[0]), "{s:?}");
}

#[test]
fn diagonal_and_rank_one_cases_are_hand_derived() {
    // diag(3, -2, 0.5) @ diag(1, 4, 2) = diag(3, -8, 1): S = [8, 3, 1], ‖·‖ = √74.
    let a = t(vec![3.0, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.5], &[3, 3]);
    let b = t(vec![1.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 2.0], &[3, 3]);
    let fm = FactoredMatrix::new(a, b).unwrap();
    let s = fm.singular_values().data;
    for (g, w) in s.iter().zip([8.0, 3.0, 1.0]) {
        assert!((g - w).abs() < 1e-6, "{s:?}");
    }
    assert!((fm.norm().data[0] - 74f32.sqrt()).abs() < 1e-5);
    assert_eq!(
        fm.ba().unwrap().data,
        [3.0, 0.0, 0.0, 0.0, -8.0, 0.0, 0.0, 0.0, 1.0]
    );
    // a = u vᵀ with u = [1, 2, 2] (‖u‖ = 3), v = [1, 0] and b = [[0, 3, 4], [1, 1, 1]]:
    // a @ b = u (bᵀv)ᵀ, one value ‖u‖ ‖bᵀv‖ = 3 · 5 = 15.
    let a = t(vec![1.0, 0.0, 2.0, 0.0, 2.0, 0.0], &[3, 2]);
    let b = t(vec![0.0, 3.0, 4.0, 1.0, 1.0, 1.0], &[2, 3]);
    let s = FactoredMatrix::new(a, b).unwrap().singular_values().data;
    assert_eq!(s.len(), 2);
    assert!((s[0] - 15.0).abs() < 1e-5 && s[1].abs() < 1e-5, "{s:?}");
}

#[test]
fn a_batch_is_each_matrix_on_its_own_and_transpose_swaps_the_product() {
    let (m, k, n) = (5, 3, 4);
    let (a, b) = (random(6 * m * k, 21), random(6 * k * n, 22));
    let fm = FactoredMatrix::new(t(a.clone(), &[2, 3, m, k]), t(b.clone(), &[2, 3, k, n])).unwrap();
    assert_eq!(fm.shape(), [2, 3, m, n]);
    assert_eq!(fm.batch_shape(), [2, 3]);
    let (s, norm, ab) = (fm.singular_values(), fm.norm(), fm.ab());
    assert_eq!(
        (s.shape.clone(), norm.shape.clone()),
        (vec![2, 3, 3], vec![2, 3])
    );
    for i in 0..6 {
        let (ai, bi) = (&a[i * m * k..][..m * k], &b[i * k * n..][..k * n]);
        let want = reference_singular_values(ai, bi, (m, k, n));
        assert_singular_values(&s.data[i * 3..][..3], &want, &format!("matrix {i}"));
        let p = product(ai, bi, (m, k, n));
        for (g, w) in ab.data[i * m * n..][..m * n].iter().zip(&p) {
            assert!((*g as f64 - w).abs() < 1e-6);
        }
    }
    let tr = fm.transpose();
    assert_eq!(tr.shape(), [2, 3, n, m]);
    let tab = tr.ab();
    assert_eq!(
        tab.at(&[1, 2, 3, 0]).unwrap(),
        ab.at(&[1, 2, 0, 3]).unwrap()
    );
    assert_eq!(tr.singular_values().shape, s.shape);
    // The corner: leading axes cut too, [min(2, 2), min(2, 3), 2, 2].
    let corner = fm.get_corner(2);
    assert_eq!(corner.shape, [2, 2, 2, 2]);
    assert_eq!(
        corner.at(&[1, 1, 1, 0]).unwrap(),
        ab.at(&[1, 1, 1, 0]).unwrap()
    );
}

#[test]
fn bad_shapes_are_input_errors() {
    let bad = |a: &[usize], b: &[usize]| {
        let (na, nb) = (a.iter().product(), b.iter().product());
        FactoredMatrix::new(t(vec![0.0; na], a), t(vec![0.0; nb], b))
    };
    for (a, b) in [
        (&[3][..], &[3, 2][..]),  // a vector
        (&[3, 4], &[5, 2]),       // inner sizes differ
        (&[2, 3, 4], &[3, 4, 2]), // leading axes differ
        (&[2, 3, 4], &[4, 2]),    // leading axes missing on one side
    ] {
        match bad(a, b) {
            Err(HookLensError::Input { message }) => {
                assert!(message.contains("FactoredMatrix"), "{message}")
            }
            other => panic!("{a:?} {b:?}: {other:?}"),
        }
    }
    let wide = bad(&[3, 4], &[4, 5]).unwrap();
    assert!(matches!(wide.ba(), Err(HookLensError::Input { .. })));
    assert!(wide.index(0).is_err());
    // Zero-sized axes are fine: no values, no panic.
    let empty = bad(&[0, 3, 4], &[0, 4, 3]).unwrap();
    assert_eq!(empty.singular_values().shape, [0, 3]);
    assert_eq!(bad(&[3, 0], &[0, 3]).unwrap().norm().data, [0.0]);
}
