//! The packed GEMM against the plain kernels (`matmul`, `matmul_transposed`) and an f64
//! reference, at awkward sizes: M in {1, 2, 5, 6, 7, 13, 17, 97, 300}; K and N at 1, primes and
//! tile widths ± 1 (15, 16, 17, 47, 127, 577, 1537); with and without bias; both constructors;
//! every kernel this CPU runs (AVX-512, AVX2 + FMA, portable); 1 and 2 threads, split by rows
//! and by columns.
//!
//! # Tolerance
//! Data are in ±[0.25, 1] (never 0, so a dropped, doubled or misplaced term moves a result by at
//! least 0.0625). An f32 dot product of length k rounds each product and each partial sum with
//! relative error at most u = 2^-24; with terms of random sign the partial sums grow like
//! sqrt(p), and the total error has a standard deviation of about u * k * rms(x w) / 2.5
//! (blocked or FMA summation is no worse). The bound used,
//! `2 * f32::EPSILON * (k + 1) * max|x| * max(max|w|, max|bias|)` = `4 u (k + 1) X W`, is ten or
//! more standard deviations (rms(x w) <= X W), so no correct result fails, while at k = 1537 it
//! is 3.7e-4, far below the 0.0625 of any wrong term. Against the f32 plain kernels, whose own
//! error is as large, the bound is doubled.

use hooklens::backend::cpu::gemm::{
    gemm, gemm_with, set_force_portable, GemmOptions, Kernel, PackedMatrix, Split,
};
use hooklens::backend::cpu::matmul::{matmul, matmul_transposed};
use hooklens::set_num_threads;

const MS: [usize; 9] = [1, 2, 5, 6, 7, 13, 17, 97, 300];
const SMALL: [usize; 6] = [1, 15, 16, 17, 47, 127];

/// Deterministic values in ±[0.25, 1].
fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            let v = 0.25 + 0.75 * u;
            if s & 1 == 0 {
                v
            } else {
                -v
            }
        })
        .collect()
}

/// `w` transposed. w: // [rows, cols] -> // [cols, rows]
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
    out
}

/// f64 `x @ w + bias`. x: // [m, k]   w: // [k, n]   bias: // [n]   out: // [m, n]
fn reference(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    (m, k, n): (usize, usize, usize),
) -> Vec<f64> {
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        let row = &mut out[i * n..(i + 1) * n];
        if let Some(b) = bias {
            for (o, &b) in row.iter_mut().zip(b) {
                *o = b as f64;
            }
        }
        for kk in 0..k {
            let a = x[i * k + kk] as f64;
            for (o, &wv) in row.iter_mut().zip(&w[kk * n..(kk + 1) * n]) {
                *o += a * wv as f64;
            }
        }
    }
    out
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |a, &b| a.max(b.abs()))
}

/// The tolerance explained at the top of the file.
fn tolerance(k: usize, x: &[f32], w: &[f32], b: &[f32]) -> f64 {
    2.0 * f32::EPSILON as f64
        * (k + 1) as f64
        * max_abs(x) as f64
        * max_abs(w).max(max_abs(b)) as f64
}

fn assert_close<T: Copy + Into<f64>>(got: &[f32], want: &[T], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
        let r: f64 = r.into();
        assert!(
            (g as f64 - r).abs() <= tol,
            "{what}: element {i}: got {g}, want {r}, |diff| {} > tol {tol}",
            (g as f64 - r).abs()
        );
    }
}

fn kernels() -> Vec<Kernel> {
    [Kernel::Avx512, Kernel::Avx2Fma, Kernel::Portable]
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

/// Every variant of one shape against the f64 reference and the plain kernels.
fn check_shape(m: usize, k: usize, n: usize) {
    let seed = (m * 1_000_003 + k * 1009 + n) as u64;
    let x = random(m * k, seed); // [m, k]
    let w = random(k * n, seed + 1); // [k, n]
    let wt = transpose(&w, k, n); // [n, k]
    let b = random(n, seed + 2); // [n]
    let tol = tolerance(k, &x, &w, &b);
    let by_kn = PackedMatrix::from_k_by_n(&w, k, n);
    let by_nk = PackedMatrix::from_n_by_k(&wt, n, k);
    for bias in [None, Some(&b[..])] {
        let want = reference(&x, &w, bias, (m, k, n));
        let mut plain = vec![f32::NAN; m * n]; // [m, n]
        matmul(&x, &w, bias, (m, k, n), &mut plain);
        let mut plain_t = vec![f32::NAN; m * n]; // [m, n]
        matmul_transposed(&x, &wt, bias, (m, k, n), &mut plain_t);
        for kernel in kernels() {
            for (threads, split) in [(1, Split::Auto), (2, Split::Rows), (2, Split::Columns)] {
                let opts = GemmOptions {
                    kernel,
                    threads,
                    split,
                    blocking: None,
                    parallel_min_work: 0,
                };
                for (packed, name) in [(&by_kn, "from_k_by_n"), (&by_nk, "from_n_by_k")] {
                    let what = format!(
                        "{m}x{k}x{n} {kernel:?} {threads} threads {split:?} {name} bias {}",
                        bias.is_some()
                    );
                    let mut got = vec![f32::NAN; m * n]; // [m, n]
                    gemm_with(&x, m, packed, bias, &mut got, &opts);
                    assert_close(&got, &want, tol, &format!("{what} vs f64"));
                    assert_close(&got, &plain, 2.0 * tol, &format!("{what} vs matmul"));
                    assert_close(
                        &got,
                        &plain_t,
                        2.0 * tol,
                        &format!("{what} vs matmul_transposed"),
                    );
                }
            }
        }
    }
}

#[test]
fn small_k_and_n_every_m() {
    for m in MS {
        for k in SMALL {
            for n in SMALL {
                check_shape(m, k, n);
            }
        }
    }
}

#[test]
fn large_k_or_n_every_m() {
    // Several k blocks (577 and 1537 are longer than the AVX2 kernel's KC, 1537 than the
    // AVX-512 one's), many panels with a ragged last one, and skinny dimensions beside them.
    for m in MS {
        for (k, n) in [
            (577, 1537),
            (1537, 577),
            (1537, 17),
            (17, 1537),
            (1537, 1),
            (1, 577),
            (127, 577),
        ] {
            check_shape(m, k, n);
        }
    }
}

#[test]
fn large_square_at_edge_batch_sizes() {
    for m in [1, 7, 97] {
        check_shape(m, 1537, 1537);
    }
}

#[test]
fn packing_agrees_between_constructors() {
    for (k, n) in [(1, 1), (15, 17), (577, 47), (16, 1537)] {
        let w = random(k * n, 9); // [k, n]
        let a = PackedMatrix::from_k_by_n(&w, k, n);
        let b = PackedMatrix::from_n_by_k(&transpose(&w, k, n), n, k);
        assert_eq!(a.to_k_by_n(), w);
        assert_eq!(b.to_k_by_n(), w);
        assert_eq!(a.get(k - 1, n - 1), w[k * n - 1]);
        assert_eq!(b.get(0, n - 1), w[n - 1]);
    }
}

/// The default entry point honours `set_force_portable` and `set_num_threads`. (The one test
/// here that touches those globals; the others pass explicit options.)
#[test]
fn default_entry_point_and_switches() {
    let (m, k, n) = (33, 300, 700);
    let x = random(m * k, 1);
    let w = random(k * n, 2);
    let b = random(n, 3);
    let packed = PackedMatrix::from_k_by_n(&w, k, n);
    let want = reference(&x, &w, Some(&b), (m, k, n));
    let tol = tolerance(k, &x, &w, &b);
    for force in [true, false] {
        set_force_portable(force);
        let only_portable = kernels() == [Kernel::Portable];
        assert_eq!(Kernel::best() == Kernel::Portable, force || only_portable);
        for threads in [1, 2] {
            set_num_threads(threads);
            let mut got = vec![f32::NAN; m * n];
            gemm(&x, m, &packed, Some(&b), &mut got);
            assert_close(
                &got,
                &want,
                tol,
                &format!("force {force} threads {threads}"),
            );
        }
    }
    set_num_threads(0);
}

/// `HOOKLENS_FORCE_PORTABLE=1` selects the portable kernel: checked in a child process, since
/// the variable is read once per process.
#[test]
fn env_var_forces_portable() {
    if std::env::var_os("HOOKLENS_GEMM_TEST_CHILD").is_some() {
        assert_eq!(Kernel::best(), Kernel::Portable);
        return;
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_var_forces_portable", "--test-threads=1"])
        .env("HOOKLENS_GEMM_TEST_CHILD", "1")
        .env("HOOKLENS_FORCE_PORTABLE", "1")
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "child test failed: {}\n{}{}",
        child.status,
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
}
