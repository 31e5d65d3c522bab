//! `model.cfg`: TransformerLens' `HookedTransformerConfig` fields that the engine knows.

use hooklens::model::config::{Architecture, MlpKind, NormKind, PositionKind};
use hooklens::ModelConfig;
use pyo3::prelude::*;

/// The model's shape, with TransformerLens' field names.
#[pyclass(name = "Config", module = "hooklens", frozen, get_all)]
pub struct ConfigPy {
    /// Number of blocks.
    n_layers: usize,
    /// Attention heads per block.
    n_heads: usize,
    /// Key/value heads (fewer than `n_heads` under grouped-query attention).
    n_key_value_heads: usize,
    /// Residual stream width.
    d_model: usize,
    /// Width of one head.
    d_head: usize,
    /// MLP hidden width.
    d_mlp: usize,
    /// Vocabulary size.
    d_vocab: usize,
    /// Context length.
    n_ctx: usize,
    /// `"LN"` (LayerNorm) or `"RMS"`.
    normalization_type: &'static str,
    /// Norm epsilon.
    eps: f32,
    /// `"standard"` (learned) or `"rotary"`.
    positional_embedding_type: &'static str,
    /// Rotary base, when rotary.
    rotary_base: Option<f32>,
    /// `"gelu_new"` or `"silu"`.
    act_fn: &'static str,
    /// Whether the MLP is gated.
    gated_mlp: bool,
    /// `"GPT2LMHeadModel"` or `"LlamaForCausalLM"`.
    original_architecture: &'static str,
    /// The device the model runs on (`"cpu"`).
    device: String,
}

impl ConfigPy {
    /// The TL view of a library configuration.
    pub fn new(cfg: &ModelConfig, device: String) -> Self {
        let rotary_base = match cfg.positions {
            PositionKind::Rotary { theta } => Some(theta),
            PositionKind::Learned => None,
        };
        ConfigPy {
            n_layers: cfg.n_layers,
            n_heads: cfg.n_heads,
            n_key_value_heads: cfg.n_kv_heads,
            d_model: cfg.d_model,
            d_head: cfg.d_head,
            d_mlp: cfg.d_mlp,
            d_vocab: cfg.d_vocab,
            n_ctx: cfg.n_ctx,
            normalization_type: match cfg.norm {
                NormKind::LayerNorm => "LN",
                NormKind::RmsNorm => "RMS",
            },
            eps: cfg.norm_eps,
            positional_embedding_type: if rotary_base.is_some() {
                "rotary"
            } else {
                "standard"
            },
            rotary_base,
            act_fn: match cfg.mlp {
                MlpKind::GeluNew => "gelu_new",
                MlpKind::GatedSilu => "silu",
            },
            gated_mlp: cfg.gated_mlp(),
            original_architecture: match cfg.architecture {
                Architecture::Gpt2 => "GPT2LMHeadModel",
                Architecture::Llama => "LlamaForCausalLM",
            },
            device,
        }
    }
}

#[pymethods]
impl ConfigPy {
    fn __repr__(&self) -> String {
        format!(
            "Config(n_layers={}, n_heads={}, d_model={}, d_head={}, d_mlp={}, d_vocab={}, n_ctx={}, arch={})",
            self.n_layers, self.n_heads, self.d_model, self.d_head, self.d_mlp, self.d_vocab,
            self.n_ctx, self.original_architecture
        )
    }
}
