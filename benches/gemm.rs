//! GEMM throughput at the model shapes, against the `matrixmultiply` crate and the plain
//! `matmul`, plus the memory read bandwidth that bounds the batch-1 case.
//!
//! One thread count per run (the `matrixmultiply` pool reads its size once per process):
//!
//! ```text
//! HOOKLENS_BENCH_THREADS=2 cargo bench --bench gemm
//! HOOKLENS_BENCH_THREADS=1 cargo bench --bench gemm
//! python3 scripts/bench/gemm_table.py   # collects target/criterion into a markdown table
//! ```
//!
//! Groups (throughput is FLOPs = 2·M·K·N, shown by criterion as elem/s, or bytes for the
//! memory-bound groups):
//! - `gemm_t{T}/{impl}/{M}x{K}x{N}`: weights hot in cache (the same matrix every iteration);
//!   impl = `hooklens` (best kernel), `hooklens_avx2` (AVX2 + FMA kernel forced),
//!   `matrixmultiply` (`sgemm`), `plain` (`matmul`, or `matmul_transposed` for the unembedding).
//! - `cold_t{T}/hooklens/1xKxN`: batch 1 cycling through copies of the packed weights that
//!   together exceed 256 MiB, so every product streams its weights from memory (as a forward
//!   pass does); throughput in bytes of packed weights.
//! - `bandwidth_t{T}/sum/512MiB`: a streaming sum of a 512 MiB buffer split across T threads.
//! - `peak_t{T}/{avx2_fma,avx512_fma}/1M`: independent FMA chains in registers on T threads, the
//!   attainable FLOP rate (its ratio to 32 or 64 FLOP per cycle per core gives the clock).
//!
//! `HOOKLENS_BENCH_QUICK=1` keeps only M = 1 and 256 (for a smoke run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use hooklens::backend::cpu::gemm::{gemm_with, GemmOptions, Kernel, PackedMatrix};
use hooklens::backend::cpu::matmul::{matmul, matmul_transposed};
use hooklens::set_num_threads;

/// (name, K, N, stored as [N, K]: the tied unembedding).
const SHAPES: [(&str, usize, usize, bool); 10] = [
    ("gpt2 attn out", 768, 768, false),
    ("gpt2 qkv", 768, 2304, false),
    ("gpt2 mlp up", 768, 3072, false),
    ("gpt2 mlp down", 3072, 768, false),
    ("gpt2 unembed", 768, 50257, true),
    ("smollm2 q/o", 576, 576, false),
    ("smollm2 k/v", 576, 192, false),
    ("smollm2 mlp up", 576, 1536, false),
    ("smollm2 mlp down", 1536, 576, false),
    ("smollm2 unembed", 576, 49152, true),
];

const MS: [usize; 4] = [1, 16, 256, 2304];

/// The plain kernel is skipped above this many FLOPs per call (it would take seconds).
const PLAIN_MAX_FLOPS: f64 = 2.5e10;

fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn threads() -> usize {
    std::env::var("HOOKLENS_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(hooklens::backend::cpu::threads::num_threads)
}

fn bench_gemm(c: &mut Criterion, t: usize, ms: &[usize]) {
    let mut group = c.benchmark_group(format!("gemm_t{t}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600));
    let best = GemmOptions {
        threads: t,
        ..GemmOptions::default()
    };
    let avx2 = GemmOptions {
        kernel: Kernel::Avx2Fma,
        ..best
    };
    for &(_, k, n, transposed) in &SHAPES {
        let w = values(k * n, 1); // [k, n]
        let wt = if transposed {
            transpose(&w, k, n) // [n, k]
        } else {
            Vec::new()
        };
        let packed = if transposed {
            PackedMatrix::from_n_by_k(&wt, n, k)
        } else {
            PackedMatrix::from_k_by_n(&w, k, n)
        };
        for &m in ms {
            let x = values(m * k, 2); // [m, k]
            let mut out = vec![0.0f32; m * n]; // [m, n]
            let flops = 2.0 * (m * k * n) as f64;
            let id = format!("{m}x{k}x{n}");
            group.throughput(Throughput::Elements(flops as u64));
            group.bench_function(BenchmarkId::new("hooklens", &id), |b| {
                b.iter(|| gemm_with(black_box(&x), m, &packed, None, &mut out, &best))
            });
            if Kernel::Avx2Fma.is_available() && Kernel::best() != Kernel::Avx2Fma {
                group.bench_function(BenchmarkId::new("hooklens_avx2", &id), |b| {
                    b.iter(|| gemm_with(black_box(&x), m, &packed, None, &mut out, &avx2))
                });
            }
            group.bench_function(BenchmarkId::new("matrixmultiply", &id), |b| {
                b.iter(|| {
                    // SAFETY: x is [m, k], w is [k, n] and out is [m, n], all row-major and
                    // live for the call; the strides below describe exactly those layouts.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            black_box(x.as_ptr()),
                            k as isize,
                            1,
                            w.as_ptr(),
                            n as isize,
                            1,
                            0.0,
                            out.as_mut_ptr(),
                            n as isize,
                            1,
                        )
                    }
                })
            });
            if flops <= PLAIN_MAX_FLOPS {
                set_num_threads(t);
                group.bench_function(BenchmarkId::new("plain", &id), |b| {
                    b.iter(|| {
                        if transposed {
                            matmul_transposed(black_box(&x), &wt, None, (m, k, n), &mut out)
                        } else {
                            matmul(black_box(&x), &w, None, (m, k, n), &mut out)
                        }
                    })
                });
            }
        }
    }
    group.finish();
}

/// Batch 1 with the weights coming from memory: rotate through enough copies to flush them.
fn bench_cold(c: &mut Criterion, t: usize) {
    let mut group = c.benchmark_group(format!("cold_t{t}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(800));
    let opts = GemmOptions {
        threads: t,
        ..GemmOptions::default()
    };
    for &(_, k, n, _) in &SHAPES {
        let packed = PackedMatrix::from_k_by_n(&values(k * n, 1), k, n);
        let copies: Vec<PackedMatrix> = (0..(256usize << 20).div_ceil(packed.packed_bytes()))
            .map(|_| packed.clone())
            .collect();
        let x = values(k, 2); // [1, k]
        let mut out = vec![0.0f32; n]; // [1, n]
        let mut next = 0;
        group.throughput(Throughput::Bytes(packed.packed_bytes() as u64));
        group.bench_function(BenchmarkId::new("hooklens", format!("1x{k}x{n}")), |b| {
            b.iter(|| {
                next = (next + 1) % copies.len();
                gemm_with(black_box(&x), 1, &copies[next], None, &mut out, &opts)
            })
        });
    }
    group.finish();
}

/// Read bandwidth: a streaming sum over a buffer far larger than the caches.
fn bench_bandwidth(c: &mut Criterion, t: usize) {
    let mut group = c.benchmark_group(format!("bandwidth_t{t}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    let buf = vec![1.0f32; 128 << 20]; // [512 MiB / 4]
    group.throughput(Throughput::Bytes((buf.len() * 4) as u64));
    group.bench_function(BenchmarkId::new("sum", "512MiB"), |b| {
        b.iter(|| {
            let chunk = buf.len().div_ceil(t);
            std::thread::scope(|s| {
                let parts: Vec<_> = buf
                    .chunks(chunk)
                    .map(|part| s.spawn(move || sum(part)))
                    .collect();
                parts.into_iter().map(|p| p.join().unwrap()).sum::<f32>()
            })
        })
    });
    group.finish();
}

/// Peak FLOP rate: `FMA_ITERS` steps of independent register FMA chains on each of `t` threads.
fn bench_peak(c: &mut Criterion, t: usize) {
    const FMA_ITERS: usize = 1 << 20;
    let mut group = c.benchmark_group(format!("peak_t{t}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    #[cfg(target_arch = "x86_64")]
    {
        type Peak = (&'static str, bool, usize, unsafe fn(usize, f32) -> f32);
        let kinds: [Peak; 2] = [
            (
                "avx2_fma",
                Kernel::Avx2Fma.is_available(),
                12 * 8 * 2,
                peak::avx2,
            ),
            (
                "avx512_fma",
                Kernel::Avx512.is_available(),
                24 * 16 * 2,
                peak::avx512,
            ),
        ];
        for (name, available, flops_per_iter, f) in kinds {
            if !available {
                continue;
            }
            group.throughput(Throughput::Elements(
                (flops_per_iter * FMA_ITERS * t) as u64,
            ));
            group.bench_function(BenchmarkId::new(name, "1M"), |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        let parts: Vec<_> = (0..t)
                            .map(|i| {
                                // SAFETY: only run when the CPU reports the kernel's features.
                                s.spawn(move || unsafe { f(FMA_ITERS, black_box(i as f32)) })
                            })
                            .collect();
                        parts.into_iter().map(|p| p.join().unwrap()).sum::<f32>()
                    })
                })
            });
        }
    }
    group.finish();
}

#[cfg(target_arch = "x86_64")]
#[path = "../examples/common/peak.rs"]
mod peak;

/// The streaming sum: AVX2 code where the CPU has it (as the kernels), else baseline SIMD.
fn sum(v: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if Kernel::Avx2Fma.is_available() {
        // SAFETY: the CPU reports AVX2.
        return unsafe { sum_avx2(v) };
    }
    sum_plain(v)
}

/// # Safety
/// AVX2 available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_avx2(v: &[f32]) -> f32 {
    sum_plain(v)
}

/// 32 independent accumulators, so the loads and not the add latency set the pace.
#[inline(always)]
fn sum_plain(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 32];
    let mut chunks = v.chunks_exact(32);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
    out
}

fn main() {
    let t = threads();
    // The matrixmultiply crate sizes its pool from this variable, once, at its first call.
    std::env::set_var("MATMUL_NUM_THREADS", t.to_string());
    let quick = std::env::var_os("HOOKLENS_BENCH_QUICK").is_some();
    let ms: &[usize] = if quick { &[1, 256] } else { &MS };
    let mut c = Criterion::default().configure_from_args();
    bench_peak(&mut c, t);
    bench_bandwidth(&mut c, t);
    bench_gemm(&mut c, t, ms);
    bench_cold(&mut c, t);
    c.final_summary();
}
