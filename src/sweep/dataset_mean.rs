//! Mean ablation values from a whole dataset: each layer's activation averaged over every
//! real position of every prompt, or per position when all prompts have one length. The
//! prompts run in right-padded batches (padding is invisible at real positions) bounded by
//! a row budget, caching only the ablated hook.

use std::sync::Arc;

use super::dataset::DatasetRow;
use crate::error::{HookLensError, Result};
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::NamesFilter;
use crate::model::input::{PaddingSide, ReturnType, RunOptions, TokenBatch};
use crate::model::Model;
use crate::tensor::Tensor;

/// How a dataset's activations are averaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MeanOver {
    /// Every real position of every prompt pooled: one position's values, used at every
    /// position of every prompt.
    #[default]
    AllPositions,
    /// Each position over the prompts (all prompts of one token length).
    PerPosition,
}

/// Per-layer means of `kind` over the prompts of `rows` (their `clean` sequences):
/// `[layer]` -> `[1, ...]` for [`MeanOver::AllPositions`], `[seq, ...]` for
/// [`MeanOver::PerPosition`] (an error naming the line when lengths differ). Batches hold at
/// most `max_rows` padded rows (one prompt at least).
pub fn dataset_mean_values(
    model: &Model,
    rows: &[DatasetRow],
    kind: HookKind,
    over: MeanOver,
    max_rows: usize,
) -> Result<Vec<Arc<Tensor>>> {
    let first = rows
        .first()
        .ok_or_else(|| HookLensError::input("the dataset has no prompts"))?;
    if over == MeanOver::PerPosition {
        if let Some(r) = rows.iter().find(|r| r.clean.len() != first.clean.len()) {
            return Err(HookLensError::input(format!(
                "line {}: --mean per-position needs all prompts of one token length (line {} has {}, line {} has {}); use --mean all",
                r.line,
                first.line,
                first.clean.len(),
                r.line,
                r.clean.len()
            )));
        }
    }
    let n = model.config().n_layers;
    let mut sums: Option<Vec<Vec<f64>>> = None; // [layer][width or seq * width]
    let mut shape = Vec::new(); // one sequence's shape
    for chunk in chunks(rows, max_rows.max(1)) {
        let cached = cache_chunk(model, chunk, kind)?;
        let sums = sums.get_or_insert_with(|| vec![Vec::new(); n]);
        for (l, t) in cached.iter().enumerate() {
            shape = t.shape[1..].to_vec();
            accumulate(&mut sums[l], t, chunk, over);
        }
    }
    let sums = sums.unwrap_or_default();
    let count = match over {
        MeanOver::AllPositions => rows.iter().map(|r| r.clean.len()).sum::<usize>(),
        MeanOver::PerPosition => rows.len(),
    } as f64;
    match over {
        MeanOver::AllPositions => shape[0] = 1,
        MeanOver::PerPosition => shape[0] = first.clean.len(),
    }
    (sums.into_iter())
        .map(|s| {
            let data = s.iter().map(|v| (v / count) as f32).collect();
            Ok(Arc::new(Tensor::new(data, shape.clone())?))
        })
        .collect()
}

/// Consecutive rows whose padded batch holds at most `max_rows` rows (one at least).
fn chunks(rows: &[DatasetRow], max_rows: usize) -> Vec<&[DatasetRow]> {
    let mut out = Vec::new();
    let (mut start, mut longest) = (0, 0);
    for (i, r) in rows.iter().enumerate() {
        let wider = longest.max(r.clean.len());
        if i > start && (i + 1 - start) * wider > max_rows {
            out.push(&rows[start..i]);
            (start, longest) = (i, r.clean.len());
        } else {
            longest = wider;
        }
    }
    out.push(&rows[start..]);
    out
}

/// `kind` at every layer for the chunk, right-padded. `[layer]` -> `[batch, seq, ...]`
fn cache_chunk(model: &Model, chunk: &[DatasetRow], kind: HookKind) -> Result<Vec<Tensor>> {
    let seqs: Vec<&[u32]> = chunk.iter().map(|r| r.clean.as_slice()).collect();
    let batch = TokenBatch::padded(&seqs, PaddingSide::Right, model.pad_id())?;
    batch.validate(model.config())?;
    let points: Vec<HookPoint> = (0..model.config().n_layers)
        .map(|l| HookPoint::layer(kind, l))
        .collect();
    let (_, cache) = model.run_with_cache(
        &batch,
        &NamesFilter::from(points.clone()),
        &RunOptions::returning(ReturnType::None),
    )?;
    points.iter().map(|&p| cache.get(p).cloned()).collect()
}

/// Adds the real positions of a chunk's cached `[batch, seq, ...]` tensor to `sum`
/// (`[width]` pooled, `[seq * width]` per position).
fn accumulate(sum: &mut Vec<f64>, t: &Tensor, chunk: &[DatasetRow], over: MeanOver) {
    let (batch, seq) = (t.shape[0], t.shape[1]);
    let width = t.data.len() / (batch * seq);
    for (b, r) in chunk.iter().enumerate() {
        for pos in 0..r.clean.len() {
            let at = (b * seq + pos) * width;
            let row = &t.data[at..at + width];
            let offset = match over {
                MeanOver::AllPositions => 0,
                MeanOver::PerPosition => pos * width,
            };
            if sum.len() < offset + width {
                sum.resize(offset + width, 0.0);
            }
            (sum[offset..offset + width].iter_mut().zip(row)).for_each(|(s, &v)| *s += v as f64);
        }
    }
}
