//! The forward pass, written once for every architecture, every backend and both kinds of
//! pass: a plain pass over every position (hooks see TL shapes), and a sweep pass over packed
//! suffix rows that reuses a base run's keys and values for the unchanged prefix. A hook slot
//! sits between every pair of kernels.
//!
//! [`run_pass`] reads as the model does: [`embed::input`], then per layer
//! [`attention::block`] and [`mlp::block`], then [`unembed::logits`]. Each step decides, in
//! one place per kernel family, whether to run the fused kernel (nobody watches the values in
//! between) or the watched sequence of kernels with slots between them.

mod attention;
mod embed;
mod mlp;
mod norm;
mod rows;
mod unembed;

pub(crate) use norm::{apply_norm, NormStep};
pub(crate) use rows::last_block_positions;

use super::arena::{Arena, ArenaLens};
use super::config::{ModelConfig, PositionKind};
use super::engine::Engine;
use super::input::TokenBatch;
use super::kv_cache::KvCache;
use super::weights::Weights;
use crate::backend::Backend;
use crate::error::Result;
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::registry::SlotTable;
use crate::layout::{RealSpan, RowLayout};
use rows::Rows;

/// Keys and values of base runs, reused for the positions a sweep pass does not recompute.
pub(crate) struct KvPrefix<'a, B: Backend> {
    /// The base runs' keys and values. // per layer [bases, seq_len, n_kv_heads, d_head]
    pub cache: &'a KvCache<B>,
    /// The base run each sequence of the pass continues.
    pub seq_base: &'a [usize],
}

/// What enters the first computed layer.
pub(crate) enum PassInput<'a> {
    /// Token ids, one row of `seq_len` per sequence; embedded at the layout's positions.
    Tokens(&'a TokenBatch),
    /// The residual stream for the layout's rows. `[rows, d_model]`
    Residual(&'a [f32]),
}

/// Which rows get logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogitRows {
    /// None: stop after the final norm.
    None,
    /// Every computed row.
    All,
    /// The last computed row of each sequence.
    LastOfEachSeq,
}

/// Sequences that enter a sweep pass at a later block: their rows are appended to the packed
/// buffers when block `layer` starts (sequences are ordered so joiners come last).
pub(crate) struct Joiner {
    /// The block they enter.
    pub layer: usize,
    /// (sequence index, its positions) for each joining sequence, in sequence order.
    pub seqs: Vec<(usize, Vec<usize>)>,
    /// Their residual rows entering `layer`, packed in the same order. `[rows, d_model]`
    pub resid: Vec<f32>,
}

/// A pass to run.
pub(crate) struct PassPlan<'a, B: Backend> {
    /// The input.
    pub input: PassInput<'a>,
    /// The rows computed.
    pub layout: RowLayout,
    /// Blocks `start..stop`.
    pub layers: (usize, usize),
    /// Base keys/values for the positions the layout leaves out.
    pub kv_prefix: Option<KvPrefix<'a, B>>,
    /// The pass's `kv_out` cache already holds the keys and values of the positions the
    /// layout leaves out: the computed rows are written into it and attention reads it
    /// there (generation; `kv_prefix` is then `None`).
    pub kv_in_place: bool,
    /// In the last block, compute queries, MLP and logits only at these positions.
    pub final_positions: Option<&'a [usize]>,
    /// Where logits are computed (after the last block only).
    pub logits: LogitRows,
    /// Sequences that join at later blocks (sweeps batch variants of several fork layers).
    pub joiners: &'a [Joiner],
    /// Called after each block with its layer index (sweeps report progress inside a pass).
    pub after_block: Option<&'a dyn Fn(usize)>,
    /// A padded pass: the real positions of each sequence of the layout (attention masks the
    /// other keys; positions count from each span's start). `None`: every position is real.
    pub spans: Option<&'a [RealSpan]>,
}

/// What a pass produced, on the host.
pub(crate) struct PassOutput {
    /// The rows of the outputs below (the plan's layout, restricted in the last block).
    pub layout: RowLayout,
    /// The residual stream when the pass stopped before the last block. `[rows, d_model]`
    pub resid: Option<Vec<f32>>,
    /// Logits and, for each logit row, its row in `layout`. `[n, d_vocab]`
    pub logits: Option<(Vec<f32>, Vec<usize>)>,
}

/// What every step of a pass reads: the model, its backend and the slots it fires into.
pub(crate) struct Ctx<'p, 'h, 'a, B: Backend> {
    /// The configuration.
    pub cfg: &'p ModelConfig,
    /// The backend the kernels run on.
    pub b: &'p B,
    /// The prepared weights.
    pub weights: &'p Weights<B>,
    /// Hooks, cache requests and interventions, resolved.
    pub slots: &'p mut SlotTable<'h, 'a>,
}

impl<B: Backend> Ctx<'_, '_, '_, B> {
    /// Fires a slot (nothing but an indexed load when it is empty).
    #[inline]
    pub fn fire(&mut self, point: HookPoint, data: &mut B::Buf, layout: &RowLayout) -> Result<()> {
        self.slots.fire(self.b, point, data, layout)
    }

    /// Fires a slot whose value `produce` computes only if the slot needs it (see
    /// `SlotTable::fire_deferred`); true when it was computed.
    #[inline]
    pub fn fire_deferred<'b>(
        &mut self,
        point: HookPoint,
        layout: &RowLayout,
        produce: impl FnOnce() -> &'b mut B::Buf,
    ) -> Result<bool> {
        self.slots
            .fire_deferred(self.b, (point, None), layout, produce)
    }

    /// True when anything is registered at `point`.
    #[inline]
    pub fn active(&self, point: HookPoint) -> bool {
        self.slots.active(point)
    }
}

/// What a pass changes as it runs: its buffers and the rows it computes.
pub(crate) struct State<B: Backend> {
    /// The buffers.
    pub a: Arena<B>,
    /// The rows computed now.
    pub rows: Rows<B>,
    /// Rotary tables for the pass's sequence length (rotary models).
    pub rotary: Option<B::Rotary>,
    /// A padded pass's real positions per sequence, and the key mask built from them.
    pub padding: Option<(Vec<RealSpan>, B::KeyMask)>,
}

/// A padded pass has one span per sequence, each a non-empty part of the sequence.
fn check_spans(spans: &[RealSpan], layout: &RowLayout) -> Result<()> {
    let fits = spans.iter().all(|s| s.len > 0 && s.end() <= layout.seq_len);
    if spans.len() != layout.batch() || !fits {
        return Err(crate::error::HookLensError::input(format!(
            "a padded pass needs one non-empty span inside the {} positions per sequence, got {spans:?} for {} sequences",
            layout.seq_len,
            layout.batch()
        )));
    }
    Ok(())
}

impl<B: Backend> State<B> {
    /// The real positions of each sequence, in a padded pass.
    pub fn spans(&self) -> Option<&[RealSpan]> {
        self.padding.as_ref().map(|(s, _)| s.as_slice())
    }

    /// Arena lengths for `rows` rows of the current layout's sequences.
    pub fn lens(&self, cfg: &ModelConfig, rows: usize) -> ArenaLens {
        let l = &self.rows.layout;
        ArenaLens::for_pass(cfg, rows, l.batch(), l.seq_len)
    }
}

/// Runs a pass on `engine`. `slots` holds the hooks, cache requests and interventions,
/// already resolved; `kv_out`, for a pass computing every position, receives each layer's
/// keys and values.
pub(crate) fn run_pass<B: Backend>(
    engine: &Engine<B>,
    cfg: &ModelConfig,
    plan: &PassPlan<'_, B>,
    slots: &mut SlotTable<'_, '_>,
    kv_out: Option<&mut KvCache<B>>,
) -> Result<PassOutput> {
    let b = &engine.backend;
    let layout = &plan.layout;
    let lens = ArenaLens::for_pass(cfg, layout.rows(), layout.batch(), layout.seq_len);
    let rotary = match cfg.positions {
        PositionKind::Rotary { theta } => Some(b.rotary_tables(layout.seq_len, cfg.d_head, theta)),
        PositionKind::Learned => None,
    };
    if let Some(spans) = plan.spans {
        check_spans(spans, layout)?;
    }
    let padding = plan.spans.map(|s| (s.to_vec(), b.key_mask(s)));
    let mut st = State {
        a: engine.arenas.take(b, lens),
        rows: Rows::new(b, layout.clone(), plan.spans),
        rotary,
        padding,
    };
    let mut ctx = Ctx {
        cfg,
        b,
        weights: &engine.weights,
        slots,
    };
    let out = run_steps(&mut ctx, &mut st, plan, kv_out);
    engine.arenas.give_back(st.a);
    let checked = b.check();
    let out = out?;
    checked.map(|()| out)
}

/// The steps of a pass, in order.
fn run_steps<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    plan: &PassPlan<'_, B>,
    mut kv_out: Option<&mut KvCache<B>>,
) -> Result<PassOutput> {
    embed::input(ctx, st, &plan.input)?;
    let (start, stop) = plan.layers;
    for layer in start..stop {
        rows::join(ctx, st, plan.joiners, layer)?;
        attention::block(ctx, st, plan, layer, kv_out.as_deref_mut())?;
        mlp::block(ctx, st, layer)?;
        let point = HookPoint::layer(HookKind::ResidPost, layer);
        ctx.fire(point, &mut st.a.resid, &st.rows.layout)?;
        if let Some(after_block) = plan.after_block {
            after_block(layer);
        }
    }
    if stop < ctx.cfg.n_layers {
        let resid = std::mem::replace(&mut st.a.resid, ctx.b.zeros(0));
        return Ok(PassOutput {
            layout: st.rows.layout.clone(),
            resid: Some(ctx.b.take_host(resid)),
            logits: None,
        });
    }
    unembed::logits(ctx, st, plan.logits)
}
