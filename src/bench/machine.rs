//! What a benchmark ran on: the CPU, its cores, the kernel path, the device and versions.

use serde::Serialize;

use crate::backend::cpu::gemm::Kernel;
use crate::Device;

/// The machine a benchmark ran on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// The CPU model (`/proc/cpuinfo`'s model name; `unknown` elsewhere).
    pub cpu: String,
    /// Cores (hardware threads) the process may use.
    pub cores: usize,
    /// Worker threads the CPU kernels use.
    pub threads: usize,
    /// The CPU kernel path that ran (`avx512`, `avx2`, `portable`; set with HOOKLENS_KERNEL).
    pub isa: String,
    /// The device the model ran on (`cuda:0`), when not the CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// Versions of what produced the figures.
    pub versions: Versions,
}

/// Versions in a benchmark's record.
#[derive(Clone, Debug, Serialize)]
pub struct Versions {
    /// hooklens.
    pub hooklens: String,
    /// The Python package's interpreter and numpy-free version line, when a Python case ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
}

impl Machine {
    /// This machine, running on `device`.
    pub fn this(device: Device) -> Machine {
        Machine {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            threads: crate::backend::cpu::threads::num_threads(),
            isa: Kernel::best().name().to_string(),
            gpu: (device != Device::Cpu).then(|| device.name()),
            versions: Versions {
                hooklens: env!("CARGO_PKG_VERSION").to_string(),
                python: None,
            },
        }
    }
}

/// The CPU's model name, from `/proc/cpuinfo` where there is one.
fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
