//! Finding the CUDA libraries and a device without letting cudarc panic: it dlopens each
//! library on first use and panics when one is absent, so their presence is checked first.

use std::sync::Arc;

use cudarc::driver::CudaContext;

use crate::error::{HookLensError, Result};

/// The libraries the backend needs, as cudarc names them, with how to get each.
const LIBRARIES: &[(&str, &str)] = &[
    ("driver", "libcuda.so (the NVIDIA driver)"),
    ("nvrtc", "libnvrtc.so.13 (the CUDA 13 toolkit, or pip install \"nvidia-cuda-nvrtc==13.0.*\" and its lib directory on LD_LIBRARY_PATH)"),
    ("cublas", "libcublas.so.13 (the CUDA 13 toolkit, or pip install \"nvidia-cublas\" and its lib directory on LD_LIBRARY_PATH)"),
];

/// True when the library cudarc calls `name` can be loaded.
fn present(name: &str) -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen the library's candidate names and
    // drops the handle; it calls no function of the library.
    let found = std::panic::catch_unwind(|| unsafe {
        match name {
            "driver" => cudarc::driver::sys::is_culib_present(),
            "nvrtc" => cudarc::nvrtc::sys::is_culib_present(),
            "cublas" => cudarc::cublas::sys::is_culib_present(),
            _ => false,
        }
    });
    found.unwrap_or(false)
}

/// The libraries of `names` (`driver`, `nvrtc`, `cublas`) that cannot be loaded, each with
/// how to get it.
pub fn missing_libraries(names: &[&str]) -> Vec<&'static str> {
    LIBRARIES
        .iter()
        .filter(|(name, _)| names.contains(name) && !present(name))
        .map(|&(_, how)| how)
        .collect()
}

/// An error naming the missing libraries, if any are.
pub(super) fn require_libraries(names: &[&str]) -> Result<()> {
    let missing = missing_libraries(names);
    if missing.is_empty() {
        return Ok(());
    }
    Err(HookLensError::Unsupported {
        what: format!("CUDA is not usable here: missing {}", missing.join("; ")),
    })
}

/// Opens CUDA device `ordinal`, after checking that the driver and cuBLAS load (NVRTC is
/// checked when kernels are compiled: precompiled PTX needs none, see `kernels.rs`).
pub fn open_device(ordinal: usize) -> Result<Arc<CudaContext>> {
    require_libraries(&["driver", "cublas"])?;
    let unusable = |why: String| HookLensError::Unsupported {
        what: format!("CUDA device {ordinal} is not usable: {why}"),
    };
    let count = std::panic::catch_unwind(CudaContext::device_count)
        .map_err(|_| unusable("the CUDA driver could not be initialised".into()))?
        .map_err(|e| unusable(format!("{e:?}")))?;
    if ordinal >= count.max(0) as usize {
        return Err(unusable(format!("this machine has {count} CUDA device(s)")));
    }
    std::panic::catch_unwind(|| CudaContext::new(ordinal))
        .map_err(|_| unusable("the CUDA driver panicked while opening it".into()))?
        .map_err(|e| unusable(format!("{e:?}")))
}
