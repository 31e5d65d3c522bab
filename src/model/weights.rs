//! The model's weights in f32, in the layouts the forward pass reads. Linear maps are stored
//! `[in, out]` (TL's `W_Q`, `W_in`, ... with heads flattened into the output axis), so
//! `y = x @ W`.

use std::path::Path;

use super::config::ModelConfig;
use crate::error::{HookLensError, Result};

/// Weights of one transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// First norm weight. // [d_model]
    pub ln1_w: Vec<f32>,
    /// First norm bias (LayerNorm only). // [d_model]
    pub ln1_b: Option<Vec<f32>>,
    /// Query projection. // [d_model, n_heads * d_head]
    pub w_q: Vec<f32>,
    /// Query bias. // [n_heads * d_head]
    pub b_q: Option<Vec<f32>>,
    /// Key projection. // [d_model, n_kv_heads * d_head]
    pub w_k: Vec<f32>,
    /// Key bias. // [n_kv_heads * d_head]
    pub b_k: Option<Vec<f32>>,
    /// Value projection. // [d_model, n_kv_heads * d_head]
    pub w_v: Vec<f32>,
    /// Value bias. // [n_kv_heads * d_head]
    pub b_v: Option<Vec<f32>>,
    /// Output projection; rows `h*d_head..(h+1)*d_head` are TL's `W_O[h]`. // [n_heads * d_head, d_model]
    pub w_o: Vec<f32>,
    /// Output bias. // [d_model]
    pub b_o: Option<Vec<f32>>,
    /// Second norm weight. // [d_model]
    pub ln2_w: Vec<f32>,
    /// Second norm bias (LayerNorm only). // [d_model]
    pub ln2_b: Option<Vec<f32>>,
    /// MLP input (GPT-2 `c_fc`, Llama `up_proj`). // [d_model, d_mlp]
    pub w_in: Vec<f32>,
    /// MLP input bias. // [d_mlp]
    pub b_in: Option<Vec<f32>>,
    /// Gate projection (gated MLPs only). // [d_model, d_mlp]
    pub w_gate: Option<Vec<f32>>,
    /// MLP output. // [d_mlp, d_model]
    pub w_out: Vec<f32>,
    /// MLP output bias. // [d_model]
    pub b_out: Option<Vec<f32>>,
}

/// All weights of a model.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Token embedding. // [d_vocab, d_model]
    pub w_e: Vec<f32>,
    /// Learned position embedding (GPT-2). // [n_ctx, d_model]
    pub w_pos: Option<Vec<f32>>,
    /// The blocks.
    pub layers: Vec<LayerWeights>,
    /// Final norm weight. // [d_model]
    pub ln_final_w: Vec<f32>,
    /// Final norm bias (LayerNorm only). // [d_model]
    pub ln_final_b: Option<Vec<f32>>,
    /// Unembedding stored row per token (`W_U` transposed), `None` when tied to `w_e`.
    /// // [d_vocab, d_model]
    pub unembed: Option<Vec<f32>>,
    /// Unembedding bias. // [d_vocab]
    pub b_u: Option<Vec<f32>>,
}

impl Weights {
    /// The unembedding rows: `unembed` when untied, else the token embedding. // [d_vocab, d_model]
    pub fn unembed_rows(&self) -> &[f32] {
        self.unembed.as_deref().unwrap_or(&self.w_e)
    }
}

/// Somewhere tensors can be read from by name (a safetensors file, a GGUF file).
pub trait TensorSource {
    /// The file, for error messages.
    fn path(&self) -> &Path;
    /// True when a tensor of that name exists.
    fn contains(&self, name: &str) -> bool;
    /// The tensor as f32 in row-major order, with its shape.
    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)>;

    /// Reads a tensor and checks its shape.
    fn read_shaped(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        if !self.contains(name) {
            return Err(HookLensError::MissingTensor {
                path: self.path().to_path_buf(),
                name: name.to_string(),
            });
        }
        let (data, shape) = self.read_f32(name)?;
        if shape != expected {
            return Err(HookLensError::TensorShape {
                path: self.path().to_path_buf(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: shape,
            });
        }
        Ok(data)
    }

    /// Reads a tensor if present, checking its shape.
    fn read_optional(&self, name: &str, expected: &[usize]) -> Result<Option<Vec<f32>>> {
        if self.contains(name) {
            self.read_shaped(name, expected).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Transposes a row-major `[rows, cols]` matrix into `[cols, rows]`.
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Checks that every tensor has the length the configuration implies; used after any loader.
pub fn check_sizes(w: &Weights, cfg: &ModelConfig) -> Result<()> {
    let q = cfg.n_heads * cfg.d_head;
    let kv = cfg.n_kv_heads * cfg.d_head;
    let bad = |what: &str, got: usize, want: usize| {
        HookLensError::config(format!("weight {what} has {got} values, expected {want}"))
    };
    let check = |what: &str, v: &[f32], want: usize| {
        if v.len() == want {
            Ok(())
        } else {
            Err(bad(what, v.len(), want))
        }
    };
    check("W_E", &w.w_e, cfg.d_vocab * cfg.d_model)?;
    if w.layers.len() != cfg.n_layers {
        return Err(bad("layers", w.layers.len(), cfg.n_layers));
    }
    for l in &w.layers {
        check("W_Q", &l.w_q, cfg.d_model * q)?;
        check("W_K", &l.w_k, cfg.d_model * kv)?;
        check("W_V", &l.w_v, cfg.d_model * kv)?;
        check("W_O", &l.w_o, q * cfg.d_model)?;
        check("W_in", &l.w_in, cfg.d_model * cfg.d_mlp)?;
        check("W_out", &l.w_out, cfg.d_mlp * cfg.d_model)?;
        if cfg.gated_mlp() != l.w_gate.is_some() {
            return Err(HookLensError::config(
                "W_gate must be present exactly for gated MLPs",
            ));
        }
    }
    if let Some(u) = &w.unembed {
        check("W_U", u, cfg.d_vocab * cfg.d_model)?;
    }
    Ok(())
}
