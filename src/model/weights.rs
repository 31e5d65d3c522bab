//! The model's weights in f32, in the layouts the forward pass reads. Linear maps are
//! `[in, out]` (TL's `W_Q`, `W_in`, ... with heads flattened into the output axis), so
//! `y = x @ W`, prepared once at load by the backend (the CPU packs them into the GEMM's
//! panel layout). `Weights` without a parameter are the CPU's.

use std::borrow::Cow;
use std::path::Path;

use super::config::ModelConfig;
use crate::backend::{Backend, CpuBackend};
use crate::error::{HookLensError, Result};

/// Weights of one transformer block, prepared for backend `B`.
#[derive(Clone, Debug)]
pub struct LayerWeights<B: Backend = CpuBackend> {
    /// First norm weight. `[d_model]`
    pub ln1_w: B::Buf,
    /// First norm bias (LayerNorm only). `[d_model]`
    pub ln1_b: Option<B::Buf>,
    /// Query projection. `[d_model, n_heads * d_head]`
    pub w_q: B::Matrix,
    /// Query bias. `[n_heads * d_head]`
    pub b_q: Option<B::Buf>,
    /// Key projection. `[d_model, n_kv_heads * d_head]`
    pub w_k: B::Matrix,
    /// Key bias. `[n_kv_heads * d_head]`
    pub b_k: Option<B::Buf>,
    /// Value projection. `[d_model, n_kv_heads * d_head]`
    pub w_v: B::Matrix,
    /// Value bias. `[n_kv_heads * d_head]`
    pub b_v: Option<B::Buf>,
    /// Output projection. `[n_heads * d_head, d_model]`
    pub w_o: B::Matrix,
    /// Output bias. `[d_model]`
    pub b_o: Option<B::Buf>,
    /// Second norm weight. `[d_model]`
    pub ln2_w: B::Buf,
    /// Second norm bias (LayerNorm only). `[d_model]`
    pub ln2_b: Option<B::Buf>,
    /// MLP input (GPT-2 `c_fc`, Llama `up_proj`). `[d_model, d_mlp]`
    pub w_in: B::Matrix,
    /// MLP input bias. `[d_mlp]`
    pub b_in: Option<B::Buf>,
    /// Gate projection (gated MLPs only). `[d_model, d_mlp]`
    pub w_gate: Option<B::Matrix>,
    /// MLP output. `[d_mlp, d_model]`
    pub w_out: B::Matrix,
    /// MLP output bias. `[d_model]`
    pub b_out: Option<B::Buf>,
}

/// The token embedding `W_E`: its own table, or (tied embeddings, on a backend that reads
/// them so) the unembedding's columns, so the table is not stored twice.
#[derive(Clone, Debug)]
pub enum TokenEmbedding<B: Backend = CpuBackend> {
    /// The table. `[d_vocab, d_model]`
    Table(B::Buf),
    /// Row `t` of `W_E` is column `t` of [`Weights::unembed`] (`W_U = W_Eᵀ`).
    TiedToUnembed,
}

/// All weights of a model, prepared for backend `B`.
#[derive(Clone, Debug)]
pub struct Weights<B: Backend = CpuBackend> {
    /// Token embedding. `[d_vocab, d_model]`
    pub w_e: TokenEmbedding<B>,
    /// Learned position embedding (GPT-2). `[n_ctx, d_model]`
    pub w_pos: Option<B::Buf>,
    /// The blocks.
    pub layers: Vec<LayerWeights<B>>,
    /// Final norm weight. `[d_model]`
    pub ln_final_w: B::Buf,
    /// Final norm bias (LayerNorm only). `[d_model]`
    pub ln_final_b: Option<B::Buf>,
    /// Unembedding `W_U` (the token embedding again when tied). `[d_model, d_vocab]`
    pub unembed: B::Matrix,
    /// Unembedding bias. `[d_vocab]`
    pub b_u: Option<B::Buf>,
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
pub fn transpose<T: Copy + Default>(data: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::default(); data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Checks that every tensor has the shape the configuration implies; used after any loader.
pub fn check_sizes<B: Backend>(backend: &B, w: &Weights<B>, cfg: &ModelConfig) -> Result<()> {
    let q = cfg.n_heads * cfg.d_head;
    let kv = cfg.n_kv_heads * cfg.d_head;
    let d = cfg.d_model;
    let check = |what: &str, m: &B::Matrix, k: usize, n: usize| {
        let (mk, mn) = backend.matrix_shape(m);
        if (mk, mn) == (k, n) {
            Ok(())
        } else {
            Err(HookLensError::config(format!(
                "weight {what} is [{mk}, {mn}], expected [{k}, {n}]"
            )))
        }
    };
    if let TokenEmbedding::Table(w_e) = &w.w_e {
        if backend.len(w_e) != cfg.d_vocab * d {
            return Err(HookLensError::config(format!(
                "W_E has {} values, expected {}",
                backend.len(w_e),
                cfg.d_vocab * d
            )));
        }
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

#[cfg(test)]
mod tests {
    #[test]
    fn transpose_swaps_axes_of_any_element_type() {
        assert_eq!(
            super::transpose(&[1, 2, 3, 4, 5, 6], 2, 3),
            [1, 4, 2, 5, 3, 6]
        );
        assert_eq!(super::transpose(&[1.5f64, 2.5], 1, 2), [1.5, 2.5]);
    }
}
