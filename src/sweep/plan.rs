//! Planning a sweep, on the host and without a backend: where each variant starts (its
//! stage and first position), how variants are packed into passes under a row budget, and the
//! rows of each pass (the variants that start at the pass's first block, and the ones that
//! join it at later blocks).

use std::ops::Range;

use super::engine::{Base, Variant};
use crate::error::Result;
use crate::hooks::intervention::ResolvedIntervention;
use crate::hooks::point::{HookKind, HookPoint};
use crate::layout::RowLayout;
use crate::model::config::ModelConfig;

/// Sequences of a pass (index in the chunk) with the positions they compute.
pub(super) type Members = Vec<(usize, Vec<usize>)>;

/// The placed variants, and the (variant, base) pairs that keep their base's value.
pub(super) type Placement = (Vec<Planned>, Vec<(usize, usize)>);

/// One variant, resolved and placed.
#[derive(Clone, Debug)]
pub(super) struct Planned {
    /// Its index in the sweep's variants.
    pub index: usize,
    /// The base run it continues.
    pub base: usize,
    /// Where it starts: 0 = the embedding, L + 1 = block L, n_layers + 1 = the final norm.
    pub stage: usize,
    /// The first position it changes (earlier positions keep the base's keys and values).
    pub start: usize,
    /// The base's interventions, then its own.
    pub interventions: Vec<ResolvedIntervention>,
}

/// Where a variant starts: 0 = at the embedding, L + 1 = at block L, n_layers + 1 = at the
/// final norm.
pub(super) fn stage_of(point: &HookPoint, n_layers: usize) -> usize {
    match (point.kind, point.layer) {
        (HookKind::Embed | HookKind::PosEmbed, _) => 0,
        (HookKind::LnFinalScale | HookKind::LnFinalNormalized | HookKind::Unembed, _) => {
            n_layers + 1
        }
        (_, layer) => layer.unwrap_or(0) + 1,
    }
}

/// Every variant resolved and placed, sorted by (stage, start); and the variants that change
/// nothing the metric reads, as (variant index, base), whose value is their base's.
pub(super) fn place_variants(
    cfg: &ModelConfig,
    (bases, variants): (&[Base], &[Variant]),
    seq_len: usize,
    metric_positions: &[usize],
) -> Result<Placement> {
    let resolve = |ivs: &[crate::hooks::intervention::Intervention]| {
        ivs.iter()
            .map(|iv| iv.resolve(cfg, seq_len))
            .collect::<Result<Vec<_>>>()
    };
    let base_ivs: Vec<Vec<ResolvedIntervention>> = bases
        .iter()
        .map(|b| resolve(&b.interventions))
        .collect::<Result<_>>()?;
    let last_read = metric_positions.iter().max().copied().unwrap_or(0);
    let (mut planned, mut unchanged) = (Vec::with_capacity(variants.len()), Vec::new());
    for (index, v) in variants.iter().enumerate() {
        let own = resolve(&v.interventions)?;
        let stage = own.iter().map(|iv| stage_of(&iv.point, cfg.n_layers)).min();
        let start = own.iter().map(ResolvedIntervention::first_position).min();
        match (stage, start) {
            (Some(stage), Some(start)) if start <= last_read => {
                let mut interventions = base_ivs[v.base].clone();
                interventions.extend(own);
                planned.push(Planned {
                    index,
                    base: v.base,
                    stage,
                    start,
                    interventions,
                });
            }
            // No intervention, or none before the positions the metric reads.
            _ => unchanged.push((index, v.base)),
        }
    }
    planned.sort_by_key(|p| (p.stage, p.start));
    Ok((planned, unchanged))
}

/// Progress units of variant `p` once blocks `..through` have run (`through = n`: the
/// whole variant, its logits included): its recomputed rows times the blocks it has run.
pub(super) fn work_of(p: &Planned, seq_len: usize, n_layers: usize, through: usize) -> usize {
    let first_block = p.stage.saturating_sub(1);
    let blocks = if through >= n_layers {
        n_layers.saturating_sub(first_block) + 1
    } else {
        (through + 1).saturating_sub(first_block)
    };
    (seq_len - p.start) * blocks
}

/// The planned variants split into passes: each packs variants until `max_rows` recomputed
/// rows (at least one variant per pass). Variants of later fork layers join a pass at their
/// layer; those that start at the final norm (stage n + 1) run in passes of their own.
pub(super) fn chunks(
    planned: &[Planned],
    seq_len: usize,
    n_layers: usize,
    max_rows: usize,
) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < planned.len() {
        let stage = planned[i].stage;
        let (mut j, mut rows) = (i, 0);
        while j < planned.len() && (planned[j].stage <= n_layers || planned[j].stage == stage) {
            let r = seq_len - planned[j].start;
            if j > i && rows + r > max_rows {
                break;
            }
            rows += r;
            j += 1;
        }
        out.push(i..j);
        i = j;
    }
    out
}

/// The rows of one pass: those computed from its first stage, and the groups that join later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ChunkShape {
    /// The stage the pass starts at (its first variant's).
    pub stage: usize,
    /// Sequences of the first stage compute their suffix; the others have no rows yet.
    pub layout: RowLayout,
    /// (block they join at, [(sequence, its positions)]) per later stage, in stage order.
    pub joiners: Vec<(usize, Members)>,
    /// Recomputed rows in all (the arena's largest row count).
    pub rows: usize,
}

/// The shape of the pass over `chunk` (variants sorted by stage).
pub(super) fn chunk_shape(chunk: &[Planned], seq_len: usize) -> ChunkShape {
    let stage = chunk.first().map_or(0, |p| p.stage);
    let suffix = |p: &Planned| (p.start..seq_len).collect::<Vec<usize>>();
    let first: Vec<Vec<usize>> = chunk
        .iter()
        .map(|p| {
            if p.stage == stage {
                suffix(p)
            } else {
                Vec::new()
            }
        })
        .collect();
    let mut later: Vec<usize> = chunk
        .iter()
        .map(|p| p.stage)
        .filter(|&s| s > stage)
        .collect();
    later.dedup();
    let joiners = later
        .into_iter()
        .map(|st| {
            let members = (chunk.iter().enumerate())
                .filter(|(_, p)| p.stage == st)
                .map(|(s, p)| (s, suffix(p)))
                .collect();
            (st - 1, members)
        })
        .collect();
    ChunkShape {
        stage,
        layout: RowLayout::from_positions(seq_len, first),
        joiners,
        rows: chunk.iter().map(|p| seq_len - p.start).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(index: usize, stage: usize, start: usize) -> Planned {
        Planned {
            index,
            base: 0,
            stage,
            start,
            interventions: Vec::new(),
        }
    }

    #[test]
    fn stages_follow_the_hook_point() {
        let n = 12;
        assert_eq!(stage_of(&HookPoint::global(HookKind::Embed), n), 0);
        assert_eq!(stage_of(&HookPoint::layer(HookKind::Z, 0), n), 1);
        assert_eq!(stage_of(&HookPoint::layer(HookKind::ResidPre, 11), n), 12);
        assert_eq!(stage_of(&HookPoint::global(HookKind::LnFinalScale), n), 13);
    }

    #[test]
    fn chunks_respect_the_row_budget_and_keep_final_norm_variants_apart() {
        // Ten tokens; variants at stages 1, 1, 2, 3 (suffixes of 10, 8, 10, 4 rows) and two
        // at the final norm of a 4-layer model (stage 5).
        let p = vec![
            planned(0, 1, 0),
            planned(1, 1, 2),
            planned(2, 2, 0),
            planned(3, 3, 6),
            planned(4, 5, 0),
            planned(5, 5, 0),
        ];
        assert_eq!(chunks(&p, 10, 4, 20), vec![0..2, 2..4, 4..6]);
        assert_eq!(chunks(&p, 10, 4, 1000), vec![0..4, 4..6]);
        // A variant larger than the budget still runs, alone.
        assert_eq!(chunks(&p[..2], 10, 4, 5), vec![0..1, 1..2]);
    }

    #[test]
    fn a_chunk_starts_its_first_stage_and_the_others_join_at_their_block() {
        let p = vec![
            planned(7, 1, 3),
            planned(8, 3, 1),
            planned(9, 3, 4),
            planned(2, 4, 0),
        ];
        let shape = chunk_shape(&p, 5);
        assert_eq!(shape.stage, 1);
        assert_eq!(shape.rows, 2 + 4 + 1 + 5);
        assert_eq!(
            shape.layout,
            RowLayout::from_positions(5, vec![vec![3, 4], vec![], vec![], vec![]])
        );
        assert_eq!(
            shape.joiners,
            vec![
                (2, vec![(1, vec![1, 2, 3, 4]), (2, vec![4])]),
                (3, vec![(3, vec![0, 1, 2, 3, 4])]),
            ]
        );
    }

    #[test]
    fn work_counts_rows_times_blocks_plus_the_logits() {
        let v = planned(0, 2, 6); // starts at block 1, 4 rows of 10
        assert_eq!(work_of(&v, 10, 4, 1), 4);
        assert_eq!(work_of(&v, 10, 4, 3), 12);
        assert_eq!(work_of(&v, 10, 4, 4), 16);
    }
}
