//! The model's weights in f32, in the layouts the forward pass reads. Linear maps are
//! `[in, out]` (TL's `W_Q`, `W_in`, ... with heads flattened into the output axis), so
//! `y = x @ W`, packed once at load into the GEMM's panel layout ([`PackedMatrix`]).

use std::borrow::Cow;
use std::path::Path;

use super::config::ModelConfig;
use crate::backend::cpu::gemm::PackedMatrix;
use crate::error::{HookLensError, Result};

/// Weights of one transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// First norm weight. `[d_model]`
    pub ln1_w: Vec<f32>,
    /// First norm bias (LayerNorm only). `[d_model]`
    pub ln1_b: Option<Vec<f32>>,
    /// Query projection. `[d_model, n_heads * d_head]`
    pub w_q: PackedMatrix,
    /// Query bias. `[n_heads * d_head]`
    pub b_q: Option<Vec<f32>>,
    /// Key projection. `[d_model, n_kv_heads * d_head]`
    pub w_k: PackedMatrix,
    /// Key bias. `[n_kv_heads * d_head]`
    pub b_k: Option<Vec<f32>>,
    /// Value projection. `[d_model, n_kv_heads * d_head]`
    pub w_v: PackedMatrix,
    /// Value bias. `[n_kv_heads * d_head]`
    pub b_v: Option<Vec<f32>>,
    /// Output projection. `[n_heads * d_head, d_model]`
    pub w_o: PackedMatrix,
    /// Output bias. `[d_model]`
    pub b_o: Option<Vec<f32>>,
    /// Second norm weight. `[d_model]`
    pub ln2_w: Vec<f32>,
    /// Second norm bias (LayerNorm only). `[d_model]`
    pub ln2_b: Option<Vec<f32>>,
    /// MLP input (GPT-2 `c_fc`, Llama `up_proj`). `[d_model, d_mlp]`
    pub w_in: PackedMatrix,
    /// MLP input bias. `[d_mlp]`
    pub b_in: Option<Vec<f32>>,
    /// Gate projection (gated MLPs only). `[d_model, d_mlp]`
    pub w_gate: Option<PackedMatrix>,
    /// MLP output. `[d_mlp, d_model]`
    pub w_out: PackedMatrix,
    /// MLP output bias. `[d_model]`
    pub b_out: Option<Vec<f32>>,
}

/// All weights of a model.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Token embedding. `[d_vocab, d_model]`
    pub w_e: Vec<f32>,
    /// Learned position embedding (GPT-2). `[n_ctx, d_model]`
    pub w_pos: Option<Vec<f32>>,
    /// The blocks.
    pub layers: Vec<LayerWeights>,
    /// Final norm weight. `[d_model]`
    pub ln_final_w: Vec<f32>,
    /// Final norm bias (LayerNorm only). `[d_model]`
    pub ln_final_b: Option<Vec<f32>>,
    /// Unembedding `W_U` (the token embedding again when tied). `[d_model, d_vocab]`
    pub unembed: PackedMatrix,
    /// Unembedding bias. `[d_vocab]`
    pub b_u: Option<Vec<f32>>,
}

/// Somewhere tensors can be read from by name (a safetensors file, a GGUF file).
pub trait TensorSource {
    /// The file, for error messages.
    fn path(&self) -> &Path;
    /// True when a tensor of that name exists.
    fn contains(&self, name: &str) -> bool;
    /// The tensor as f32 in row-major order, with its shape: borrowed from the file when it
    /// holds the values as they are (little-endian f32, aligned), else converted.
    fn read_f32(&self, name: &str) -> Result<(Cow<'_, [f32]>, Vec<usize>)>;

    /// Reads a tensor and checks its shape.
    fn read_shaped(&self, name: &str, expected: &[usize]) -> Result<Cow<'_, [f32]>> {
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
            self.read_shaped(name, expected)
                .map(|t| Some(t.into_owned()))
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

/// Checks that every tensor has the shape the configuration implies; used after any loader.
pub fn check_sizes(w: &Weights, cfg: &ModelConfig) -> Result<()> {
    let q = cfg.n_heads * cfg.d_head;
    let kv = cfg.n_kv_heads * cfg.d_head;
    let d = cfg.d_model;
    let check = |what: &str, m: &PackedMatrix, k: usize, n: usize| {
        if (m.k(), m.n()) == (k, n) {
            Ok(())
        } else {
            Err(HookLensError::config(format!(
                "weight {what} is [{}, {}], expected [{k}, {n}]",
                m.k(),
                m.n()
            )))
        }
    };
    if w.w_e.len() != cfg.d_vocab * d {
        return Err(HookLensError::config(format!(
            "W_E has {} values, expected {}",
            w.w_e.len(),
            cfg.d_vocab * d
        )));
    }
    if w.layers.len() != cfg.n_layers {
        return Err(HookLensError::config(format!(
            "{} layers of weights for a {}-layer config",
            w.layers.len(),
            cfg.n_layers
        )));
    }
    for l in &w.layers {
        check("W_Q", &l.w_q, d, q)?;
        check("W_K", &l.w_k, d, kv)?;
        check("W_V", &l.w_v, d, kv)?;
        check("W_O", &l.w_o, q, d)?;
        check("W_in", &l.w_in, d, cfg.d_mlp)?;
        check("W_out", &l.w_out, cfg.d_mlp, d)?;
        match &l.w_gate {
            Some(g) => check("W_gate", g, d, cfg.d_mlp)?,
            None if cfg.gated_mlp() => {
                return Err(HookLensError::config("a gated MLP needs W_gate"))
            }
            None => {}
        }
    }
    check("W_U", &w.unembed, d, cfg.d_vocab)
}
