//! The activation arena: every intermediate of one block, named, sized for a pass by
//! [`ArenaLens::for_pass`] and reused by every layer. Hooks see these buffers in place. Rows
//! are the packed rows of the pass's [`RowLayout`](crate::layout::RowLayout): `batch * seq`
//! of them in a plain pass.
//!
//! Arenas belong to the loaded model ([`ArenaPool`]): a pass takes one, and gives it back
//! when it ends, so the next pass finds its pages mapped (fresh allocations cost page faults
//! and the kernel's zeroing, several percent of a large pass). Passes running at the same
//! time on one model each take their own.

use std::sync::Mutex;

use super::config::ModelConfig;
use crate::backend::Backend;

/// The length of every arena buffer for one pass shape: the one sizing function of the
/// arena, also used by the sweep engine's memory accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ArenaLens {
    /// `[rows, d_model]`: resid, normed, attn_out, mlp_out each.
    pub row: usize,
    /// `[rows]`: the norm scale.
    pub scale: usize,
    /// `[rows, n_heads * d_head]`: q, z each.
    pub heads: usize,
    /// `[rows, n_kv_heads * d_head]`: k, v each.
    pub kv: usize,
    /// `[seqs, seq_len, n_kv_heads * d_head]`: k_full, v_full each (partial passes).
    pub kv_full: usize,
    /// Per sequence `[n_heads, rows_s, seq_len]`: scores (only when watched).
    pub scores: usize,
    /// `[rows, d_mlp]`: mlp_pre; mlp_linear too for gated MLPs.
    pub mlp: usize,
    /// True for gated MLPs (mlp_linear is allocated).
    pub gated: bool,
    /// `[rows, n_heads, d_model]`: the opt-in per-head result (only when watched).
    pub result: usize,
}

impl ArenaLens {
    /// Lengths for `rows` packed rows of `seqs` sequences of `seq_len` positions.
    pub fn for_pass(cfg: &ModelConfig, rows: usize, seqs: usize, seq_len: usize) -> Self {
        let kv_width = cfg.n_kv_heads * cfg.d_head;
        ArenaLens {
            row: rows * cfg.d_model,
            scale: rows,
            heads: rows * cfg.n_heads * cfg.d_head,
            kv: rows * kv_width,
            kv_full: seqs * seq_len * kv_width,
            scores: rows * cfg.n_heads * seq_len,
            mlp: rows * cfg.d_mlp,
            gated: cfg.gated_mlp(),
            result: rows * cfg.n_heads * cfg.d_model,
        }
    }

    /// Bytes of the arena at its largest without opt-in points: every buffer, the scores
    /// and the full keys/values included (the opt-in per-head result is not).
    pub fn bytes(&self) -> usize {
        let mlp = if self.gated { 2 * self.mlp } else { self.mlp };
        let values = 4 * self.row
            + self.scale
            + 2 * self.heads
            + 2 * self.kv
            + 2 * self.kv_full
            + self.scores
            + mlp;
        values * std::mem::size_of::<f32>()
    }
}

/// Buffers for one pass.
pub(crate) struct Arena<B: Backend> {
    /// Residual stream. `[rows, d_model]`
    pub resid: B::Buf,
    /// Norm output (and `hook_normalized`). `[rows, d_model]`
    pub normed: B::Buf,
    /// Norm scale. `[rows, 1]`
    pub scale: B::Buf,
    /// Queries, rotated in place for rotary models. `[rows, n_heads, d_head]`
    pub q: B::Buf,
    /// Keys of the computed rows, rotated in place. `[kv_rows, n_kv_heads, d_head]`
    pub k: B::Buf,
    /// Values of the computed rows. `[kv_rows, n_kv_heads, d_head]`
    pub v: B::Buf,
    /// Keys at every position (computed rows + base prefix), sized by the pass when it needs
    /// them (a pass computing every position uses `k` itself). `[batch, seq, n_kv_heads, d_head]`
    pub k_full: B::Buf,
    /// Values at every position, as `k_full`. `[batch, seq, n_kv_heads, d_head]`
    pub v_full: B::Buf,
    /// Scores, then the pattern (softmax in place); per sequence `[n_heads, rows_s, seq]`
    pub scores: B::Buf,
    /// Per-head mixed values. `[rows, n_heads, d_head]`
    pub z: B::Buf,
    /// Per-head outputs; empty until a layer asks for `hook_result`. `[rows, n_heads, d_model]`
    pub result: B::Buf,
    /// Attention output (also the position embedding before block 0). `[rows, d_model]`
    pub attn_out: B::Buf,
    /// MLP pre-activation, then post-activation for ungated MLPs. `[rows, d_mlp]`
    pub mlp_pre: B::Buf,
    /// Gated MLPs: the linear branch, then the post-activation. `[rows, d_mlp]`
    pub mlp_linear: B::Buf,
    /// MLP output. `[rows, d_model]`
    pub mlp_out: B::Buf,
    /// Lengths of the current shape.
    lens: ArenaLens,
}

impl<B: Backend> Arena<B> {
    /// Empty buffers (sized by [`Arena::prepare`]).
    fn empty(b: &B) -> Self {
        Arena {
            resid: b.zeros(0),
            normed: b.zeros(0),
            scale: b.zeros(0),
            q: b.zeros(0),
            k: b.zeros(0),
            v: b.zeros(0),
            k_full: b.zeros(0),
            v_full: b.zeros(0),
            scores: b.zeros(0),
            z: b.zeros(0),
            result: b.zeros(0),
            attn_out: b.zeros(0),
            mlp_pre: b.zeros(0),
            mlp_linear: b.zeros(0),
            mlp_out: b.zeros(0),
            lens: ArenaLens::default(),
        }
    }

    /// Zeroed buffers for a pass of this shape (scores and per-head results stay empty until
    /// the pass asks for them; the full keys/values keep their size, since assembling them
    /// writes every value).
    pub fn prepare(&mut self, b: &B, lens: ArenaLens) {
        b.resize_zeroed(&mut self.resid, lens.row);
        b.resize_zeroed(&mut self.normed, lens.row);
        b.resize_zeroed(&mut self.k, lens.kv);
        b.resize_zeroed(&mut self.v, lens.kv);
        self.resize_rows(b, lens);
    }

    /// Sizes the per-row buffers after the query-side rows change (`resid` and `normed` are
    /// the caller's; keys and values keep their rows).
    pub fn resize_rows(&mut self, b: &B, lens: ArenaLens) {
        self.size_per_row(b, lens, B::resize_zeroed);
    }

    /// Sizes the per-row buffers with `size` (zeroing, or growing).
    fn size_per_row(&mut self, b: &B, lens: ArenaLens, size: fn(&B, &mut B::Buf, usize)) {
        self.lens = lens;
        size(b, &mut self.scale, lens.scale);
        size(b, &mut self.q, lens.heads);
        // Scores are materialised only when a hook watches them (see `ensure_scores`).
        b.resize_zeroed(&mut self.scores, 0);
        size(b, &mut self.z, lens.heads);
        size(b, &mut self.attn_out, lens.row);
        size(b, &mut self.mlp_pre, lens.mlp);
        let linear = if lens.gated { lens.mlp } else { 0 };
        size(b, &mut self.mlp_linear, linear);
        size(b, &mut self.mlp_out, lens.row);
        b.resize_zeroed(&mut self.result, 0);
    }

    /// Sizes every per-row buffer for a new row count after sequences joined a pass (the
    /// caller has already appended their residual rows).
    pub fn grow_rows(&mut self, b: &B, lens: ArenaLens) {
        // Zero-padded growth keeps the rows already computed.
        let grow = |buf: &mut B::Buf, len: usize| {
            let extra = len.saturating_sub(b.len(buf));
            b.append(buf, &vec![0.0; extra]);
        };
        grow(&mut self.normed, lens.row);
        grow(&mut self.k, lens.kv);
        grow(&mut self.v, lens.kv);
        // The joined rows come after the others, so each old row keeps its index: the
        // per-row buffers only grow (every block overwrites the rows it reads; rows no
        // kernel writes stay zero). Re-zeroing them all at every join was 2.8 % of the
        // README sweep's samples.
        self.size_per_row(b, lens, B::grow_zeroed);
    }

    /// Sizes the scores buffer on first use in a pass.
    pub fn ensure_scores(&mut self, b: &B) {
        if b.len(&self.scores) != self.lens.scores {
            b.resize_zeroed(&mut self.scores, self.lens.scores);
        }
    }

    /// Sizes the per-head result buffer on first use.
    pub fn ensure_result(&mut self, b: &B) {
        if b.len(&self.result) != self.lens.result {
            b.resize_zeroed(&mut self.result, self.lens.result);
        }
    }

    /// Sizes the full keys/values for `len` values each when they are not that size.
    pub fn ensure_kv_full(&mut self, b: &B, len: usize) {
        if b.len(&self.k_full) != len {
            b.resize_zeroed(&mut self.k_full, len);
            b.resize_zeroed(&mut self.v_full, len);
        }
    }
}

/// The arenas of one loaded model, kept between passes.
pub(crate) struct ArenaPool<B: Backend> {
    spare: Mutex<Vec<Arena<B>>>,
}

impl<B: Backend> Default for ArenaPool<B> {
    fn default() -> Self {
        ArenaPool {
            spare: Mutex::new(Vec::new()),
        }
    }
}

/// Arenas kept at most (one per pass running at the same time, up to this many).
const MAX_SPARE: usize = 4;

impl<B: Backend> ArenaPool<B> {
    /// An arena sized for `lens`: a kept one if there is one, else a new one.
    pub fn take(&self, b: &B, lens: ArenaLens) -> Arena<B> {
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut arena = spare.unwrap_or_else(|| Arena::empty(b));
        arena.prepare(b, lens);
        arena
    }

    /// Frees every kept arena (a later pass allocates afresh).
    pub fn clear(&self) {
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Keeps `arena` for a later pass.
    pub fn give_back(&self, arena: Arena<B>) {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < MAX_SPARE {
            spare.push(arena);
        }
    }
}
