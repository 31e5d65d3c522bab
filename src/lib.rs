//! hooklens: a GPT-style inference engine with every TransformerLens hook point as an explicit,
//! zero-cost callback slot, built for interpretability work at speed.
//!
//! ```no_run
//! use hooklens::{Model, Hooks, NamesFilter, RunOptions};
//! # fn main() -> hooklens::Result<()> {
//! let model = Model::load(std::path::Path::new("path/to/gpt2"))?;
//! let tokens = model.to_tokens("The Eiffel Tower is in", true)?;
//! // Cache every default hook point.
//! let (out, cache) = model.run_with_cache(&tokens, &NamesFilter::All, &RunOptions::default())?;
//! println!("{:?}", cache.get(("pattern", 0))?.shape);
//! // Zero-ablate head 1 of the last layer.
//! let mut hooks = Hooks::new();
//! hooks.add(("z", -1), |act, _ctx| {
//!     let (b, p) = (act.shape()[0], act.shape()[1]);
//!     for bi in 0..b {
//!         for pi in 0..p {
//!             act.slice_mut(&[bi, pi, 1])?.fill(0.0);
//!         }
//!     }
//!     Ok(())
//! });
//! let ablated = model.run_with_hooks(&tokens, &mut hooks, &RunOptions::default())?;
//! # let _ = (out, ablated);
//! # Ok(())
//! # }
//! ```

pub mod analysis;
pub mod backend;
pub mod bench;
pub mod copies;
pub mod device;
pub mod error;
pub mod ffi;
pub mod hooks;
pub mod layout;
pub mod model;
pub mod output;
pub mod report;
pub mod sweep;
pub mod tensor;
pub mod token_text;
pub mod tokenizer;

pub use analysis::FactoredMatrix;
pub use backend::cpu::threads::set_num_threads;
pub use device::Device;
pub use error::{HookLensError, Result};
pub use hooks::{
    ActivationCache, ActivationMut, HookContext, HookKind, HookPoint, HookSelector, Hooks,
    NamesFilter,
};
pub use model::config::ModelConfig;
pub use model::input::{
    Input, LogitPositions, Output, PaddingSide, ReturnType, RunOptions, TokenBatch,
};
pub use model::process::LoadOptions;
pub use model::Model;
pub use tensor::Tensor;
pub use tokenizer::Tokenizer;
