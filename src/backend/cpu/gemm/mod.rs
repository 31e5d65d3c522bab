//! A packed, blocked f32 GEMM in the BLIS style: `out[m, n] = x[m, k] @ W[k, n] + bias`.
//!
//! - [`PackedMatrix`] holds `W`, packed once at model load into 16-column panels.
//! - [`gemm`] packs blocks of `x` on the fly into micro-panels and runs a register-tile
//!   micro-kernel ([`Kernel`]: 14 x 32 with AVX-512F, 6 x 16 with AVX2 + FMA, else 6 x 16 in
//!   portable Rust; chosen at run time) inside cache blocks over `n`, `k` and `m` ([`Blocking`]).
//! - Threads ([`super::threads::num_threads`]) take rectangles of the output in turn: column
//!   ranges for small batches (the memory-bound batch-1 case streams each part of `W` once), row
//!   ranges for large batches with few columns.
//! - [`gemm_then`] fuses what follows the product ([`Epilogue`]): GELU or the SiLU gate applied
//!   to each output tile while it is in L1, or a residual add done by the tile's store.
//!
//! The plain kernels in [`super::matmul`] are the reference this one is tested against.
//! Files: `packed.rs` (layout of `W`), `pack_a.rs` (layout of `x` blocks), `avx512.rs`,
//! `avx2.rs` and `portable.rs` (micro-kernels), `kernel.rs` (choice and dispatch), `block.rs`
//! (loop nest), `parallel.rs` (threads).

mod block;
mod kernel;
mod pack_a;
#[cfg(target_arch = "x86_64")]
mod pack_avx512;
mod packed;
mod parallel;
mod portable;
#[cfg(test)]
mod tests;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

pub use block::Blocking;
pub use kernel::{set_force_portable, Kernel, KERNEL_ENV};
pub use packed::PackedMatrix;
pub use parallel::Split;

use super::qgemv;
use super::threads::{num_threads, reserve_workers};
use block::{compute, OutPtr, Problem};

/// Width of the panels of packed `W` (one AVX-512 register, two AVX2 registers).
pub const NR: usize = 16;

/// Default [`GemmOptions::parallel_min_work`]: about 20 µs of single-threaded work. Measured on
/// the machine of `docs/bench-gemm.md`: with the weights hot in cache, 1x576x576 runs 25 %
/// faster on two threads and 1x576x192 / 16x576x192 10-25 % slower; but in whole passes, where
/// the weights come from memory, threading those (SmolLM2's k/v products) made the 1x16
/// forward 3-4 % faster (median of 30 passes, four interleaved pairs), so the threshold sits
/// below them.
pub const PARALLEL_MIN_WORK: usize = 1 << 21;

/// How [`gemm_with`] runs. [`GemmOptions::default`] is what [`gemm`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmOptions {
    /// Micro-kernel; one the CPU lacks falls back to [`Kernel::Portable`].
    pub kernel: Kernel,
    /// Threads to use at most (0 is taken as 1). Small products use one regardless.
    pub threads: usize,
    /// How threads divide the output.
    pub split: Split,
    /// Cache block sizes; `None`: [`Blocking::for_kernel`] of the kernel that runs.
    pub blocking: Option<Blocking>,
    /// Below this much work the product runs on the calling thread, because handing part of it
    /// to a pool worker costs a few µs of wake-up and cache traffic. Work is
    /// `max(m, 24) * k * n`: multiply-adds, but never less than 24 per weight, because a small
    /// batch is bound by streaming the weights (about 24 multiply-adds take as long as reading
    /// one f32 weight from memory on the measured machine). Tests set 0 to thread tiny shapes.
    pub parallel_min_work: usize,
}

impl Default for GemmOptions {
    /// [`Kernel::best`], [`num_threads`], automatic split, the kernel's blocking, default
    /// threshold.
    fn default() -> Self {
        Self {
            kernel: Kernel::best(),
            threads: num_threads(),
            split: Split::Auto,
            blocking: None,
            parallel_min_work: PARALLEL_MIN_WORK,
        }
    }
}

/// What a product does with each output value `y = (x @ W)[i, j] + bias[j]`. The fused forms
/// save a pass over memory: the activation is applied to each output tile while it is still
/// in L1, and the residual add is the tile's store.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `out = y`.
    Store,
    /// `out += y`: the product is added to what `out` holds (a residual add).
    AddInto,
    /// `out = gelu_new(y)` (GPT-2's tanh GELU, as [`super::activation::gelu_new`]).
    GeluNew,
    /// `out = silu(gate) * y`, with `gate` laid out like `out` (`[m, n]`): a gated MLP's
    /// post-activation from its gate and linear branches.
    SiluGateMul(&'a [f32]),
}

/// `out = x @ W (+ bias)` with the best kernel and [`num_threads`] threads.
/// x: `[m, k]`   W: packed `[k, n]`   bias: `[n]`   out: `[m, n]`   (row-major)
///
/// Panics with a message naming the mismatch if `x` holds fewer than `m * k` values, `out`
/// fewer than `m * n`, or `bias` fewer than `n` (only the leading parts are read / written).
pub fn gemm(x: &[f32], m: usize, w: &PackedMatrix, bias: Option<&[f32]>, out: &mut [f32]) {
    gemm_then_with(x, m, w, bias, Epilogue::Store, out, &GemmOptions::default());
}

/// [`gemm`] followed by `then` (an activation or a residual add, fused into the stores).
/// A batch of at most [`qgemv::MAX_ROWS`] rows reads `w`'s quantised rows where it has them
/// (see [`PackedMatrix::attach_quantized`]). Panics as [`gemm`] does, and if a gate holds fewer than `m * n` values.
pub fn gemm_then(
    x: &[f32],
    m: usize,
    w: &PackedMatrix,
    bias: Option<&[f32]>,
    then: Epilogue<'_>,
    out: &mut [f32],
) {
    if let Some(q) = w.quantized() {
        if (1..=qgemv::MAX_ROWS).contains(&m) && qgemv::enabled() {
            qgemv::quant_gemm(x, m, q, bias, then, out, Kernel::best());
            return;
        }
    }
    gemm_then_with(x, m, w, bias, then, out, &GemmOptions::default());
}

/// [`gemm`] with explicit kernel, thread count, split and blocking (for tests and tuning).
pub fn gemm_with(
    x: &[f32],
    m: usize,
    w: &PackedMatrix,
    bias: Option<&[f32]>,
    out: &mut [f32],
    opts: &GemmOptions,
) {
    gemm_then_with(x, m, w, bias, Epilogue::Store, out, opts);
}

/// [`gemm_then`] with explicit options, as [`gemm_with`].
pub fn gemm_then_with(
    x: &[f32],
    m: usize,
    w: &PackedMatrix,
    bias: Option<&[f32]>,
    then: Epilogue<'_>,
    out: &mut [f32],
    opts: &GemmOptions,
) {
    let (k, n) = (w.k(), w.n());
    assert!(
        x.len() >= m * k,
        "gemm: x has {} values, expected at least m * k = {m} * {k}",
        x.len()
    );
    assert!(
        out.len() >= m * n,
        "gemm: out has {} values, expected at least m * n = {m} * {n}",
        out.len()
    );
    if let Some(b) = bias {
        assert!(
            b.len() >= n,
            "gemm: bias has {} values, expected at least n = {n}",
            b.len()
        );
    }
    if let Epilogue::SiluGateMul(gate) = then {
        assert!(
            gate.len() >= m * n,
            "gemm: gate has {} values, expected at least m * n = {m} * {n}",
            gate.len()
        );
    }
    let out = &mut out[..m * n]; // [m, n]
    if k == 0 {
        // An empty sum: only the bias remains.
        empty_product(m, n, bias, then, out);
        return;
    }
    let kernel = opts.kernel.checked();
    let blk = &opts
        .blocking
        .unwrap_or_else(|| Blocking::for_kernel(kernel.kernel()));
    let work = m.max(24).saturating_mul(k).saturating_mul(n);
    let workers = reserve_workers(if work < opts.parallel_min_work {
        1
    } else {
        opts.threads.max(1)
    });
    let threads = workers.threads();
    let tile = (kernel.kernel().mr(), kernel.kernel().panels_per_tile());
    // A skinny x is packed once (below) for every chunk.
    let skinny = m <= blk.skinny_m;
    let chunks = parallel::plan((m, w.panels()), tile, threads, (opts.split, skinny));
    block::PACK_X.with_borrow_mut(|packed_x| {
        // micro-panels [k, rows]
        if skinny {
            packed_x.resize(m * k, 0.0);
            let all = pack_a::ABlock {
                i0: 0,
                mc: m,
                p0: 0,
                kc: k,
            };
            pack_a::pack_a(x, k, all, kernel, packed_x);
        }
        let problem = &Problem {
            x,
            w,
            bias,
            packed_x: skinny.then_some(&packed_x[..]),
            out: OutPtr(out.as_mut_ptr()),
            epilogue: then,
        };
        parallel::run_chunks(&chunks, &workers, |(rows, panels)| {
            // SAFETY: plan() gives disjoint chunks inside [m, n] and run_chunks hands each to
            // one thread only; `out` holds m * n values and `x` m * k (asserted above); the
            // scope inside run_chunks ends before the unique borrow of `out` does.
            unsafe { compute(problem, rows.clone(), panels.clone(), kernel, blk) }
        });
    });
}

/// The product of `k = 0`: `y` is the bias (or zero) in every row, then `then` as usual.
/// out: `[m, n]`
fn empty_product(m: usize, n: usize, bias: Option<&[f32]>, then: Epilogue<'_>, out: &mut [f32]) {
    use super::activation::{gelu_new, silu};
    for (i, row) in out.chunks_exact_mut(n.max(1)).take(m).enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            let y = bias.map_or(0.0, |b| b[j]);
            *o = match then {
                Epilogue::Store => y,
                Epilogue::AddInto => *o + y,
                Epilogue::GeluNew => gelu_new(y),
                Epilogue::SiluGateMul(gate) => silu(gate[i * n + j]) * y,
            };
        }
    }
}
