//! The log-softmax normaliser of one vocabulary row, as every sweep's log-prob / prob / loss /
//! KL metric computes it per variant: `log_sum_exp` (vectorised exponentials summed in f64)
//! against the all-f64 libm loop it replaced, at GPT-2's and SmolLM2's vocabulary sizes.
//!
//! ```text
//! cargo bench --bench metric
//! ```

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use hooklens::backend::cpu::activation::log_sum_exp;

/// The loop the metrics used before: max, then `exp` of each logit in f64.
fn log_sum_exp_libm(x: &[f32]) -> f64 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max
}

/// A logit row of `n` values spread over about -15..15.
fn row(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u64 * 2_654_435_761) % 3001) as f32 / 100.0 - 15.0)
        .collect()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("log_sum_exp");
    for vocab in [49_152usize, 50_257] {
        let x = row(vocab);
        group.throughput(Throughput::Elements(vocab as u64));
        group.bench_with_input(BenchmarkId::new("vectorised", vocab), &x, |b, x| {
            b.iter(|| log_sum_exp(black_box(x)))
        });
        group.bench_with_input(BenchmarkId::new("libm_f64", vocab), &x, |b, x| {
            b.iter(|| log_sum_exp_libm(black_box(x)))
        });
    }
    group.finish();
    c.final_summary();
}
