//! The first step: token and position embeddings, or a residual stream given as input.

use super::{Ctx, PassInput, State};
use crate::backend::Backend;
use crate::error::Result;
use crate::hooks::point::{HookKind, HookPoint};
use crate::layout::{RealSpan, RowLayout};
use crate::model::config::PositionKind;
use crate::model::weights::TokenEmbedding;

/// Fills the residual stream of the pass's rows from its input.
pub(super) fn input<B: Backend>(
    ctx: &mut Ctx<'_, '_, '_, B>,
    st: &mut State<B>,
    input: &PassInput<'_>,
) -> Result<()> {
    let tokens = match input {
        PassInput::Residual(resid) => {
            ctx.b.upload_into(resid, &mut st.a.resid);
            return Ok(());
        }
        PassInput::Tokens(tokens) => tokens,
    };
    let (b, d, w) = (ctx.b, ctx.cfg.d_model, ctx.weights);
    let layout = &st.rows.layout;
    let ids: Vec<u32> = (layout.seqs.iter().enumerate())
        .flat_map(|(s, seq)| seq.positions.iter().map(move |&t| tokens.row(s)[t]))
        .collect();
    match &w.w_e {
        TokenEmbedding::Table(w_e) => b.embed(w_e, &ids, d, &mut st.a.resid),
        TokenEmbedding::TiedToUnembed => b.embed_from_unembed(&w.unembed, &ids, &mut st.a.resid),
    }
    ctx.fire(HookPoint::global(HookKind::Embed), &mut st.a.resid, layout)?;
    if let (PositionKind::Learned, Some(w_pos)) = (ctx.cfg.positions, &w.w_pos) {
        // The attention-output buffer holds the position embedding for now. // [rows, d_model]
        b.embed_positions(w_pos, &st.rows.positions, d, &mut st.a.attn_out);
        if let Some((spans, _)) = &st.padding {
            zero_pad_rows(b, &mut st.a.attn_out, layout, spans, d);
        }
        let point = HookPoint::global(HookKind::PosEmbed);
        ctx.fire(point, &mut st.a.attn_out, layout)?;
        b.add(&mut st.a.resid, &st.a.attn_out);
    }
    Ok(())
}

/// Zeroes the rows at pad positions (TL's position embedding is 0 there). x: `[rows, d]`
fn zero_pad_rows<B: Backend>(
    b: &B,
    x: &mut B::Buf,
    layout: &RowLayout,
    spans: &[RealSpan],
    d: usize,
) {
    b.with_host_mut(x, |host| {
        for (seq, span) in layout.seqs.iter().zip(spans) {
            for (i, &t) in seq.positions.iter().enumerate() {
                if !span.contains(t) {
                    host[(seq.offset + i) * d..][..d].fill(0.0);
                }
            }
        }
    });
}
