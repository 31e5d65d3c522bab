//! Two block sizes for one GEMM shape, alternated call by call in one process (a tuning aid).
//!
//! ```text
//! cargo run --release --example gemm_blocking_ab -- M K N THREADS ROUNDS A B
//! ```
//!
//! `A` and `B` are `mc,kc`, `mc,kc,deep_kc` or `mc,kc,deep_kc,nc_packed_once` (0: none; `-` for the kernel's default
//! blocking). Each round times one call of each, in alternating order, so the host's drift
//! (its speed swings by 10-40 % within minutes on a 2-vCPU VM) hits both alike; the median
//! and quartiles of the per-round time ratio B / A are printed with each side's median rate.

use std::hint::black_box;
use std::time::Instant;

#[allow(dead_code)] // the CPU-time helper is for the other tuning examples
#[path = "common/util.rs"]
mod util;
use util::values;

use hooklens::backend::cpu::gemm::{gemm_with, Blocking, GemmOptions, Kernel, PackedMatrix};

/// `mc,kc[,deep_kc[,nc_packed_once]]` over `base`, or `base` itself for `-`.
fn parse_blocking(spec: &str, base: Blocking) -> Blocking {
    if spec == "-" {
        return base;
    }
    let v: Vec<usize> = spec
        .split(',')
        .map(|s| {
            s.parse()
                .expect("mc,kc[,deep_kc[,nc_packed_once]]: numbers")
        })
        .collect();
    let mut b = base;
    (b.mc, b.kc) = (v[0], v[1]);
    if let Some(&deep) = v.get(2) {
        b.deep_kc = (deep > 0).then_some(deep);
    }
    if let Some(&once) = v.get(3) {
        b.nc_packed_once = (once > 0).then_some(once);
    }
    b
}

/// The value at fraction `q` of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize { args[i].parse().expect("M K N THREADS ROUNDS: numbers") };
    let (m, k, n, threads, rounds) = (num(0), num(1), num(2), num(3), num(4));
    let kernel = Kernel::best();
    let base = Blocking::for_kernel(kernel);
    let sides = [
        parse_blocking(&args[5], base),
        parse_blocking(&args[6], base),
    ];
    let w = PackedMatrix::from_k_by_n(&values(k * n, 1), k, n);
    let x = values(m * k, 2);
    let mut out = vec![0.0f32; m * n];
    let mut time = |blocking: Blocking| {
        let opts = GemmOptions {
            kernel,
            threads,
            blocking: Some(blocking),
            ..GemmOptions::default()
        };
        let t = Instant::now();
        gemm_with(&x, m, &w, None, &mut out, &opts);
        black_box(&out);
        t.elapsed().as_secs_f64()
    };
    for side in sides {
        time(side); // warm-up: pool threads, packing buffers
    }
    let mut secs = [Vec::new(), Vec::new()];
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut t = [0.0; 2];
        for side in order {
            t[side] = time(sides[side]);
        }
        ratios.push(t[1] / t[0]);
        (0..2).for_each(|s| secs[s].push(t[s]));
    }
    ratios.sort_by(f64::total_cmp);
    let gflops = |s: &mut Vec<f64>| {
        s.sort_by(f64::total_cmp);
        2.0 * (m * k * n) as f64 / quantile(s, 0.5) / 1e9
    };
    println!(
        "{m}x{k}x{n} t{threads} {kernel:?}: A {:?} {:.1} GFLOP/s, B {:?} {:.1} GFLOP/s; \
         time B/A median {:.3} (quartiles {:.3}-{:.3}) over {rounds} rounds",
        (
            sides[0].mc,
            sides[0].kc,
            sides[0].deep_kc,
            sides[0].nc_packed_once
        ),
        gflops(&mut secs[0]),
        (
            sides[1].mc,
            sides[1].kc,
            sides[1].deep_kc,
            sides[1].nc_packed_once
        ),
        gflops(&mut secs[1]),
        quantile(&ratios, 0.5),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
    );
}
