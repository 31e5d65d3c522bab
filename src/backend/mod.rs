//! Compute backends. The forward pass calls kernels only through the [`Backend`] trait
//! (`traits.rs`); each backend module is the only home of its kernels.

pub mod cpu;
mod traits;

pub use cpu::CpuBackend;
pub use traits::{Backend, Epilogue, HeadDims, HostMatrix, HostOrder, KvSource, NormParams};
