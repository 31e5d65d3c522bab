//! Readings of one vocabulary row, at GPT-2's and SmolLM2's vocabulary sizes, against the
//! code they replaced:
//! - the log-softmax normaliser every sweep's log-prob / prob / loss / KL metric computes per
//!   variant: `log_sum_exp` (vectorised exponentials summed in f64) against the all-f64 libm
//!   loop;
//! - `top_k` (what `hooklens run` prints per row and the logit lens per layer and position):
//!   linear-time selection and one normaliser against sorting the whole row after an f64
//!   softmax.
//!
//! ```text
//! cargo bench --bench metric
//! ```

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use hooklens::analysis::{softmax, top_k, TokenProb};
use hooklens::backend::cpu::activation::log_sum_exp;

/// The loop the metrics used before: max, then `exp` of each logit in f64.
fn log_sum_exp_libm(x: &[f32]) -> f64 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max
}

/// `top_k` as it was: the f64 softmax of the row, then the whole row sorted.
fn top_k_by_sorting(logits: &[f32], k: usize) -> Vec<TokenProb> {
    let probs = softmax(logits);
    let mut ids: Vec<usize> = (0..logits.len()).collect();
    ids.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    (ids.into_iter().take(k))
        .map(|i| TokenProb {
            token_id: i as u32,
            prob: probs[i],
            logit: logits[i],
        })
        .collect()
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
    let mut group = c.benchmark_group("top_k");
    for vocab in [49_152usize, 50_257] {
        let x = row(vocab);
        group.throughput(Throughput::Elements(vocab as u64));
        for k in [1usize, 10] {
            let id = |name: &str| BenchmarkId::new(format!("{name}_k{k}"), vocab);
            group.bench_with_input(id("select"), &x, |b, x| b.iter(|| top_k(black_box(x), k)));
            group.bench_with_input(id("sort_all"), &x, |b, x| {
                b.iter(|| top_k_by_sorting(black_box(x), k))
            });
        }
    }
    group.finish();
    c.final_summary();
}
