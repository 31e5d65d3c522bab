//! Times the fused causal attention (the unwatched path) of one layer at a long prompt, next
//! to a GEMM of the same model width, so the two rates can be compared (issue target:
//! attention at T = 2048 at least half the GEMM's GFLOP/s on its own FLOPs).
//!
//! ```text
//! cargo run --release --example attn_tune -- [T] [threads] [n_heads n_kv_heads d_head] [reps]
//! ```
//!
//! Defaults: T = 2048, 2 threads, GPT-2 small's 12 heads of 64. FLOPs counted are the causal
//! ones: `4 * d_head * (t + 1)` per query vector (scores and values), summed over positions
//! and heads. `HOOKLENS_KERNEL` picks the path (avx512, avx2, portable).

use std::time::Instant;

#[path = "common/util.rs"]
mod util;
use util::{thread_cpu_seconds, values};

use hooklens::backend::cpu::attention::{attention_fused, HeadDims};
use hooklens::backend::cpu::gemm::{gemm_with, GemmOptions, Kernel, PackedMatrix};
use hooklens::model::layout::RowLayout;

/// Median seconds of `reps` calls of `f` after one warm-up call: wall time, and the calling
/// thread's CPU time (meaningful with one thread).
fn median_seconds(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..reps)
        .map(|_| {
            let (t, c) = (Instant::now(), thread_cpu_seconds());
            f();
            (t.elapsed().as_secs_f64(), thread_cpu_seconds() - c)
        })
        .unzip();
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[reps / 2], cpu[reps / 2])
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers only"))
        .collect();
    let t = args.first().copied().unwrap_or(2048);
    let threads = args.get(1).copied().unwrap_or(2);
    let (n_heads, n_kv_heads, d_head) = match args.get(2..5) {
        Some(&[h, kv, d]) => (h, kv, d),
        _ => (12, 12, 64),
    };
    let reps = args.get(5).copied().unwrap_or(5);
    hooklens::set_num_threads(threads);
    let dims = HeadDims {
        n_heads,
        n_kv_heads,
        d_head,
    };
    let layout = RowLayout::full(1, t);
    let q = values(t * n_heads * d_head, 1); // [t, n_heads, d_head]
    let k = values(t * n_kv_heads * d_head, 2); // [1, t, n_kv_heads, d_head]
    let v = values(t * n_kv_heads * d_head, 3);
    let mut z = vec![0.0f32; t * n_heads * d_head]; // [t, n_heads, d_head]
    let secs = median_seconds(reps, || {
        attention_fused(&q, &k, &v, &mut z, &layout, None, dims)
    });
    let flops = 4.0 * (d_head * n_heads) as f64 * (t * (t + 1) / 2) as f64;

    // A product of the same rows and width: x [t, d_model] @ W [d_model, d_model].
    let d_model = n_heads * d_head;
    let w = PackedMatrix::from_k_by_n(&values(d_model * d_model, 4), d_model, d_model);
    let x = values(t * d_model, 5);
    let mut out = vec![0.0f32; t * d_model];
    let opts = GemmOptions {
        threads,
        ..GemmOptions::default()
    };
    let gemm_secs = median_seconds(reps, || gemm_with(&x, t, &w, None, &mut out, &opts));
    let gemm_flops = 2.0 * (t * d_model * d_model) as f64;
    let (attn_rate, gemm_rate) = (flops / secs.0 / 1e9, gemm_flops / gemm_secs.0 / 1e9);
    println!(
        "T {t}, {n_heads} heads ({n_kv_heads} kv) of {d_head}, {threads} threads, {} kernel: \
         attention {:.1} ms = {attn_rate:.1} GFLOP/s; GEMM {t}x{d_model}x{d_model} \
         {gemm_rate:.1} GFLOP/s; ratio {:.2}",
        Kernel::best().name(),
        secs.0 * 1e3,
        attn_rate / gemm_rate
    );
    if threads == 1 {
        let (attn_cpu, gemm_cpu) = (flops / secs.1 / 1e9, gemm_flops / gemm_secs.1 / 1e9);
        println!(
            "  on CPU time: attention {attn_cpu:.1} GFLOP/s, GEMM {gemm_cpu:.1}, ratio {:.2}",
            attn_cpu / gemm_cpu
        );
    }
}
