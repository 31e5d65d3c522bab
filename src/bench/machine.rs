//! What a benchmark ran on: the CPU, its cores, the kernel path, the device and versions.

use serde::Serialize;

use crate::backend::cpu::gemm::Kernel;
use crate::Device;

/// The machine a benchmark ran on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// The CPU model: `/proc/cpuinfo`'s model name with its family and model numbers
    /// (`AMD EPYC (family 25, model 17)`); `unknown` elsewhere.
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

/// The CPU's model name with its family and model numbers, from `/proc/cpuinfo` where there
/// is one (`unknown` elsewhere).
fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpu_model_of(&text)
}

/// The first core's `model name` in a `/proc/cpuinfo` text, followed by its `cpu family` and
/// `model` numbers when present: model names alone do not tell CPU generations apart
/// ("AMD EPYC" is Zen 1, 3 and 4 alike). `unknown` without a model name.
fn cpu_model_of(cpuinfo: &str) -> String {
    let first_core = cpuinfo.split("\n\n").next().unwrap_or_default();
    let field = |name: &str| {
        first_core.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let Some(name) = field("model name") else {
        return "unknown".to_string();
    };
    match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::cpu_model_of;

    #[test]
    fn the_model_name_carries_family_and_model_of_the_first_core() {
        let two_cores = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
            model\t\t: 17\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 23\n\
            model\t\t: 1\nmodel name\t: Other\n";
        assert_eq!(cpu_model_of(two_cores), "AMD EPYC (family 25, model 17)");
        assert_eq!(cpu_model_of("model name : Some CPU\n"), "Some CPU");
        assert_eq!(cpu_model_of("processor : 0\n"), "unknown");
        assert_eq!(cpu_model_of(""), "unknown");
    }
}
