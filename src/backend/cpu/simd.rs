//! Running plain-Rust loops with the vector instructions the CPU has.
//!
//! The crate is compiled for the baseline x86-64 instruction set (SSE2, no FMA), so a loop the
//! compiler vectorises there uses 4-wide vectors. `multiversion!` defines a function whose
//! body is compiled three times: with AVX-512 enabled, with AVX2 + FMA, and for the baseline;
//! each call runs the copy the CPU supports, where the loops are vectorised 16 or 8 wide.
//! The choice follows the GEMM's kernel ([`super::gemm::Kernel::best`]), so forcing the portable
//! GEMM (`HOOKLENS_FORCE_PORTABLE=1`) also runs these loops in their baseline build.

/// Which copy of a `multiversion!` function runs on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// AVX-512F (with AVX2 and FMA).
    Avx512,
    /// AVX2 and FMA.
    Avx2,
    /// The baseline instruction set.
    Baseline,
}

/// The level `multiversion!` functions run at: that of [`super::gemm::Kernel::best`].
#[inline]
pub fn level() -> Level {
    use super::gemm::Kernel;
    match Kernel::best() {
        Kernel::Avx512 => Level::Avx512,
        Kernel::Avx2Fma => Level::Avx2,
        Kernel::Portable => Level::Baseline,
    }
}

/// Defines `fn name(args) { body }` (no generics, no return value) whose body is compiled for
/// AVX-512, for AVX2 + FMA and for the baseline, and dispatched on [`level`] at each call.
/// Helpers the body calls should be `#[inline(always)]` so they are compiled into each copy.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn with_avx512($($arg: $ty),*) {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn with_avx2($($arg: $ty),*) {
                body($($arg),*)
            }

            match $crate::backend::cpu::simd::level() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: level() is Avx512 only where the CPU reports avx512f (and so avx2, fma).
                $crate::backend::cpu::simd::Level::Avx512 => unsafe { with_avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: level() is Avx2 only where the CPU reports avx2 and fma.
                $crate::backend::cpu::simd::Level::Avx2 => unsafe { with_avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    multiversion! {
        /// A sum of squares, written to `out`.
        fn sum_squares(x: &[f32], out: &mut f32) {
            *out = x.iter().map(|v| v * v).sum();
        }
    }

    #[test]
    fn every_level_computes_the_same() {
        let x: Vec<f32> = (0..1000).map(|i| (i % 17) as f32 - 8.0).collect();
        let mut got = 0.0;
        sum_squares(&x, &mut got);
        let want: f32 = x.iter().map(|v| v * v).sum();
        assert!((got - want).abs() <= 1e-3 * want, "{got} vs {want}");
        assert!(matches!(
            level(),
            Level::Avx512 | Level::Avx2 | Level::Baseline
        ));
    }
}
