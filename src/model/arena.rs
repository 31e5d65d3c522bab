//! The activation arena: every intermediate of one block, sized once per (batch, seq) and
//! reused by every layer. Hooks see these buffers in place.

use super::config::ModelConfig;

/// Buffers for one pass. Rows are `batch * seq` token positions.
pub(crate) struct Arena {
    /// Residual stream. // [b, p, d_model]
    pub resid: Vec<f32>,
    /// Norm output (and `hook_normalized`). // [b, p, d_model]
    pub normed: Vec<f32>,
    /// Norm scale. // [b, p, 1]
    pub scale: Vec<f32>,
    /// Queries, rotated in place for rotary models. // [b, p, n_heads, d_head]
    pub q: Vec<f32>,
    /// Keys, rotated in place for rotary models. // [b, p, n_kv_heads, d_head]
    pub k: Vec<f32>,
    /// Values. // [b, p, n_kv_heads, d_head]
    pub v: Vec<f32>,
    /// Scores, then the pattern (softmax in place). // [b, n_heads, p, p]
    pub scores: Vec<f32>,
    /// Per-head mixed values. // [b, p, n_heads, d_head]
    pub z: Vec<f32>,
    /// Per-head outputs; empty until a layer asks for `hook_result`. // [b, p, n_heads, d_model]
    pub result: Vec<f32>,
    /// Attention output (also the position embedding before block 0). // [b, p, d_model]
    pub attn_out: Vec<f32>,
    /// MLP pre-activation, then post-activation for ungated MLPs. // [b, p, d_mlp]
    pub mlp_pre: Vec<f32>,
    /// Gated MLPs: the linear branch, then the post-activation. // [b, p, d_mlp]
    pub mlp_linear: Vec<f32>,
    /// MLP output. // [b, p, d_model]
    pub mlp_out: Vec<f32>,
}

impl Arena {
    /// Allocates the buffers for `batch` sequences of `seq` tokens.
    pub fn new(cfg: &ModelConfig, batch: usize, seq: usize) -> Self {
        let rows = batch * seq;
        let d = cfg.d_model;
        Arena {
            resid: vec![0.0; rows * d],
            normed: vec![0.0; rows * d],
            scale: vec![0.0; rows],
            q: vec![0.0; rows * cfg.n_heads * cfg.d_head],
            k: vec![0.0; rows * cfg.n_kv_heads * cfg.d_head],
            v: vec![0.0; rows * cfg.n_kv_heads * cfg.d_head],
            scores: vec![0.0; batch * cfg.n_heads * seq * seq],
            z: vec![0.0; rows * cfg.n_heads * cfg.d_head],
            result: Vec::new(),
            attn_out: vec![0.0; rows * d],
            mlp_pre: vec![0.0; rows * cfg.d_mlp],
            mlp_linear: if cfg.gated_mlp() {
                vec![0.0; rows * cfg.d_mlp]
            } else {
                Vec::new()
            },
            mlp_out: vec![0.0; rows * d],
        }
    }

    /// Sizes the per-head result buffer on first use.
    pub fn ensure_result(&mut self, cfg: &ModelConfig) {
        let len = self.resid.len() / cfg.d_model * cfg.n_heads * cfg.d_model;
        if self.result.len() != len {
            self.result = vec![0.0; len];
        }
    }
}
