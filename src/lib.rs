//! hooklens: a GPT-style inference engine with every TransformerLens hook point as an explicit,
//! zero-cost callback slot, built for interpretability work at speed.

pub mod error;
pub mod model;

pub use error::{HookLensError, Result};
