//! CPU kernels (plain Rust written so that the compiler vectorises the inner loops).
//! Each kernel is small and has one job; shapes are row-major and given in comments.

pub mod activation;
mod arena_vec;
pub mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_avx2;
#[cfg(target_arch = "x86_64")]
mod attention_avx512;
#[cfg(test)]
mod attention_mask_tests;
mod backend;
pub mod caches;
pub mod gemm;
pub mod heads;
pub mod huge_pages;
pub mod mapped;
pub mod matmul;
pub mod norm;
mod pool;
pub mod qgemv;
pub mod rotary;
pub mod simd;
pub mod threads;

pub use backend::CpuBackend;
