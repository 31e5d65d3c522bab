//! Compute backends. The forward pass calls kernels only through the [`Backend`] trait
//! (`traits.rs`); each backend module is the only home of its kernels.

#[cfg(test)]
pub(crate) mod checking;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod traits;

pub use cpu::CpuBackend;

/// Host-side helpers that loaders share with the CPU kernels (they are not kernels): the
/// process-wide thread budget, and host buffers on transparent huge pages.
pub mod host {
    pub use super::cpu::huge_pages::{empty_vec, zeroed_vec};
    pub use super::cpu::threads::reserve_workers;
}
pub use traits::{Backend, Epilogue, HeadDims, HostMatrix, HostOrder, KvSource, NormParams};
