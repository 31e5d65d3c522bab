//! Times one GEMM shape with chosen block sizes (a tuning aid; benches/gemm.rs is the benchmark).
//!
//! ```text
//! cargo run --release --example gemm_tune -- M K N [threads] [mc kc nc] [reps]
//! ```
//!
//! `mc kc nc` of `0 0 0` keep the kernel's default blocking (to give `reps` alone).
//!
//! `HOOKLENS_MIN_WORK` overrides the threading threshold (`PARALLEL_MIN_WORK`),
//! `HOOKLENS_NC_ONCE` the W block width of `Blocking::nc_packed_once` (0: `None`),
//! `HOOKLENS_SHARE_ROWS` `Blocking::share_rows` and `HOOKLENS_DEEP_KC` `Blocking::deep_kc`
//! (0: `None`).

use std::time::Instant;

#[path = "common/util.rs"]
mod util;
use util::{thread_cpu_seconds, values};

use hooklens::backend::cpu::gemm::{gemm_with, Blocking, GemmOptions, Kernel, PackedMatrix};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers only"))
        .collect();
    let (m, k, n) = (args[0], args[1], args[2]);
    let threads = args.get(3).copied().unwrap_or(1);
    let kernel = Kernel::best();
    let mut blocking = Blocking::for_kernel(kernel);
    if args.len() >= 7 && args[4..7] != [0, 0, 0] {
        blocking.mc = args[4];
        blocking.kc = args[5];
        blocking.nc = args[6];
    }
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(nc) = env("HOOKLENS_NC_ONCE") {
        blocking.nc_packed_once = (nc > 0).then_some(nc);
    }
    if let Some(rows) = env("HOOKLENS_SHARE_ROWS") {
        blocking.share_rows = rows;
    }
    if let Some(deep) = env("HOOKLENS_DEEP_KC") {
        blocking.deep_kc = (deep > 0).then_some(deep);
    }
    let reps = args.get(7).copied().unwrap_or(15);
    let w = PackedMatrix::from_k_by_n(&values(k * n, 1), k, n);
    let x = values(m * k, 2);
    let mut out = vec![0.0f32; m * n];
    let opts = GemmOptions {
        kernel,
        threads,
        blocking: Some(blocking),
        parallel_min_work: std::env::var("HOOKLENS_MIN_WORK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(hooklens::backend::cpu::gemm::PARALLEL_MIN_WORK),
        ..GemmOptions::default()
    };
    // Warm-up for 0.3 s: the pool's workers start, and the scheduler spreads them over the
    // cores (a short-lived process otherwise sometimes runs both threads on one core).
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < 0.3 {
        gemm_with(&x, m, &w, None, &mut out, &opts);
    }
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    for _ in 0..reps {
        let (t, c) = (Instant::now(), thread_cpu_seconds());
        gemm_with(&x, m, &w, None, &mut out, &opts);
        times.push(t.elapsed().as_secs_f64());
        cpu_times.push(thread_cpu_seconds() - c);
    }
    cpu_times.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    let med = times[reps / 2];
    let best = times[0];
    let flops = 2.0 * (m * k * n) as f64;
    println!(
        "{m}x{k}x{n} t{threads} {} mc{} kc{} nc{}: median {:.1} GFLOP/s, best {:.1}, \
         calling thread's CPU time: median {:.1}",
        kernel.name(),
        blocking.mc,
        blocking.kc,
        blocking.nc,
        flops / med / 1e9,
        flops / best / 1e9,
        flops / cpu_times[reps / 2] / 1e9 * threads as f64
    );
}
