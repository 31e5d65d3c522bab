//! The last step: the final norm and the logits at the rows asked for (every row when the
//! opt-in `hook_unembed` is watched, since it sees them all).

use super::norm::{apply_norm, NormStep};
use super::{Ctx, LogitRows, PassOutput, State};
use crate::backend::{Backend, Epilogue};
use crate::error::Result;
use crate::hooks::point::{HookKind, HookPoint};
use crate::layout::{RealSpan, RowLayout};

/// `ln_final`, then the logits of `which` rows.
pub(super) fn logits<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    which: LogitRows,
) -> Result<PassOutput> {
    let (b, w) = (ctx.b, ctx.weights);
    let ln_final = NormStep {
        scale_hook: HookPoint::global(HookKind::LnFinalScale),
        normalized_hook: HookPoint::global(HookKind::LnFinalNormalized),
        w: &w.ln_final_w,
        b: w.ln_final_b.as_ref(),
        heads: None,
    };
    let (a, layout) = (&mut st.a, &st.rows.layout);
    apply_norm(
        ctx,
        ln_final,
        &a.resid,
        (&mut a.normed, &mut a.scale),
        layout,
    )?;
    let rows = st.rows.count();
    let logit_rows: Vec<usize> = match which {
        LogitRows::None => Vec::new(),
        LogitRows::All => (0..rows).collect(),
        LogitRows::LastOfEachSeq => last_rows(layout, st.padding.as_ref().map(|(s, _)| &s[..])),
    };
    let (vocab, d) = (ctx.cfg.d_vocab, ctx.cfg.d_model);
    let unembed = |x: &B::Buf, n: usize| {
        let mut out = b.zeros(n * vocab); // [n, d_vocab]
        let b_u = w.b_u.as_ref();
        b.linear(x, n, &w.unembed, b_u, Epilogue::Store, &mut out);
        out
    };
    let point = HookPoint::global(HookKind::Unembed);
    let mut logits = if ctx.active(point) {
        // The opt-in hook sees every row; the pass returns its rows of them, edits included.
        let mut all = unembed(&a.normed, rows);
        ctx.fire(point, &mut all, layout)?;
        keep_rows(b, all, &logit_rows, rows, vocab)
    } else if which == LogitRows::None {
        None
    } else if logit_rows.len() == rows {
        Some(unembed(&a.normed, rows))
    } else {
        let selected = b.gather_rows(&a.normed, &logit_rows, d); // [logit rows, d_model]
        Some(unembed(&selected, logit_rows.len()))
    };
    if which == LogitRows::None {
        logits = None;
    }
    Ok(PassOutput {
        layout: layout.clone(),
        resid: None,
        logits: logits.map(|l| (b.take_host(l), logit_rows)),
    })
}

/// The row of each sequence's last real position (its last computed row when that position
/// is not computed, or without padding).
fn last_rows(layout: &RowLayout, spans: Option<&[RealSpan]>) -> Vec<usize> {
    (layout.seqs.iter().enumerate())
        .filter(|(_, s)| !s.positions.is_empty())
        .map(|(i, s)| {
            let last = s.offset + s.positions.len() - 1;
            spans
                .and_then(|sp| layout.row_of(i, sp[i].end() - 1))
                .unwrap_or(last)
        })
        .collect()
}

/// `logit_rows` of `all` (every one of `rows` rows), without a copy when that is all of them.
fn keep_rows<B: Backend>(
    b: &B,
    all: B::Buf,
    logit_rows: &[usize],
    rows: usize,
    vocab: usize,
) -> Option<B::Buf> {
    if logit_rows.len() == rows {
        Some(all)
    } else {
        Some(b.gather_rows(&all, logit_rows, vocab))
    }
}
