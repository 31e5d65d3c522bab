//! The CUDA backend: kernels in `kernels/*.cu` compiled at run time with NVRTC, GEMMs on
//! cuBLAS, the CUDA libraries loaded at run time (cudarc's dynamic loading) so the crate builds
//! and runs on machines without CUDA. A missing library or device is a typed error from
//! [`open_device`], never a panic: cudarc panics when a library is absent, so everything that
//! reaches it is probed first.
//!
//! Not yet verified on a GPU (see `docs/cuda.md`): what this module has been checked for on a
//! machine without one is that every kernel compiles through NVRTC and that the absence of
//! CUDA is reported as an error.

mod backend;
mod buffers;
mod kernels;
mod probe;
mod trait_impl;

pub use backend::CudaBackend;
pub use buffers::{DevBuf, DevMatrix, DevRotary, DevRows};
pub use kernels::{compile, compile_all, full_source, load_or_compile, KERNEL_FILES, PTX_DIR_ENV};
pub use probe::{missing_libraries, open_device};
