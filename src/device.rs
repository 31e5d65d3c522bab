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
}

impl Device {
    /// Parses `cpu`, `auto` (the best device present: the CPU in this version), `cuda` or
    /// `cuda:N` (refused with a message: this version has no CUDA backend).
    pub fn parse(text: &str) -> Result<Device> {
        let t = text.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" | "auto" => Ok(Device::Cpu),
            _ if t == "cuda" || t.starts_with("cuda:") => Err(HookLensError::Unsupported {
                what: format!(
                    "device `{text}`: this version of hooklens has no CUDA backend yet; \
                     use --device cpu (or auto)"
                ),
            }),
            _ => Err(HookLensError::input(format!(
                "unknown device `{text}`: expected cpu, auto, cuda or cuda:N"
            ))),
        }
    }

    /// The device's name as `parse` reads it.
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
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
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_auto_parse_and_cuda_is_refused_with_a_reason() {
        assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
        assert_eq!(Device::parse(" AUTO ").unwrap(), Device::Cpu);
        let cuda = Device::parse("cuda:1").unwrap_err().to_string();
        assert!(cuda.contains("no CUDA backend"), "{cuda}");
        let other = Device::parse("tpu").unwrap_err().to_string();
        assert!(other.contains("expected cpu, auto, cuda"), "{other}");
        assert_eq!(Device::Cpu.to_string(), "cpu");
    }
}
