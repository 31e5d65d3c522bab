//! Where a model runs. Only the CPU exists in this version; the type is here so that the
//! library, the command line (`--device`) and the bindings already take a device and do not
//! change when the CUDA backend arrives.

use std::fmt;
use std::str::FromStr;

use crate::error::{HookLensError, Result};

/// A compute device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Device {
    /// The CPU kernels (SIMD, threaded).
    #[default]
    Cpu,
    /// CUDA device N (the CUDA backend; experimental: not yet verified on a GPU, see
    /// `docs/cuda.md`).
    Cuda(usize),
}

impl Device {
    /// Parses `cpu`, `auto`, `cuda` (device 0) or `cuda:N`. `auto` is the CPU until the CUDA
    /// backend has been verified on a GPU (it is experimental: ask for it by name). Whether a
    /// CUDA device is usable is checked when a model is loaded onto it.
    pub fn parse(text: &str) -> Result<Device> {
        let t = text.trim().to_ascii_lowercase();
        let unknown = || {
            HookLensError::input(format!(
                "unknown device `{text}`: expected cpu, auto, cuda or cuda:N"
            ))
        };
        let device = match t.as_str() {
            "cpu" | "auto" => Device::Cpu,
            "cuda" => Device::Cuda(0),
            _ => match t.strip_prefix("cuda:") {
                Some(n) => Device::Cuda(n.parse().map_err(|_| unknown())?),
                None => return Err(unknown()),
            },
        };
        if matches!(device, Device::Cuda(_)) && !cfg!(feature = "cuda") {
            return Err(HookLensError::Unsupported {
                what: format!(
                    "device `{text}`: this build of hooklens has no CUDA backend (built without \
                     the `cuda` feature); use --device cpu"
                ),
            });
        }
        Ok(device)
    }

    /// The device's name as `parse` reads it.
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            Device::Cuda(n) => format!("cuda:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = HookLensError;

    fn from_str(s: &str) -> Result<Device> {
        Device::parse(s)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_unknown_ones_are_refused_with_the_choices() {
        assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
        assert_eq!(Device::parse(" AUTO ").unwrap(), Device::Cpu);
        if cfg!(feature = "cuda") {
            assert_eq!(Device::parse("cuda").unwrap(), Device::Cuda(0));
            assert_eq!(Device::parse("cuda:3").unwrap(), Device::Cuda(3));
            assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        }
        for bad in ["tpu", "cuda:x", "cuda:-1"] {
            let err = Device::parse(bad).unwrap_err().to_string();
            assert!(err.contains("expected cpu, auto, cuda"), "{bad}: {err}");
        }
        assert_eq!(Device::Cpu.to_string(), "cpu");
    }
}
