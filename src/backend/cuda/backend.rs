//! [`CudaBackend`]: the [`Backend`] trait on one CUDA device. Buffers live in device memory;
//! GEMMs run on cuBLAS (f32), everything else on the kernels of `kernels/*.cu`. A failed call
//! is recorded (the first error sticks, later kernels are skipped) and reported by
//! [`Backend::check`] at the end of the pass, since kernel methods return no `Result`.
//!
//! Not yet run on a GPU: see `docs/cuda.md` for what is verified.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchArgs, LaunchConfig,
};

use super::buffers::{DevBuf, DevMatrix};
use super::kernels::load_or_compile;
use crate::error::{HookLensError, Result};

/// Threads per block of the elementwise and per-row kernels.
pub(super) const THREADS: u32 = 256;

/// The dimensions the attention kernels take, laid out as `attention.cu`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Dims {
    pub n_heads: i32,
    pub n_kv: i32,
    pub d_head: i32,
    pub seq_len: i32,
}

// SAFETY: `Dims` is `#[repr(C)]`, four `i32`s, the layout of the kernels' struct.
unsafe impl DeviceRepr for Dims {}

/// One CUDA device with its stream, cuBLAS handle and compiled kernels.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    pub(super) stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
    /// The first error of the current pass.
    pub(super) error: Mutex<Option<String>>,
    /// Bytes copied between host and device so far.
    copied: AtomicU64,
    /// One value, passed for optional kernel arguments that are absent.
    pub(super) dummy: CudaSlice<f32>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBackend(device {})", self.ctx.ordinal())
    }
}

impl CudaBackend {
    /// The backend on device `ordinal`: opens it, compiles every kernel for its compute
    /// capability and loads them.
    pub fn new(ordinal: usize) -> Result<Self> {
        let ctx = super::probe::open_device(ordinal)?;
        let fail = |what: String| HookLensError::Unsupported { what };
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| fail(format!("CUDA device {ordinal}: {e:?}")))?;
        let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| fail(format!("cuBLAS: {e:?}")))?;
        let mut functions = HashMap::new();
        for &(name, src) in super::kernels::KERNEL_FILES {
            let module = ctx
                .load_module(load_or_compile(name, src, arch)?)
                .map_err(|e| fail(format!("loading {name}.cu: {e:?}")))?;
            for kernel in kernel_names(src) {
                let f = module
                    .load_function(kernel)
                    .map_err(|e| fail(format!("{name}.cu: {kernel}: {e:?}")))?;
                functions.insert(kernel, f);
            }
        }
        let dummy = stream
            .alloc_zeros::<f32>(1)
            .map_err(|e| fail(format!("{e:?}")))?;
        Ok(CudaBackend {
            ctx,
            dummy,
            stream,
            blas,
            functions,
            error: Mutex::new(None),
            copied: AtomicU64::new(0),
        })
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.ctx.ordinal()
    }

    /// Bytes copied between host and device since the backend was made.
    pub fn bytes_copied(&self) -> u64 {
        self.copied.load(Ordering::Relaxed)
    }

    /// Records the first failure of a pass.
    pub(super) fn fail(&self, what: impl std::fmt::Display) {
        let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_none() {
            *e = Some(what.to_string());
        }
    }

    /// True when an earlier call of this pass failed (later kernels are skipped).
    pub(super) fn failed(&self) -> bool {
        self.error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    pub(super) fn count(&self, values: usize) {
        crate::copies::record(4 * values);
        self.copied.fetch_add(4 * values as u64, Ordering::Relaxed);
    }

    /// A device copy of host values (empty for none).
    pub(super) fn to_device<T: DeviceRepr + Copy>(&self, host: &[T]) -> Option<CudaSlice<T>> {
        if host.is_empty() || self.failed() {
            return None;
        }
        crate::copies::record(std::mem::size_of_val(host));
        self.copied
            .fetch_add(std::mem::size_of_val(host) as u64, Ordering::Relaxed);
        self.stream
            .clone_htod(host)
            .map_err(|e| self.fail(format!("copy to the device: {e:?}")))
            .ok()
    }

    /// A launch builder for `kernel`, unless `n` is 0 or the pass already failed.
    pub(super) fn builder(&self, kernel: &str, n: usize) -> Option<LaunchArgs<'_>> {
        if n == 0 || self.failed() {
            return None;
        }
        match self.functions.get(kernel) {
            Some(f) => Some(self.stream.launch_builder(f)),
            None => {
                self.fail(format!("no CUDA kernel {kernel}"));
                None
            }
        }
    }

    /// Launches a built kernel call, recording a failure.
    pub(super) fn go(&self, kernel: &str, mut builder: LaunchArgs<'_>, cfg: LaunchConfig) {
        // SAFETY: every launch site pushes the arguments in the order and of the types the
        // kernel declares in `kernels/*.cu`, with buffers at least as long as the grid
        // touches (the pass sizes them as the trait documents; the checking backend tests
        // that on the CPU).
        if let Err(e) = unsafe { builder.launch(cfg) } {
            self.fail(format!("kernel {kernel}: {e:?}"));
        }
    }

    /// `c[m, n] = a[m, k] @ b[k, n] + beta * c` (row-major), on cuBLAS.
    pub(super) fn sgemm(&self, a: &DevBuf, m: usize, b: &DevMatrix, beta: f32, c: &mut DevBuf) {
        let (k, n) = (b.k, b.n);
        if m == 0 || n == 0 || self.failed() {
            return;
        }
        let (Some(a), Some(c), Some(w)) = (a.slice(), c.slice_mut(), b.data.as_ref()) else {
            return;
        };
        // cuBLAS is column-major: C^T[n, m] = B^T[n, k] A^T[k, m], the operands swapped.
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: 1.0f32,
            lda: n as i32,
            ldb: k as i32,
            beta,
            ldc: n as i32,
        };
        let (a, mut c) = (a.slice(0..m * k), c.slice_mut(0..m * n));
        // SAFETY: a holds m * k values, w (b's data) k * n, c m * n (sliced above), the sizes the
        // configuration describes.
        if let Err(e) = unsafe { self.blas.gemm(cfg, w, &a, &mut c) } {
            self.fail(format!("cuBLAS sgemm {m}x{k}x{n}: {e:?}"));
        }
    }
}

/// The `extern "C" __global__` kernel names of a source file.
fn kernel_names(src: &str) -> Vec<&'static str> {
    src.lines()
        .filter(|l| l.contains("__global__ void"))
        .filter_map(|l| l.split("void ").nth(1)?.split('(').next())
        .map(|name| &*Box::leak(name.trim().to_string().into_boxed_str()))
        .collect()
}
