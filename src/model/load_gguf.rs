//! A whole model from a GGUF file: configuration from the metadata, weights dequantised to
//! f32, tokenizer from `tokenizer.ggml.*`.

use std::path::Path;

use super::Model;
use crate::error::{HookLensError, Result};

/// Loads a Llama-architecture GGUF file.
pub fn load_gguf_model(path: &Path) -> Result<Model> {
    Err(HookLensError::unsupported(format!(
        "{}: GGUF loading is not wired in yet",
        path.display()
    )))
}
