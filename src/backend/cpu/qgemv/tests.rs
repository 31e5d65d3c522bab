//! The quantised products against the loader's dequantisation (`model::gguf::dequantize`,
//! which the SIMD decoders reimplement and the portable path calls) and an f64 reference product, at sizes that are not multiples
//! of the thread split, on every kernel path the CPU has.

use std::sync::Arc;

use super::super::gemm::{self, Epilogue, GemmOptions, Kernel, PackedMatrix};
use super::super::threads::set_num_threads;
use super::rows::BLOCK;
use super::*;
use crate::model::gguf::dequantize;

/// A deterministic generator of values in [-1, 1) and of bytes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn unit(&mut self) -> f32 {
        (self.next() % (1 << 24)) as f32 / (1 << 23) as f32 - 1.0
    }
    fn f16_bytes(&mut self, scale: f32) -> [u8; 2] {
        half::f16::from_f32(self.unit() * scale)
            .to_bits()
            .to_le_bytes()
    }
}

/// `n` random rows of `k` weights of `kind`: scales and minima of ordinary size, every
/// quant byte random.
fn random_rows(kind: QuantKind, k: usize, n: usize, seed: u64) -> Vec<u8> {
    let mut g = Lcg(seed);
    let mut bytes = Vec::new();
    let header = if kind == QuantKind::Q4_1 { 4 } else { 2 };
    for _ in 0..n * k / BLOCK {
        bytes.extend(g.f16_bytes(0.05));
        if kind == QuantKind::Q4_1 {
            bytes.extend(g.f16_bytes(0.2));
        }
        bytes.extend((header..kind.block_bytes()).map(|_| g.next() as u8));
    }
    bytes
}

/// The loader's f32 values of the stored rows. `[n, k]`
fn dequantized(kind: QuantKind, bytes: &[u8], k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; k * n];
    dequantize(kind.ggml_type(), bytes, k * n, &mut out).unwrap();
    out
}

fn rows_of(
    kind: QuantKind,
    bytes: Vec<u8>,
    k: usize,
    n: usize,
    order: Option<Vec<u32>>,
) -> QuantRows {
    QuantRows::new(Arc::new(bytes), 0, (kind, k, n), order).unwrap()
}

/// Every kernel this CPU runs.
fn kernels() -> Vec<Kernel> {
    Kernel::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

const KINDS: [QuantKind; 3] = [QuantKind::Q8_0, QuantKind::Q4_0, QuantKind::Q4_1];

#[test]
fn decoded_weights_are_the_loaders_bit_for_bit() {
    // x = e_i makes each output the decoded weight itself: w * 1 summed with exact zeros
    // (which turn a -0 weight into +0, so zeros compare as values, everything else by bits).
    let (k, n) = (64, 5);
    for kind in KINDS {
        let bytes = random_rows(kind, k, n, 7);
        let want = dequantized(kind, &bytes, k, n); // [n, k]
        let rows = rows_of(kind, bytes, k, n, None);
        for kernel in kernels() {
            for i in 0..k {
                let mut x = vec![0.0f32; k];
                x[i] = 1.0;
                let mut out = vec![f32::NAN; n];
                quant_gemm(&x, 1, &rows, None, Epilogue::Store, &mut out, kernel);
                for j in 0..n {
                    let (got, want) = (out[j], want[j * k + i]);
                    assert!(
                        got.to_bits() == want.to_bits() || (got == 0.0 && want == 0.0),
                        "{kind:?} {kernel:?} weight ({i}, {j}): {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// The f64 reference of `then(x @ W + bias)`. w: `[n, k]` (stored rows)
fn reference(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    (m, k, n): (usize, usize, usize),
    then: Epilogue<'_>,
    old: &[f32],
) -> Vec<f32> {
    use super::super::activation::{gelu_new, silu};
    let mut out = Vec::with_capacity(m * n);
    for r in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k)
                .map(|i| x[r * k + i] as f64 * w[j * k + i] as f64)
                .sum();
            let y = (dot + bias[j] as f64) as f32;
            out.push(match then {
                Epilogue::Store => y,
                Epilogue::AddInto => old[r * n + j] + y,
                Epilogue::GeluNew => gelu_new(y),
                Epilogue::SiluGateMul(g) => y * silu(g[r * n + j]),
            });
        }
    }
    out
}

#[test]
fn products_match_the_reference_at_awkward_sizes_on_every_path() {
    let mut g = Lcg(3);
    for threads in [1, 3] {
        set_num_threads(threads);
        for &(k, n) in &[(32, 1), (96, 17), (576, 37), (256, 700), (1536, 131)] {
            for kind in KINDS {
                let bytes = random_rows(kind, k, n, (k * n) as u64);
                let w = dequantized(kind, &bytes, k, n);
                let rows = rows_of(kind, bytes, k, n, None);
                for m in 1..=MAX_ROWS {
                    let x: Vec<f32> = (0..m * k).map(|_| g.unit()).collect();
                    let bias: Vec<f32> = (0..n).map(|_| g.unit()).collect();
                    let old: Vec<f32> = (0..m * n).map(|_| g.unit()).collect();
                    let gate: Vec<f32> = (0..m * n).map(|_| 4.0 * g.unit()).collect();
                    let epilogues = [
                        Epilogue::Store,
                        Epilogue::AddInto,
                        Epilogue::GeluNew,
                        Epilogue::SiluGateMul(&gate),
                    ];
                    for then in epilogues {
                        let want = reference(&x, &w, &bias, (m, k, n), then, &old);
                        for kernel in kernels() {
                            let mut out = old.clone();
                            quant_gemm(&x, m, &rows, Some(&bias), then, &mut out, kernel);
                            for (i, (got, want)) in out.iter().zip(&want).enumerate() {
                                let tol = 1e-5 * (1.0 + (k as f32).sqrt()) * (1.0 + want.abs());
                                assert!(
                                    (got - want).abs() <= tol,
                                    "{kind:?} {kernel:?} {m}x{k}x{n} {then:?} [{i}]: {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    set_num_threads(0);
}

#[test]
fn a_row_order_reads_each_output_from_its_stored_row() {
    let (k, n) = (64, 6);
    let order = vec![3u32, 0, 5, 1, 4, 2];
    let bytes = random_rows(QuantKind::Q4_1, k, n, 11);
    let w = dequantized(QuantKind::Q4_1, &bytes, k, n);
    let rows = rows_of(QuantKind::Q4_1, bytes, k, n, Some(order.clone()));
    let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
    for kernel in kernels() {
        let mut out = vec![0.0; n];
        quant_gemm(&x, 1, &rows, None, Epilogue::Store, &mut out, kernel);
        for (j, &src) in order.iter().enumerate() {
            let src = src as usize;
            let want: f64 = (0..k).map(|i| x[i] as f64 * w[src * k + i] as f64).sum();
            assert!((out[j] as f64 - want).abs() < 1e-4, "{kernel:?} column {j}");
        }
    }
}

#[test]
fn rows_that_do_not_fit_are_refused() {
    let bytes = Arc::new(vec![0u8; 20 * 4]);
    let q41 = QuantKind::Q4_1;
    assert!(QuantRows::new(bytes.clone(), 0, (q41, 64, 2), None).is_some());
    assert!(
        QuantRows::new(bytes.clone(), 0, (q41, 64, 3), None).is_none(),
        "too few bytes"
    );
    assert!(
        QuantRows::new(bytes.clone(), 20, (q41, 64, 2), None).is_none(),
        "past the end"
    );
    assert!(
        QuantRows::new(bytes.clone(), 0, (q41, 48, 2), None).is_none(),
        "partial block"
    );
    assert!(QuantRows::new(bytes.clone(), 0, (q41, 32, 2), Some(vec![1, 1])).is_none());
    assert!(QuantRows::new(bytes, 0, (q41, 32, 2), Some(vec![1])).is_none());
}

#[test]
fn gemm_then_reads_attached_rows_for_small_batches_only() {
    let (k, n) = (128, 40);
    let bytes = random_rows(QuantKind::Q8_0, k, n, 5);
    let w = dequantized(QuantKind::Q8_0, &bytes, k, n); // [n, k]
    let mut packed = PackedMatrix::from_n_by_k(&w, n, k);
    packed.attach_quantized(rows_of(QuantKind::Q8_0, bytes, k, n, None));
    let mut g = Lcg(9);
    for m in [1, MAX_ROWS, MAX_ROWS + 1, 9] {
        let x: Vec<f32> = (0..m * k).map(|_| g.unit()).collect();
        let mut fused = vec![0.0; m * n];
        gemm::gemm_then(&x, m, &packed, None, Epilogue::Store, &mut fused);
        let mut plain = vec![0.0; m * n];
        let opts = GemmOptions::default();
        gemm::gemm_then_with(&x, m, &packed, None, Epilogue::Store, &mut plain, &opts);
        if m > MAX_ROWS || !enabled() {
            assert_eq!(fused, plain, "{m} rows take the packed GEMM");
        } else {
            let mut quant = vec![0.0; m * n];
            let q = packed.quantized().unwrap();
            quant_gemm(&x, m, q, None, Epilogue::Store, &mut quant, Kernel::best());
            assert_eq!(fused, quant, "{m} rows take the quantised product");
            for (a, b) in fused.iter().zip(&plain) {
                assert!((a - b).abs() < 1e-4, "{m} rows: {a} vs {b}");
            }
        }
    }
}
