//! The kernel sources, embedded in the library, and their compilation with NVRTC.

use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

use super::probe::require_libraries;
use crate::error::{HookLensError, Result};

/// The helpers every kernel file includes.
const COMMON: &str = include_str!("../../../kernels/common.cuh");

/// Every kernel file: (family, source).
pub const KERNEL_FILES: &[(&str, &str)] = &[
    ("embed", include_str!("../../../kernels/embed.cu")),
    ("norm", include_str!("../../../kernels/norm.cu")),
    ("activation", include_str!("../../../kernels/activation.cu")),
    ("rotary", include_str!("../../../kernels/rotary.cu")),
    ("attention", include_str!("../../../kernels/attention.cu")),
    ("rows", include_str!("../../../kernels/rows.cu")),
    ("intervene", include_str!("../../../kernels/intervene.cu")),
];

/// A kernel file with the shared header pasted in place of its `#include` (NVRTC compiles
/// one source string).
pub fn full_source(body: &str) -> String {
    body.replace("#include \"common.cuh\"", COMMON)
}

/// Compiles one kernel source to PTX for `arch` (`sm_90`, ...); a compile error carries
/// NVRTC's log.
pub fn compile(name: &str, source: &str, arch: &'static str) -> Result<Ptx> {
    require_libraries(&["nvrtc"])?;
    let opts = CompileOptions {
        arch: Some(arch),
        name: Some(format!("{name}.cu")),
        ..CompileOptions::default()
    };
    compile_ptx_with_opts(full_source(source), opts).map_err(|e| HookLensError::Unsupported {
        what: format!("CUDA kernels `{name}.cu` did not compile for {arch}: {e:?}"),
    })
}

/// Where precompiled PTX may be read from instead of compiling (`<dir>/<family>.ptx`, as
/// `tests/cuda_nvrtc.rs` writes them with `HOOKLENS_WRITE_PTX=<dir>`): for a GPU machine whose
/// NVRTC is newer than its driver accepts, or that has none.
pub const PTX_DIR_ENV: &str = "HOOKLENS_PTX_DIR";

/// The PTX of one kernel file for `arch`: read from [`PTX_DIR_ENV`] when it is set, else
/// compiled with NVRTC.
pub fn load_or_compile(name: &str, source: &str, arch: &'static str) -> Result<Ptx> {
    let Some(dir) = std::env::var_os(PTX_DIR_ENV) else {
        return compile(name, source, arch);
    };
    let path = std::path::Path::new(&dir).join(format!("{name}.ptx"));
    let text = std::fs::read_to_string(&path).map_err(|e| HookLensError::io(&path, e))?;
    Ok(Ptx::from_src(text))
}

/// Every kernel file compiled for `arch`, in [`KERNEL_FILES`] order.
pub fn compile_all(arch: &'static str) -> Result<Vec<(&'static str, Ptx)>> {
    KERNEL_FILES
        .iter()
        .map(|&(name, src)| compile(name, src, arch).map(|ptx| (name, ptx)))
        .collect()
}
