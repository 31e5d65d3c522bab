//! Elementwise activations.

use super::simd::multiversion;
use super::threads::{reserve_workers, threads_for};

/// Elements per thread at least (a pass over fewer runs on the calling thread).
const MIN_PER_THREAD: usize = 1 << 15;

/// `e^x` for `x` in f32 range, written with plain arithmetic and bit operations so the compiler
/// vectorises loops over it (libm's `expf` is a scalar call): range reduction `x = n ln2 + r`
/// with `n` rounded by the 1.5·2²³ trick, a degree-6 polynomial for `e^r` on |r| <= ln2/2, and
/// `2^n` built in the exponent bits. `n` is read from the low bits of the rounded sum instead
/// of a float-to-int cast (which Rust saturates, and which the compiler leaves scalar).
/// Relative error within two ulps on -87..88 (tested against f64 `exp`), 0 below.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let small = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND; // n in the low mantissa bits
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n is in -126..=127 after the clamp, so n + 127 is a valid biased exponent.
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    let e = p * f32::from_bits(biased << 23);
    // Below -87 the result is under f32's normal range: 0, so that a masked score (-inf)
    // gets exactly zero weight.
    if small {
        0.0
    } else {
        e
    }
}

/// The largest value of `x` (`-inf` for an empty slice; NaNs are skipped), in 16 lanes so the
/// compiler vectorises it.
#[inline(always)]
pub fn max_of(x: &[f32]) -> f32 {
    let max = |a: f32, b: f32| if b > a { b } else { a };
    fold16(x, f32::NEG_INFINITY, max)
}

/// The sum of `x`, in 16 lanes so the compiler vectorises it.
#[inline(always)]
pub fn sum_of(x: &[f32]) -> f32 {
    fold16(x, 0.0, |a, b| a + b)
}

/// `x` folded with `f` in 16 lanes (so the compiler vectorises it): every chunk of 16 into
/// the lanes, the remainder into the first lanes, then the lanes halved four times. A short
/// row (softmax rows are a few dozen keys) costs a few dependent steps, not a serial chain
/// over the lanes and the remainder.
#[inline(always)]
fn fold16(x: &[f32], identity: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [identity; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = f(*l, v);
        }
    }
    for (l, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *l = f(*l, v);
    }
    for half in [8, 4, 2, 1] {
        for i in 0..half {
            lanes[i] = f(lanes[i], lanes[i + half]);
        }
    }
    lanes[0]
}

/// Runs `f(chunk, offset)` over contiguous chunks of `x` on the shared worker budget;
/// `offset` is the chunk's start in `x`.
fn par_chunks(x: &mut [f32], f: impl Fn(&mut [f32], usize) + Sync) {
    let workers = reserve_workers(threads_for(x.len(), MIN_PER_THREAD));
    let threads = workers.threads();
    if threads == 1 {
        f(x, 0);
        return;
    }
    let chunk = x.len().div_ceil(threads);
    let parts: Vec<(usize, &mut [f32])> = x
        .chunks_mut(chunk)
        .enumerate()
        .map(|(i, xs)| (i * chunk, xs))
        .collect();
    workers.run_parts(parts, |(offset, xs)| f(xs, offset));
}

/// GPT-2's tanh approximation of GELU of one value (see [`gelu_new_inplace`]); inlined so
/// that loops over it vectorise, also inside the GEMM's epilogue.
#[inline(always)]
pub fn gelu_new(u: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    let t = 1.0 - 2.0 / (exp_fast(2.0 * C * (u + 0.044_715 * u * u * u)) + 1.0);
    0.5 * u * (1.0 + t)
}

/// `silu(g) = g * sigmoid(g)` of one value; inlined like [`gelu_new`].
#[inline(always)]
pub fn silu(g: f32) -> f32 {
    g / (1.0 + exp_fast(-g))
}

/// GPT-2's tanh approximation of GELU, in place:
/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, with `tanh(u) = 1 - 2 / (e^(2u) + 1)`.
pub fn gelu_new_inplace(x: &mut [f32]) {
    par_chunks(x, |xs, _| gelu_new_chunk(xs));
}

multiversion! {
    /// [`gelu_new_inplace`] over one chunk.
    fn gelu_new_chunk(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = gelu_new(*v);
        }
    }
}

/// `silu(gate) * linear`, written into `linear`: the gated MLP's `hook_post`.
pub fn silu_mul_inplace(gate: &[f32], linear: &mut [f32]) {
    par_chunks(linear, |ls, offset| silu_mul_chunk(&gate[offset..], ls));
}

multiversion! {
    /// `linear *= silu(gate)` over one chunk.
    fn silu_mul_chunk(gate: &[f32], linear: &mut [f32]) {
        for (l, &g) in linear.iter_mut().zip(gate) {
            *l *= silu(g);
        }
    }
}

/// `ln(sum_i e^(x_i))` of a row of logits, in f64: the normaliser of a log-softmax. The
/// exponentials are [`exp_fast`]'s (vectorised, within two f32 ulps) of `x_i - max(x)`, summed
/// in f64 lanes, so the result is within a few parts in 1e7 of the all-f64 sum while a
/// 49,152-entry vocabulary costs a vector pass instead of as many libm calls. A NaN or a
/// `+inf` logit, or a row of only `-inf`, gives NaN (as the f64 loop did); an empty row `-inf`.
pub fn log_sum_exp(x: &[f32]) -> f64 {
    let mut out = 0.0;
    log_sum_exp_into(x, &mut out);
    out
}

multiversion! {
    /// [`log_sum_exp`] of `x`, written to `out`.
    fn log_sum_exp_into(x: &[f32], out: &mut f64) {
        let max = max_of(x);
        let mut lanes = [0.0f64; 8];
        let mut chunks = x.chunks_exact(8);
        for c in &mut chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l += exp_fast(v - max) as f64;
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|&v| exp_fast(v - max) as f64).sum();
        *out = (lanes.iter().sum::<f64>() + tail).ln() + max as f64;
    }
}

/// `acc += x`, elementwise (residual adds).
pub fn add_inplace(acc: &mut [f32], x: &[f32]) {
    par_chunks(acc, |chunk, offset| add_chunk(chunk, &x[offset..]));
}

multiversion! {
    /// `acc += x` over one chunk.
    fn add_chunk(acc: &mut [f32], x: &[f32]) {
        for (a, &b) in acc.iter_mut().zip(x) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_fast_matches_f64_exp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_fast(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        // Two f32 ulps (2 x 1.19e-7): the polynomial is exact to f32 rounding, the rest is
        // the rounding of the result itself.
        assert!(worst < 2.4e-7, "relative error {worst}");
        assert_eq!(exp_fast(-200.0), 0.0);
        assert_eq!(exp_fast(f32::NEG_INFINITY), 0.0);
        assert!(exp_fast(-87.0) > 0.0);
    }

    /// `ln(sum e^x)` in f64 throughout, the reference for [`log_sum_exp`].
    fn log_sum_exp_f64(x: &[f32]) -> f64 {
        let max = x
            .iter()
            .map(|&v| v as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max
    }

    #[test]
    fn log_sum_exp_matches_the_f64_sum_at_awkward_lengths() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for n in [1, 2, 7, 8, 9, 15, 17, 63, 1000, 49_152 + 3] {
            for spread in [0.01f32, 3.0, 30.0, 80.0] {
                let x: Vec<f32> = (0..n).map(|_| (uniform() - 0.5) * 2.0 * spread).collect();
                let (got, want) = (log_sum_exp(&x), log_sum_exp_f64(&x));
                assert!(
                    (got - want).abs() < 2e-6,
                    "n {n} spread {spread}: {got} vs {want}"
                );
            }
        }
        // Many equal terms: ln(49,152 e^5).
        let flat = vec![5.0f32; 49_152];
        let want = 5.0 + (49_152f64).ln();
        assert!((log_sum_exp(&flat) - want).abs() < 1e-9);
        // A logit far below the rest contributes nothing, and -inf (a masked entry) exactly 0.
        assert!((log_sum_exp(&[0.0, -200.0, f32::NEG_INFINITY]) - 0.0).abs() < 1e-12);
    }

    #[test]
    fn log_sum_exp_of_special_rows() {
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        assert!(log_sum_exp(&[1.0, f32::NAN, 2.0]).is_nan());
        assert!(log_sum_exp(&[1.0, f32::INFINITY]).is_nan());
        assert!(log_sum_exp(&[f32::NEG_INFINITY; 3]).is_nan());
    }

    #[test]
    fn threaded_activations_equal_the_formula_on_long_inputs() {
        let n = (1 << 17) + 3;
        let xs: Vec<f32> = (0..n)
            .map(|i| ((i % 2000) as f32 - 1000.0) / 97.0)
            .collect();
        let mut y = xs.clone();
        gelu_new_inplace(&mut y);
        let mut lin = vec![1.5f32; n];
        silu_mul_inplace(&xs, &mut lin);
        for (i, &x) in xs.iter().enumerate() {
            let xd = x as f64;
            let g = 0.5
                * xd
                * (1.0
                    + ((2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044715 * xd.powi(3))).tanh());
            assert!(
                (y[i] as f64 - g).abs() < 1e-5 * g.abs().max(1.0),
                "gelu({x})"
            );
            let s = 1.5 * xd / (1.0 + (-xd).exp());
            assert!(
                (lin[i] as f64 - s).abs() < 1e-5 * s.abs().max(1.0),
                "silu({x})"
            );
        }
    }

    #[test]
    fn threaded_residual_add_equals_the_sum() {
        // Above the threading threshold, with a length that splits unevenly.
        let n = (1 << 17) + 5;
        let x: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.25 - 12.0).collect();
        let mut acc: Vec<f32> = (0..n).map(|i| (i % 31) as f32 - 15.0).collect();
        let want: Vec<f32> = acc.iter().zip(&x).map(|(a, b)| a + b).collect();
        add_inplace(&mut acc, &x);
        assert_eq!(acc, want);
    }

    #[test]
    fn gelu_new_matches_hand_values() {
        // Values from the formula evaluated in f64 by hand-checked arithmetic.
        let xs = [-3.0f32, -1.0, 0.0, 0.5, 2.0];
        let mut y = xs;
        gelu_new_inplace(&mut y);
        for (x, y) in xs.iter().zip(y) {
            let x = *x as f64;
            let want = 0.5
                * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
            assert!((y as f64 - want).abs() < 1e-6, "{x}: {y} vs {want}");
        }
    }

    #[test]
    fn silu_mul_matches_definition() {
        let gate = [-2.0f32, 0.0, 1.5];
        let mut lin = [3.0f32, 2.0, -1.0];
        silu_mul_inplace(&gate, &mut lin);
        for (i, g) in gate.iter().enumerate() {
            let g = *g as f64;
            let want = g / (1.0 + (-g).exp()) * [3.0, 2.0, -1.0][i];
            assert!((lin[i] as f64 - want).abs() < 1e-6);
        }
    }
}
