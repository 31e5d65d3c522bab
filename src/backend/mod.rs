//! Compute backends. The forward pass calls kernels through these modules only.

pub mod cpu;
