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

#[cfg(test)]
thread_local! {
    /// Calls of each copy (`Level as usize`) on this thread, counted in unit tests only.
    static DISPATCHED: std::cell::Cell<[usize; 3]> = const { std::cell::Cell::new([0; 3]) };
}

/// Counts one call of the `level` copy of a `multiversion!` function on this thread (unit
/// tests only; elsewhere it compiles to nothing).
#[inline(always)]
pub fn note_dispatch(level: Level) {
    #[cfg(test)]
    DISPATCHED.with(|d| {
        let mut counts = d.get();
        counts[level as usize] += 1;
        d.set(counts);
    });
    #[cfg(not(test))]
    let _ = level;
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

            use $crate::backend::cpu::simd::{level, note_dispatch, Level};
            match level() {
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => {
                    note_dispatch(Level::Avx512);
                    // SAFETY: level() is Avx512 only where the CPU reports avx512f (and so
                    // avx2, fma).
                    unsafe { with_avx512($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => {
                    note_dispatch(Level::Avx2);
                    // SAFETY: level() is Avx2 only where the CPU reports avx2 and fma.
                    unsafe { with_avx2($($arg),*) }
                }
                _ => {
                    note_dispatch(Level::Baseline);
                    body($($arg),*)
                }
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

    /// The copy of a real kernel that runs is the one for this CPU: AVX2 on an AVX2-only
    /// machine, AVX-512 on one that has it, unless `HOOKLENS_KERNEL` forces a lower path
    /// (CI runs this test with `HOOKLENS_KERNEL=avx2` on AVX-512 machines). The expected
    /// level comes from the CPU's feature flags, not from `level()`.
    #[test]
    fn the_copy_for_this_cpu_is_the_one_that_runs() {
        use crate::backend::cpu::gemm::Kernel;
        #[cfg(target_arch = "x86_64")]
        let (avx512, avx2) = (
            is_x86_feature_detected!("avx512f"),
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let (avx512, avx2) = (false, false);
        let forced = Kernel::from_env().expect("a valid HOOKLENS_KERNEL");
        let want = match forced {
            Some(Kernel::Portable) => Level::Baseline,
            Some(Kernel::Avx2Fma) if avx2 => Level::Avx2,
            _ if avx512 => Level::Avx512,
            _ if avx2 => Level::Avx2,
            _ => Level::Baseline,
        };
        let before = DISPATCHED.with(|d| d.get());
        let mut rows = vec![0.5f32; 3 * 40];
        super::super::attention::softmax_rows(&mut rows, 40);
        let after = DISPATCHED.with(|d| d.get());
        let ran: Vec<usize> = (0..3).map(|i| after[i] - before[i]).collect();
        let mut expected = vec![0; 3];
        expected[want as usize] = 1;
        assert_eq!(
            ran, expected,
            "calls per copy [avx512, avx2, baseline]; want {want:?}"
        );
        assert!((rows[0] - 1.0 / 40.0).abs() < 1e-6);
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
