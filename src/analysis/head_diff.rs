//! How much each head's output differs between the two prompts of a pair, averaged over a
//! dataset of pairs: for every (layer, head), the mean over pairs of the L2 norm of
//! `hook_z[clean] - hook_z[corrupted]` at the last real position, or averaged over all
//! positions. The sequences run in right-padded batches (padding is invisible at real
//! positions), bounded by a row budget.

use crate::error::{HookLensError, Result};
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::NamesFilter;
use crate::model::input::{PaddingSide, ReturnType, RunOptions, TokenBatch};
use crate::model::Model;
use crate::sweep::DatasetRow;

/// Which positions of a pair are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiffPositions {
    /// Each prompt's own last real position (the pair's prompts may differ in length).
    #[default]
    Last,
    /// Every position, the norms averaged (the pair's prompts must be of one length).
    All,
}

/// The result of [`head_z_diff`].
#[derive(Clone, Debug, PartialEq)]
pub struct HeadDiff {
    /// Layers.
    pub n_layers: usize,
    /// Heads per layer.
    pub n_heads: usize,
    /// The mean over pairs of each head's norm. `[n_layers * n_heads]`, layer-major.
    pub mean: Vec<f64>,
    /// Each pair's norms, in dataset order. `[pairs][n_layers * n_heads]`
    pub per_pair: Vec<Vec<f64>>,
}

impl HeadDiff {
    /// (layer, head, mean norm), largest first (ties by layer, then head).
    pub fn ranked(&self) -> Vec<(usize, usize, f64)> {
        let mut all: Vec<(usize, usize, f64)> = (self.mean.iter().enumerate())
            .map(|(i, &v)| (i / self.n_heads, i % self.n_heads, v))
            .collect();
        all.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        all
    }
}

/// Checks that every row is a pair, and of one length per pair for `All`; errors name the
/// line.
fn check_pairs(rows: &[DatasetRow], positions: DiffPositions) -> Result<()> {
    if rows.is_empty() {
        return Err(HookLensError::input("the dataset has no pairs"));
    }
    for r in rows {
        let corrupted = r.corrupted.as_ref().ok_or_else(|| {
            HookLensError::input(format!("line {}: not a clean / corrupted pair", r.line))
        })?;
        if positions == DiffPositions::All && corrupted.len() != r.clean.len() {
            return Err(HookLensError::input(format!(
                "line {}: --positions all needs the two prompts of a pair of equal token length (clean has {}, corrupted has {}); use --positions last",
                r.line,
                r.clean.len(),
                corrupted.len()
            )));
        }
    }
    Ok(())
}

/// Chunks of pair indices (shortest pairs first) whose padded batches hold at most
/// `max_rows` rows (`2 * pairs * longest`), at least one pair each.
fn chunks_of(rows: &[DatasetRow], max_rows: usize) -> Vec<Vec<usize>> {
    let len = |i: usize| {
        let r = &rows[i];
        r.clean.len().max(r.corrupted.as_ref().map_or(0, Vec::len))
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (len(i), i));
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let fits = out
            .last()
            .is_some_and(|c| 2 * (c.len() + 1) * len(i) <= max_rows);
        match out.last_mut() {
            Some(c) if fits => c.push(i),
            _ => out.push(vec![i]),
        }
    }
    out
}

/// For every (layer, head), the mean over the pairs `rows` of the L2 norm of the difference
/// of the clean and corrupted prompts' `hook_z` (see [`DiffPositions`]). The sequences run
/// in right-padded batches of at most `max_rows` rows (one pair at least); `progress` gets
/// (pairs done, pairs).
pub fn head_z_diff(
    model: &Model,
    rows: &[DatasetRow],
    positions: DiffPositions,
    max_rows: usize,
    progress: Option<&dyn Fn(usize, usize)>,
) -> Result<HeadDiff> {
    check_pairs(rows, positions)?;
    let cfg = model.config();
    let (n_layers, n_heads) = (cfg.n_layers, cfg.n_heads);
    let mut per_pair = vec![Vec::new(); rows.len()];
    let mut done = 0;
    for chunk in chunks_of(rows, max_rows.max(1)) {
        let norms = chunk_norms(model, rows, &chunk, positions)?;
        for (i, n) in chunk.iter().zip(norms) {
            per_pair[*i] = n;
        }
        done += chunk.len();
        if let Some(p) = progress {
            p(done, rows.len());
        }
    }
    let pairs = rows.len() as f64;
    let mean = (0..n_layers * n_heads)
        .map(|c| per_pair.iter().map(|p| p[c]).sum::<f64>() / pairs)
        .collect();
    Ok(HeadDiff {
        n_layers,
        n_heads,
        mean,
        per_pair,
    })
}

/// The norms of the pairs `chunk`, run as one right-padded batch (clean, corrupted, clean,
/// ...). `[pairs][n_layers * n_heads]`
fn chunk_norms(
    model: &Model,
    rows: &[DatasetRow],
    chunk: &[usize],
    positions: DiffPositions,
) -> Result<Vec<Vec<f64>>> {
    let cfg = model.config();
    let mut seqs: Vec<&[u32]> = Vec::with_capacity(2 * chunk.len());
    for &i in chunk {
        seqs.push(&rows[i].clean);
        seqs.push(rows[i].corrupted.as_deref().unwrap_or_default());
    }
    let batch = TokenBatch::padded(&seqs, PaddingSide::Right, model.pad_id())?;
    batch.validate(cfg)?;
    let names = (0..cfg.n_layers)
        .map(|l| HookPoint::layer(HookKind::Z, l).into())
        .collect();
    let (_, cache) = model.run_with_cache(
        &batch,
        &NamesFilter::Names(names),
        &RunOptions::returning(ReturnType::None),
    )?;
    let mut out = vec![Vec::with_capacity(cfg.n_layers * cfg.n_heads); chunk.len()];
    for l in 0..cfg.n_layers {
        let z = cache.get(HookPoint::layer(HookKind::Z, l))?; // [batch, pos, n_heads, d_head]
        let view = ZView {
            data: &z.data,
            seq: batch.seq(),
            heads: cfg.n_heads,
            d_head: cfg.d_head,
        };
        for (p, norms) in out.iter_mut().enumerate() {
            let (a, b) = (2 * p, 2 * p + 1);
            let (la, lb) = (seqs[a].len(), seqs[b].len());
            norms.extend((0..cfg.n_heads).map(|h| {
                match positions {
                    DiffPositions::Last => view.diff_norm((a, la - 1), (b, lb - 1), h),
                    DiffPositions::All => {
                        (0..la)
                            .map(|t| view.diff_norm((a, t), (b, t), h))
                            .sum::<f64>()
                            / la as f64
                    }
                }
            }));
        }
    }
    Ok(out)
}

/// One layer's cached `hook_z`. `[batch, seq, heads, d_head]`
struct ZView<'a> {
    data: &'a [f32],
    seq: usize,
    heads: usize,
    d_head: usize,
}

impl ZView<'_> {
    /// The head's `d_head` values of row `b` at position `t`.
    fn head(&self, (b, t): (usize, usize), h: usize) -> &[f32] {
        let at = ((b * self.seq + t) * self.heads + h) * self.d_head;
        &self.data[at..at + self.d_head]
    }

    /// `|z[x] - z[y]|` for head `h`.
    fn diff_norm(&self, x: (usize, usize), y: (usize, usize), h: usize) -> f64 {
        (self.head(x, h).iter().zip(self.head(y, h)))
            .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    }
}
