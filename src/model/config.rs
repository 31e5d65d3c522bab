//! The architecture description: one configuration type for every supported family. GPT-2
//! and Llama differ only by the values here, never by a copy of the forward pass.

use crate::error::{HookLensError, Result};

/// Which normalisation the blocks use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormKind {
    /// LayerNorm with weight and bias (GPT-2).
    LayerNorm,
    /// RMSNorm with weight only (Llama).
    RmsNorm,
}

/// How positions enter the model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PositionKind {
    /// A learned position embedding added to the token embedding (GPT-2).
    Learned,
    /// Rotary embeddings applied to q and k (HF half-rotation layout).
    Rotary {
        /// The rotary base (`rope_theta`).
        theta: f32,
    },
}

/// The MLP's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MlpKind {
    /// `gelu_new(x W_in + b_in) W_out + b_out` (GPT-2).
    GeluNew,
    /// `(silu(x W_gate) * (x W_in)) W_out` (Llama).
    GatedSilu,
}

/// The model family, for display and for picking a weight-name map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Architecture {
    /// GPT-2 (`GPT2LMHeadModel`).
    Gpt2,
    /// Llama family (`LlamaForCausalLM`, SmolLM, TinyLlama, Qwen2-style).
    Llama,
}

/// Everything the forward pass needs to know about a model's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// The family.
    pub architecture: Architecture,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (`< n_heads` under grouped-query attention).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub d_head: usize,
    /// MLP hidden width.
    pub d_mlp: usize,
    /// Vocabulary size.
    pub d_vocab: usize,
    /// Context length.
    pub n_ctx: usize,
    /// Normalisation kind.
    pub norm: NormKind,
    /// Normalisation epsilon.
    pub norm_eps: f32,
    /// Position scheme.
    pub positions: PositionKind,
    /// MLP kind.
    pub mlp: MlpKind,
    /// Beginning-of-sequence token id, prepended when `prepend_bos` is on.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id.
    pub eos_token_id: Option<u32>,
}

impl ModelConfig {
    /// True for SiLU-gated MLPs (with `mlp.hook_pre_linear`).
    pub fn gated_mlp(&self) -> bool {
        self.mlp == MlpKind::GatedSilu
    }

    /// Query heads that share one key/value head.
    pub fn heads_per_kv(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Checks that the numbers are consistent, so the forward pass can index without checks.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("n_layers", self.n_layers),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("d_head", self.d_head),
            ("d_mlp", self.d_mlp),
            ("d_vocab", self.d_vocab),
            ("n_ctx", self.n_ctx),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(HookLensError::config(format!("{name} must be positive")));
            }
            // Keep every buffer size comfortably inside usize arithmetic.
            if value > 1 << 24 {
                return Err(HookLensError::config(format!(
                    "{name} = {value} is implausibly large"
                )));
            }
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(HookLensError::config(format!(
                "n_heads ({}) must be a multiple of n_kv_heads ({})",
                self.n_heads, self.n_kv_heads
            )));
        }
        if let PositionKind::Rotary { theta } = self.positions {
            if !self.d_head.is_multiple_of(2) {
                return Err(HookLensError::config(format!(
                    "rotary embeddings need an even d_head, got {}",
                    self.d_head
                )));
            }
            if !(theta.is_finite() && theta > 0.0) {
                return Err(HookLensError::config(format!(
                    "rope_theta must be positive, got {theta}"
                )));
            }
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(HookLensError::config(format!(
                "norm epsilon must be a non-negative number, got {}",
                self.norm_eps
            )));
        }
        for (name, id) in [("bos", self.bos_token_id), ("eos", self.eos_token_id)] {
            if let Some(id) = id {
                if id as usize >= self.d_vocab {
                    return Err(HookLensError::config(format!(
                        "{name}_token_id {id} is outside the vocabulary of {}",
                        self.d_vocab
                    )));
                }
            }
        }
        Ok(())
    }
}
