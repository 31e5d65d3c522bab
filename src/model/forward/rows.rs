//! The rows a pass computes, and the two ways they change inside a pass: sequences joining at
//! a later block (sweeps batch variants of several fork layers), and the last block keeping
//! only the positions a metric reads.

use super::{Ctx, LogitRows, State};
use crate::backend::Backend;
use crate::error::{HookLensError, Result};
use crate::hooks::registry::SlotTable;
use crate::layout::{RealSpan, RowLayout};
use crate::model::config::ModelConfig;

/// The rows computed, as the host and the backend's kernels see them.
pub(crate) struct Rows<B: Backend> {
    /// The host's layout (hooks, interventions and the pass's decisions read it).
    pub layout: RowLayout,
    /// The same layout as the backend's kernels read it.
    pub dev: B::Rows,
    /// The position the model embeds or rotates to at every packed row: its absolute
    /// position, or in a padded pass its position counted from its sequence's span start
    /// ([`RealSpan::model_position`]).
    pub positions: Vec<usize>,
}

impl<B: Backend> Rows<B> {
    /// The rows of `layout`, padded with `spans` (one per sequence) when given.
    pub fn new(b: &B, layout: RowLayout, spans: Option<&[RealSpan]>) -> Self {
        let positions = (layout.seqs.iter().enumerate())
            .flat_map(|(s, seq)| {
                let span = spans.map(|sp| sp[s]);
                (seq.positions.iter()).map(move |&t| span.map_or(t, |sp| sp.model_position(t)))
            })
            .collect();
        Rows {
            dev: b.rows(&layout),
            layout,
            positions,
        }
    }

    /// Packed rows.
    pub fn count(&self) -> usize {
        self.positions.len()
    }
}

/// Appends the rows of the sequences that join at block `layer`.
pub(super) fn join<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    joiners: &[super::Joiner],
    layer: usize,
) -> Result<()> {
    let d = ctx.cfg.d_model;
    for join in joiners.iter().filter(|j| j.layer == layer) {
        let layout = &st.rows.layout;
        let mut all: Vec<Vec<usize>> = layout.seqs.iter().map(|s| s.positions.clone()).collect();
        for (seq, pos) in &join.seqs {
            all[*seq] = pos.clone();
        }
        let joined = RowLayout::from_positions(layout.seq_len, all);
        if joined.rows() != st.rows.count() + join.resid.len() / d {
            return Err(HookLensError::input(
                "joining sequences must come after the others",
            ));
        }
        ctx.b.append(&mut st.a.resid, &join.resid);
        st.rows = Rows::new(ctx.b, joined, st.spans());
        let lens = st.lens(ctx.cfg, st.rows.count());
        st.a.grow_rows(ctx.b, lens);
    }
    Ok(())
}

/// In the last block, keeps only the rows at `keep` (with the queries when split inputs
/// computed them already); returns the rows before, which keys and values keep.
pub(super) fn restrict<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    keep: &[usize],
    split: bool,
) -> Rows<B> {
    let (b, cfg) = (ctx.b, ctx.cfg);
    let (layout, sources) = st.rows.layout.restrict(keep);
    let q_width = cfg.n_heads * cfg.d_head;
    let q_kept = split.then(|| b.gather_rows(&st.a.q, &sources, q_width));
    st.a.normed = b.gather_rows(&st.a.normed, &sources, cfg.d_model);
    st.a.resid = b.gather_rows(&st.a.resid, &sources, cfg.d_model);
    let kept = Rows::new(b, layout, st.spans());
    let before = std::mem::replace(&mut st.rows, kept);
    let lens = st.lens(cfg, st.rows.count());
    st.a.resize_rows(b, lens);
    if let Some(q) = q_kept {
        st.a.q = q;
    }
    before
}

/// The positions the last block of a pass over `layout` needs when only each sequence's last
/// logits are asked for and nothing watches the last block, the final norm or the
/// unembedding: each sequence's last real position (its last position without padding).
/// Keys and values still cover every computed row; queries, attention, the output
/// projection, the MLP and the final norm run only there. `None`: compute every row (also
/// when that would keep as many positions as each sequence computes).
pub(crate) fn last_block_positions(
    cfg: &ModelConfig,
    (layout, stop): (&RowLayout, usize),
    spans: Option<&[RealSpan]>,
    logits: LogitRows,
    slots: &SlotTable<'_, '_>,
) -> Option<Vec<usize>> {
    let last_layer = cfg.n_layers.checked_sub(1)?;
    if logits != LogitRows::LastOfEachSeq || stop != cfg.n_layers {
        return None;
    }
    if !slots.quiet_from_layer(last_layer) {
        return None;
    }
    let mut ends: Vec<usize> = match spans {
        Some(spans) => spans
            .iter()
            .map(|s| s.end().checked_sub(1))
            .collect::<Option<_>>()?,
        None => vec![layout.seq_len.checked_sub(1)?],
    };
    ends.sort_unstable();
    ends.dedup();
    (ends.len() < layout.positions_per_seq()).then_some(ends)
}
