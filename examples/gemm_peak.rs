//! The GEMM's rate as a fraction of the machine's FMA peak, measured in interleaved rounds.
//!
//! ```text
//! cargo run --release --example gemm_peak -- M K N [threads] [rounds] [mc kc nc]
//! ```
//!
//! Each round times the FMA peak loop on `threads` threads (about 30 ms), then the GEMM
//! (`M x K` times a packed `K x N`, the median of as many calls as fill about 60 ms), and
//! takes their ratio. The host's speed drifts by more than the differences being tuned (on a
//! 2-vCPU VM the two-thread peak has swung 1.2-1.9x within minutes), so the ratio within a
//! round is the figure to compare; the median, minimum and maximum of the rounds' ratios are
//! printed, with the rates. `mc kc nc` replace the kernel's blocking (for tuning);
//! `HOOKLENS_KERNEL` chooses the kernel path as everywhere; `HOOKLENS_SPLIT=rows|columns`
//! forces how the threads divide the output (`auto` or unset: the product's own choice).
//! `HOOKLENS_COLD_W=1` cycles the calls through copies of the packed weights that together
//! exceed 256 MiB, so each call reads its `W` from memory, as a forward pass over a model's
//! layers does (default: one `W`, hot in the caches after the first call).

use std::hint::black_box;
use std::time::Instant;

#[allow(dead_code)] // the CPU-time helper is for the other tuning examples
#[path = "common/util.rs"]
mod util;
use util::values;

#[cfg(target_arch = "x86_64")]
#[path = "common/peak.rs"]
mod peak;

use hooklens::backend::cpu::gemm::{gemm_with, Blocking, GemmOptions, Kernel, PackedMatrix, Split};

/// Steps of the peak loop per thread and round.
const PEAK_ITERS: usize = 1 << 22;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers only: M K N [threads] [rounds]"))
        .collect();
    let [m, k, n] = [args[0], args[1], args[2]];
    let threads = args.get(3).copied().unwrap_or(1);
    let rounds = args.get(4).copied().unwrap_or(15);
    let kernel = Kernel::best();
    let (peak_fn, flops_per_iter) = peak_loop(kernel);
    let w_values = values(k * n, 1);
    let copies = if cold_weights_from_env() {
        (256usize << 20).div_ceil(k * n * 4).max(2)
    } else {
        1
    };
    let ws: Vec<PackedMatrix> = (0..copies)
        .map(|_| PackedMatrix::from_k_by_n(&w_values, k, n))
        .collect();
    let mut next_w = 0;
    let x = values(m * k, 2);
    let mut out = vec![0.0f32; m * n];
    let mut blocking = Blocking::for_kernel(kernel);
    if let [mc, kc, nc] = args.get(5..8).unwrap_or(&[]) {
        (blocking.mc, blocking.kc, blocking.nc) = (*mc, *kc, *nc);
    }
    let opts = GemmOptions {
        kernel,
        threads,
        blocking: Some(blocking),
        split: split_from_env(),
        ..GemmOptions::default()
    };
    let gemm_flops = 2.0 * (m * k * n) as f64;
    let mut gemm = || {
        let w = &ws[next_w];
        next_w = (next_w + 1) % copies;
        let t = Instant::now();
        gemm_with(&x, m, w, None, &mut out, &opts);
        t.elapsed().as_secs_f64()
    };
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < 0.3 {
        gemm();
    }
    let calls = (0.06 / gemm().max(1e-6)).clamp(3.0, 200.0) as usize;
    let mut rows = Vec::new();
    for _ in 0..rounds {
        let peak = peak_rate(peak_fn, flops_per_iter, threads);
        let mut times: Vec<f64> = (0..calls).map(|_| gemm()).collect();
        times.sort_by(f64::total_cmp);
        let rate = gemm_flops / times[calls / 2] / 1e9;
        rows.push((rate / peak, rate, peak));
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, rate, peak) = rows[rounds / 2];
    println!(
        "{m}x{k}x{n} t{threads} {}{} mc{} kc{} nc{}: {:.1} % of peak (median of {rounds} rounds; range \
         {:.1}-{:.1} %), that round {rate:.1} of {peak:.1} GFLOP/s",
        kernel.name(),
        if copies > 1 { " cold-W" } else { "" },
        blocking.mc,
        blocking.kc,
        blocking.nc,
        ratio * 100.0,
        rows[0].0 * 100.0,
        rows[rounds - 1].0 * 100.0,
    );
}

/// `HOOKLENS_COLD_W`: set and not `0` to stream the weights from memory (see the header).
fn cold_weights_from_env() -> bool {
    std::env::var("HOOKLENS_COLD_W").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `HOOKLENS_SPLIT`: `rows`, `columns`, or unset (or `auto`) for the automatic split; any
/// other value stops the run, so that a misspelt one never measures the automatic split.
fn split_from_env() -> Split {
    match std::env::var("HOOKLENS_SPLIT").as_deref() {
        Ok("rows") => Split::Rows,
        Ok("columns") => Split::Columns,
        Ok("auto") | Err(_) => Split::Auto,
        Ok(other) => panic!("HOOKLENS_SPLIT={other:?}: use rows, columns or auto"),
    }
}

/// The peak loop for `kernel`'s instruction set and its FLOPs per step.
fn peak_loop(kernel: Kernel) -> (unsafe fn(usize, f32) -> f32, usize) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => (peak::avx512, 24 * 16 * 2),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2Fma => (peak::avx2, 12 * 8 * 2),
        _ => panic!("the peak loop needs AVX2 or AVX-512 (HOOKLENS_KERNEL=portable has none)"),
    }
}

/// GFLOP/s of `f` on `threads` threads at once, `PEAK_ITERS` steps each.
fn peak_rate(f: unsafe fn(usize, f32) -> f32, flops_per_iter: usize, threads: usize) -> f64 {
    let t = Instant::now();
    let total: f32 = std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|i| {
                // SAFETY: `peak_loop` chose `f` for a kernel path the CPU runs.
                s.spawn(move || unsafe { f(PEAK_ITERS, black_box(i as f32)) })
            })
            .collect();
        parts.into_iter().map(|p| p.join().unwrap_or(0.0)).sum()
    });
    black_box(total);
    (flops_per_iter * PEAK_ITERS * threads) as f64 / t.elapsed().as_secs_f64() / 1e9
}
