//! The activation arena: every intermediate of one block, sized once per pass and reused by
//! every layer. Hooks see these buffers in place. Rows are the packed rows of the pass's
//! [`RowLayout`](super::layout::RowLayout): `batch * seq` of them in a plain pass.

use std::sync::Mutex;

use super::config::ModelConfig;

/// The buffers of the last finished pass, kept for the next one: their pages are already
/// mapped, so a pass does not pay the page faults (and the kernel's zeroing) of fresh
/// allocations, which cost several percent of a large pass on the measured machine. At most
/// one arena is kept; concurrent passes allocate their own.
static SPARE: Mutex<Option<Arena>> = Mutex::new(None);

/// Buffers for one pass.
pub(crate) struct Arena {
    /// Residual stream. // [rows, d_model]
    pub resid: Vec<f32>,
    /// Norm output (and `hook_normalized`). // [rows, d_model]
    pub normed: Vec<f32>,
    /// Norm scale. // [rows, 1]
    pub scale: Vec<f32>,
    /// Queries, rotated in place for rotary models. // [rows, n_heads, d_head]
    pub q: Vec<f32>,
    /// Keys of the computed rows, rotated in place. // [kv_rows, n_kv_heads, d_head]
    pub k: Vec<f32>,
    /// Values of the computed rows. // [kv_rows, n_kv_heads, d_head]
    pub v: Vec<f32>,
    /// Keys at every position (computed rows + base prefix), sized by the pass when it needs
    /// them (a pass computing every position uses `k` itself). // [batch, seq, n_kv_heads, d_head]
    pub k_full: Vec<f32>,
    /// Values at every position, as `k_full`. // [batch, seq, n_kv_heads, d_head]
    pub v_full: Vec<f32>,
    /// Scores, then the pattern (softmax in place); per sequence // [n_heads, rows_s, seq]
    pub scores: Vec<f32>,
    /// Per-head mixed values. // [rows, n_heads, d_head]
    pub z: Vec<f32>,
    /// Per-head outputs; empty until a layer asks for `hook_result`. // [rows, n_heads, d_model]
    pub result: Vec<f32>,
    /// Attention output (also the position embedding before block 0). // [rows, d_model]
    pub attn_out: Vec<f32>,
    /// MLP pre-activation, then post-activation for ungated MLPs. // [rows, d_mlp]
    pub mlp_pre: Vec<f32>,
    /// Gated MLPs: the linear branch, then the post-activation. // [rows, d_mlp]
    pub mlp_linear: Vec<f32>,
    /// MLP output. // [rows, d_model]
    pub mlp_out: Vec<f32>,
    seq: usize,
}

impl Arena {
    /// Zeroed buffers for `rows` packed rows of sequences of `seq` positions: those of the last
    /// finished pass if one was [`Arena::recycle`]d, else new ones.
    pub fn new(cfg: &ModelConfig, seq: usize, rows: usize) -> Self {
        let spare = SPARE.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut a = spare.unwrap_or_else(|| Arena {
            resid: Vec::new(),
            normed: Vec::new(),
            scale: Vec::new(),
            q: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            k_full: Vec::new(),
            v_full: Vec::new(),
            scores: Vec::new(),
            z: Vec::new(),
            result: Vec::new(),
            attn_out: Vec::new(),
            mlp_pre: Vec::new(),
            mlp_linear: Vec::new(),
            mlp_out: Vec::new(),
            seq,
        });
        let kv = cfg.n_kv_heads * cfg.d_head;
        a.seq = seq;
        zeroed(&mut a.resid, rows * cfg.d_model);
        zeroed(&mut a.normed, rows * cfg.d_model);
        zeroed(&mut a.k, rows * kv);
        zeroed(&mut a.v, rows * kv);
        a.resize_rows(cfg, rows);
        a
    }

    /// Keeps these buffers for the next pass (see [`SPARE`]).
    pub fn recycle(self) {
        *SPARE.lock().unwrap_or_else(|e| e.into_inner()) = Some(self);
    }

    /// Sizes the per-row buffers after the query-side rows change (`resid` and `normed` are
    /// the caller's; keys and values keep their rows).
    pub fn resize_rows(&mut self, cfg: &ModelConfig, rows: usize) {
        let q = cfg.n_heads * cfg.d_head;
        zeroed(&mut self.scale, rows);
        zeroed(&mut self.q, rows * q);
        // Scores are materialised only when a hook watches them (see `ensure_scores`).
        self.scores.clear();
        zeroed(&mut self.z, rows * q);
        zeroed(&mut self.attn_out, rows * cfg.d_model);
        zeroed(&mut self.mlp_pre, rows * cfg.d_mlp);
        zeroed(
            &mut self.mlp_linear,
            if cfg.gated_mlp() { rows * cfg.d_mlp } else { 0 },
        );
        zeroed(&mut self.mlp_out, rows * cfg.d_model);
        self.result.clear();
    }

    /// Sizes every per-row buffer for `rows` rows after sequences joined a pass (the caller has
    /// already appended their residual rows).
    pub fn grow_rows(&mut self, cfg: &ModelConfig, rows: usize) {
        let kv = cfg.n_kv_heads * cfg.d_head;
        self.normed.resize(rows * cfg.d_model, 0.0);
        self.k.resize(rows * kv, 0.0);
        self.v.resize(rows * kv, 0.0);
        self.resize_rows(cfg, rows);
    }

    /// Sizes the scores buffer for `rows` query rows on first use in a pass.
    pub fn ensure_scores(&mut self, cfg: &ModelConfig, rows: usize) {
        let len = rows * cfg.n_heads * self.seq;
        if self.scores.len() != len {
            self.scores.clear();
            self.scores.resize(len, 0.0);
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

/// Makes `v` `len` zeros, reusing its allocation.
pub(crate) fn zeroed(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}
