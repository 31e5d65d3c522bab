//! FMA peak loops: independent register FMA chains, the ceiling a GEMM kernel is measured
//! against (shared by `benches/gemm.rs` and `examples/gemm_peak.rs`).

use std::arch::x86_64::*;
use std::hint::black_box;

/// 12 independent ymm FMA chains (2 FMA units x 4-cycle latency needs 8).
///
/// # Safety
/// AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn avx2(iters: usize, seed: f32) -> f32 {
    let (b, c) = (
        _mm256_set1_ps(black_box(0.999)),
        _mm256_set1_ps(black_box(1e-3)),
    );
    let mut acc: [__m256; 12] = std::array::from_fn(|i| _mm256_set1_ps(seed + i as f32));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, b, c);
        }
    }
    let mut out = [0.0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
    // SAFETY: out holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out.iter().sum()
}

/// 24 independent zmm FMA chains.
///
/// # Safety
/// AVX-512F available.
#[target_feature(enable = "avx512f")]
pub unsafe fn avx512(iters: usize, seed: f32) -> f32 {
    let (b, c) = (
        _mm512_set1_ps(black_box(0.999)),
        _mm512_set1_ps(black_box(1e-3)),
    );
    let mut acc: [__m512; 24] = std::array::from_fn(|i| _mm512_set1_ps(seed + i as f32));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    _mm512_reduce_add_ps(
        acc.iter()
            .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a)),
    )
}
