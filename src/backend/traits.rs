//! The kernels the forward pass needs, as one trait. The pass (`model::forward`) is written
//! once, generic over [`Backend`], and monomorphised per backend: no dynamic dispatch and no
//! copy on the CPU path, where a buffer is a `Vec<f32>` and a matrix the packed GEMM panels.
//!
//! A backend owns three kinds of data: activation buffers ([`Backend::Buf`], f32, row-major,
//! shapes in the comments of each method), prepared weight matrices ([`Backend::Matrix`],
//! `[k, n]` for `y = x @ W`) and row layouts as its kernels read them ([`Backend::Rows`]).
//! Everything the host decides (which slot is watched, which rows a pass computes) stays on
//! the host; a backend only computes.

use std::fmt::Debug;

use crate::error::Result;
use crate::hooks::intervention::ResolvedIntervention;
use crate::layout::{RealSpan, RowLayout};

/// Head dimensions: query heads, key/value heads (query head h reads kv head
/// h / (n_heads / n_kv_heads)), head width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadDims {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Head width.
    pub d_head: usize,
}

/// A weight matrix as a loader read it, before the backend prepares it.
#[derive(Clone, Copy, Debug)]
pub struct HostMatrix<'a> {
    /// The values, row-major in `order`.
    pub data: &'a [f32],
    /// Rows of the product's right-hand side (the input width).
    pub k: usize,
    /// Columns (the output width).
    pub n: usize,
    /// How `data` is stored.
    pub order: HostOrder,
}

/// The storage order of a [`HostMatrix`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOrder {
    /// `[k, n]` (HF GPT-2 `Conv1D`, TL's `W_Q` with heads flattened).
    KByN,
    /// `[n, k]` (torch `nn.Linear`, the tied unembedding whose rows are tokens).
    NByK,
}

/// What a product does with each output value `y = (x @ W)[i, j] + bias[j]`.
pub enum Epilogue<'a, B: Backend> {
    /// `out = y`.
    Store,
    /// `out += y` (a residual add fused into the product's stores).
    AddInto,
    /// `out = gelu_new(y)` (GPT-2's tanh GELU).
    GeluNew,
    /// `out = silu(gate) * y`, `gate` laid out like `out`.
    SiluGateMul(&'a B::Buf),
}

/// A norm's parameters.
pub struct NormParams<'a, B: Backend> {
    /// The weight. `[d]`
    pub w: &'a B::Buf,
    /// The LayerNorm bias. `[d]`
    pub b: Option<&'a B::Buf>,
    /// Row width.
    pub d: usize,
    /// Added to the variance.
    pub eps: f32,
    /// LayerNorm (centre, then scale) or RMSNorm (scale only).
    pub layer_norm: bool,
}

/// Base-run keys or values that a partial pass reuses for the positions it does not compute.
pub struct KvSource<'a, B: Backend> {
    /// One layer of a [`KvCache`](crate::model::kv_cache::KvCache).
    /// `[cache seqs, seq_len, n_kv_heads, d_head]`
    pub cache: &'a B::Buf,
    /// For each sequence of the pass, its sequence in the cache.
    pub seq_of: &'a [usize],
}

/// The compute backend of a pass. Buffers are f32 and row-major; a method's comment gives the
/// shapes it reads and writes, and a backend may rely on them (the pass sizes every buffer).
pub trait Backend: Send + Sync + Sized + 'static {
    /// Whether tied embeddings are read from the prepared unembedding
    /// ([`Backend::embed_from_unembed`]) instead of a second copy of the table.
    const EMBEDS_FROM_UNEMBED: bool;
    /// Whether buffers live in host memory, so [`Backend::host_slice_mut`] returns them.
    const HOST_BUFFERS: bool = false;
    /// An activation buffer (`Vec<f32>` on the CPU; a device allocation on a GPU).
    type Buf: Clone + Debug + Send + Sync;
    /// A weight matrix prepared for [`Backend::linear`].
    type Matrix: Clone + Debug + Send + Sync;
    /// A row layout as the attention kernels read it.
    type Rows: Send + Sync;
    /// Rotary cos/sin tables for one sequence length.
    type Rotary: Send + Sync;
    /// The real keys of each sequence of a padded pass, as the attention kernels read them.
    type KeyMask: Send + Sync;

    /// A short name for messages (`cpu`).
    fn name(&self) -> &'static str;

    /// The first failure since the last check (a GPU backend records launch and copy errors
    /// instead of returning them from every kernel call); the pass calls it when it ends.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    // ---- memory ----

    /// `len` zeros.
    fn zeros(&self, len: usize) -> Self::Buf;
    /// Values held.
    fn len(&self, buf: &Self::Buf) -> usize;
    /// Makes `buf` `len` zeros, reusing its allocation where it can.
    fn resize_zeroed(&self, buf: &mut Self::Buf, len: usize);
    /// Makes `buf` `len >= its length` values for more rows of the same layout: the new
    /// values are zero; the old ones are kept or zeroed, as the backend finds cheaper (its
    /// callers overwrite every row before they read it, and rows no kernel writes are zero
    /// either way). The CPU keeps them (no pass over the old rows); the default zeroes all.
    fn grow_zeroed(&self, buf: &mut Self::Buf, len: usize) {
        self.resize_zeroed(buf, len);
    }
    /// Makes `buf` hold `len` values, keeping its first `min(len, old length)` and zeroing
    /// the rest, in its own allocation: `len` is at most the length `buf` was made with (a
    /// buffer of `zeros(n)` shrunk to 0 grows back to `n` with no copy). Generation's key and
    /// value cache grows this way by one position per token.
    fn set_len_keeping(&self, buf: &mut Self::Buf, len: usize);
    /// A buffer holding `host`.
    fn upload(&self, host: &[f32]) -> Self::Buf;
    /// The values of `buf` on the host.
    fn download(&self, buf: &Self::Buf) -> Vec<f32>;
    /// The values of `buf` on the host, borrowed where they already are there (the CPU).
    fn download_cow<'b>(&self, buf: &'b Self::Buf) -> std::borrow::Cow<'b, [f32]> {
        std::borrow::Cow::Owned(self.download(buf))
    }
    /// The values of `buf` on the host, consuming it (no copy on the CPU).
    fn take_host(&self, buf: Self::Buf) -> Vec<f32>;
    /// Overwrites `dst` (of `host.len()` values) with `host`.
    fn upload_into(&self, host: &[f32], dst: &mut Self::Buf);
    /// Runs `f` on a host view of `buf` (the buffer itself on the CPU; a staging copy written
    /// back afterwards on a GPU). The only way host code touches an activation.
    fn with_host_mut<R>(&self, buf: &mut Self::Buf, f: impl FnOnce(&mut [f32]) -> R) -> R;
    /// The buffer itself as a host slice, where buffers live in host memory (`None` on a
    /// GPU). Hooks then read and write the engine's buffer directly, and a slot can defer
    /// computing a value until a hook asks for it.
    fn host_slice_mut<'b>(&self, _buf: &'b mut Self::Buf) -> Option<&'b mut [f32]> {
        None
    }
    /// Appends host rows to `buf` (sequences joining a pass).
    fn append(&self, buf: &mut Self::Buf, host: &[f32]);
    /// A new buffer of `rows` of `src`, each `width` wide, in the given order.
    fn gather_rows(&self, src: &Self::Buf, rows: &[usize], width: usize) -> Self::Buf;

    // ---- weights and tables ----

    /// Prepares a weight matrix (the CPU packs it into GEMM panels).
    fn matrix(&self, host: HostMatrix<'_>) -> Self::Matrix;
    /// `(k, n)` of a prepared matrix.
    fn matrix_shape(&self, m: &Self::Matrix) -> (usize, usize);
    /// Prepares a weight vector (norm weights, biases, embeddings).
    fn vector(&self, host: Vec<f32>) -> Self::Buf;
    /// The layout as the attention kernels read it.
    fn rows(&self, layout: &RowLayout) -> Self::Rows;
    /// The key mask of a padded pass: `spans[s]` are the real positions of sequence `s` (of
    /// every layout the pass runs with; its sequences do not change inside a pass).
    fn key_mask(&self, spans: &[RealSpan]) -> Self::KeyMask;
    /// Rotary tables for positions `0..seq`.
    fn rotary_tables(&self, seq: usize, d_head: usize, theta: f32) -> Self::Rotary;

    // ---- kernels ----

    /// `out[r] = w_e[ids[r]]`. w_e: `[d_vocab, d]`   out: `[rows, d]`
    fn embed(&self, w_e: &Self::Buf, ids: &[u32], d: usize, out: &mut Self::Buf);
    /// `out[r] = unembed[:, ids[r]]`: the embedding of tied weights read from the prepared
    /// unembedding (only called when [`Backend::EMBEDS_FROM_UNEMBED`]).
    /// unembed: `[d, d_vocab]`   out: `[rows, d]`
    fn embed_from_unembed(&self, unembed: &Self::Matrix, ids: &[u32], out: &mut Self::Buf);
    /// `out[r] = w_pos[positions[r]]`. w_pos: `[n_ctx, d]`   out: `[rows, d]`
    fn embed_positions(
        &self,
        w_pos: &Self::Buf,
        positions: &[usize],
        d: usize,
        out: &mut Self::Buf,
    );
    /// The whole norm in one pass: `out = norm(x) * w (+ b)`, `scale` = the divisor.
    /// x, out: `[rows, d]`   scale: `[rows]`
    fn norm_fused(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        scale: &mut Self::Buf,
        p: &NormParams<'_, Self>,
    );
    /// First step of a watched norm: `out = x - mean` (LayerNorm) or `x` (RMSNorm), and the
    /// scale. x, out: `[rows, d]`   scale: `[rows]`
    fn norm_scale(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        scale: &mut Self::Buf,
        p: &NormParams<'_, Self>,
    );
    /// `out[r] /= scale[r]`. out: `[rows, d]`
    fn divide_by_scale(&self, out: &mut Self::Buf, scale: &Self::Buf, d: usize);
    /// `out = out * w (+ b)` per row. out: `[rows, d]`
    fn affine(&self, out: &mut Self::Buf, w: &Self::Buf, b: Option<&Self::Buf>, d: usize);
    /// `out = then(x @ w + bias)` for the first `rows` rows.
    /// x: `[rows, k]`   out: `[rows, n]`
    fn linear(
        &self,
        x: &Self::Buf,
        rows: usize,
        w: &Self::Matrix,
        bias: Option<&Self::Buf>,
        then: Epilogue<'_, Self>,
        out: &mut Self::Buf,
    );
    /// Rotates every head of row `r` to absolute position `positions[r]`, in place.
    /// x: `[rows, heads, d_head]`
    fn rotary(&self, tables: &Self::Rotary, x: &mut Self::Buf, positions: &[usize], heads: usize);
    /// Scaled, causally masked scores. q: `[rows, n_heads, d_head]`
    /// k: `[batch, seq, n_kv_heads, d_head]`   scores: per sequence `[n_heads, rows_s, seq]`
    /// With a `mask`, keys outside their sequence's real span are `-inf` too (so a pad query
    /// before the span gets a row of `-inf`, which the softmax turns into zeros).
    fn attention_scores(
        &self,
        q: &Self::Buf,
        k: &Self::Buf,
        scores: &mut Self::Buf,
        rows: &Self::Rows,
        mask: Option<&Self::KeyMask>,
        dims: HeadDims,
    );
    /// Softmax of every row of `len`, in place (a row with no finite value becomes zeros).
    fn softmax_rows(&self, x: &mut Self::Buf, len: usize);
    /// `z = pattern @ v` per head. v: `[batch, seq, n_kv_heads, d_head]`
    /// z: `[rows, n_heads, d_head]`
    fn attention_values(
        &self,
        pattern: &Self::Buf,
        v: &Self::Buf,
        z: &mut Self::Buf,
        rows: &Self::Rows,
        dims: HeadDims,
    );
    /// Scores, softmax and values in one kernel, for when neither is watched; with a `mask`,
    /// as [`Backend::attention_scores`] masks (a query with no real key gets `z = 0`).
    #[allow(clippy::too_many_arguments)]
    fn attention_fused(
        &self,
        q: &Self::Buf,
        k: &Self::Buf,
        v: &Self::Buf,
        z: &mut Self::Buf,
        rows: &Self::Rows,
        mask: Option<&Self::KeyMask>,
        dims: HeadDims,
    );
    /// Writes the computed rows `[rows, width]` at their positions of `full`
    /// `[batch, seq, width]`, leaving every other position as it is (generation appends to
    /// its cache in place).
    fn scatter_kv_rows(
        &self,
        full: &mut Self::Buf,
        computed: &Self::Buf,
        layout: &RowLayout,
        width: usize,
    );
    /// Keys (or values) at every position of every sequence: computed rows from `computed`
    /// `[rows, width]`, the others from `prefix`. full: `[batch, seq, width]`
    fn assemble_kv(
        &self,
        full: &mut Self::Buf,
        computed: &Self::Buf,
        layout: &RowLayout,
        width: usize,
        prefix: Option<KvSource<'_, Self>>,
    ) -> Result<()>;
    /// `acc += x`.
    fn add(&self, acc: &mut Self::Buf, x: &Self::Buf);
    /// GELU-new in place.
    fn gelu_new(&self, x: &mut Self::Buf);
    /// `linear = silu(gate) * linear`.
    fn silu_mul(&self, gate: &Self::Buf, linear: &mut Self::Buf);
    /// TL's per-head output `result[r, h] = z[r, h] @ W_O[h]` (no bias).
    /// z: `[rows, n_heads, d_head]`   result: `[rows, n_heads, d_model]`
    fn per_head_result(
        &self,
        z: &Self::Buf,
        w_o: &Self::Matrix,
        rows: usize,
        dims: HeadDims,
        result: &mut Self::Buf,
    );
    /// `out[r] = Σ_h result[r, h] + b_o`. result: `[rows, n_heads, d]`   out: `[rows, d]`
    fn sum_heads(
        &self,
        result: &Self::Buf,
        b_o: Option<&Self::Buf>,
        n_heads: usize,
        d: usize,
        out: &mut Self::Buf,
    );
    /// Each row repeated `heads` times. x: `[rows, d]` -> `[rows, heads, d]`
    fn repeat_per_head(&self, x: &Self::Buf, heads: usize, d: usize) -> Self::Buf;
    /// From a product of per-head inputs with a whole projection, each head's own columns.
    /// product: `[rows, heads, heads * d_head]`   out: `[rows, heads * d_head]`
    fn own_head_columns(
        &self,
        product: &Self::Buf,
        heads: usize,
        d_head: usize,
        out: &mut Self::Buf,
    );
    /// Applies a built-in intervention to sequence `seq` of `data`, laid out as `layout`.
    fn intervene(
        &self,
        iv: &ResolvedIntervention,
        data: &mut Self::Buf,
        layout: &RowLayout,
        seq: usize,
    );
}
