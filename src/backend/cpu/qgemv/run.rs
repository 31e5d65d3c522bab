//! One quantised product: the output columns split over threads, each column's stored row
//! decoded once for all rows of `x`, the epilogue applied to each value as it is written.

use super::super::activation::{gelu_new, silu};
use super::super::gemm::{Epilogue, Kernel};
use super::super::matmul::{for_column_ranges, OutPtr};
use super::rows::QuantRows;
use super::{portable, MAX_ROWS};

/// Below this many stored weights a product runs on the calling thread.
const PARALLEL_MIN_WEIGHTS: usize = 1 << 16;

/// Which row-dot implementation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    /// The GEMM's kernel choice (so `HOOKLENS_KERNEL` forces this path too), where the CPU
    /// also converts halves (F16C).
    fn of(kernel: Kernel) -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            let f16c = is_x86_feature_detected!("f16c");
            match kernel {
                Kernel::Avx512 if f16c => return Isa::Avx512,
                Kernel::Avx2Fma if f16c => return Isa::Avx2,
                _ => {}
            }
        }
        let _ = kernel;
        Isa::Portable
    }
}

/// `out = then(x @ W + bias)` with `W` read from its quantised rows, with `kernel`'s
/// instruction set.
/// x: `[m, k]`   W: `[k, n]` as `q`   bias: `[n]`   out: `[m, n]`
///
/// Panics if `m` is not in `1..=MAX_ROWS` or a buffer is shorter than its shape (as
/// [`super::super::gemm::gemm_then`]).
pub fn quant_gemm(
    x: &[f32],
    m: usize,
    q: &QuantRows,
    bias: Option<&[f32]>,
    then: Epilogue<'_>,
    out: &mut [f32],
    kernel: Kernel,
) {
    let (k, n) = q.shape();
    assert!((1..=MAX_ROWS).contains(&m), "quant_gemm: {m} rows");
    assert!(
        x.len() >= m * k && out.len() >= m * n,
        "quant_gemm: buffers too short"
    );
    assert!(
        bias.is_none_or(|b| b.len() >= n),
        "quant_gemm: bias too short"
    );
    if let Epilogue::SiluGateMul(gate) = then {
        assert!(gate.len() >= m * n, "quant_gemm: gate too short");
    }
    let isa = Isa::of(if kernel.is_available() {
        kernel
    } else {
        Kernel::Portable
    });
    let ptr = OutPtr(out.as_mut_ptr());
    for_column_ranges(n, k * n >= PARALLEL_MIN_WEIGHTS, |j0, j1| {
        let mut dots = [0.0f32; MAX_ROWS];
        // The portable path's dequantised row. [k]
        let mut scratch = vec![0.0f32; if isa == Isa::Portable { k } else { 0 }];
        for j in j0..j1 {
            row_dots(isa, q, j, (x, m), &mut scratch, &mut dots);
            let b = bias.map_or(0.0, |b| b[j]);
            for (r, &dot) in dots.iter().enumerate().take(m) {
                let at = r * n + j;
                // SAFETY: column j lies in this part's range (see OutPtr) and `at < m * n`,
                // in bounds by the assert above.
                let o = unsafe { &mut *ptr.get().add(at) };
                *o = finish(dot + b, *o, then, at);
            }
        }
    });
}

/// The dot products of stored row `j` with the `m` rows of `x` (`scratch`: `[k]` on the
/// portable path).
fn row_dots(
    isa: Isa,
    q: &QuantRows,
    j: usize,
    (x, m): (&[f32], usize),
    scratch: &mut [f32],
    out: &mut [f32; MAX_ROWS],
) {
    let (kind, k) = (q.kind(), q.shape().0);
    let row = q.row(j);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx512 is chosen only where AVX-512F and F16C were detected; `row` is
        // whole blocks of `kind`; `x` holds `m` rows of `k` (asserted by quant_gemm).
        Isa::Avx512 => unsafe { super::avx512::row_dots(kind, row, x, k, m, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2, FMA and F16C.
        Isa::Avx2 => unsafe { super::avx2::row_dots(kind, row, x, k, m, out) },
        Isa::Portable => portable::row_dots(kind, row, (x, k), m, scratch, out),
    }
}

/// The stored value for `y = x @ W + bias` at flat index `at`, given the old value `old`:
/// what the packed GEMM's epilogues compute, in the same operation order.
#[inline]
fn finish(y: f32, old: f32, then: Epilogue<'_>, at: usize) -> f32 {
    match then {
        Epilogue::Store => y,
        Epilogue::AddInto => old + y,
        Epilogue::GeluNew => gelu_new(y),
        Epilogue::SiluGateMul(gate) => y * silu(gate[at]),
    }
}
