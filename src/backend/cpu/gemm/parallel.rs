//! Splitting one product across threads: each thread gets a rectangle of the output (a range of
//! rows x a range of `NR`-wide panels) and runs the blocked loop on it. Small batches split
//! columns, so each thread streams its own part of the packed weights once (the batch-1 case is
//! bound by memory bandwidth); large batches split rows when there are too few panels to share.

use std::ops::Range;

/// How to divide the output between threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Split {
    /// Columns for small batches or many panels, rows otherwise.
    #[default]
    Auto,
    /// Each thread takes a range of output columns (of packed-weight panels).
    Columns,
    /// Each thread takes a range of output rows.
    Rows,
}

/// The (rows, panels) rectangle of each thread; at most `threads` of them, none empty, covering
/// `0..m` x `0..panels` exactly once. Row ranges start at multiples of `mr` and panel ranges at
/// multiples of `step` (the kernel's tile), so that only the last thread has edge tiles.
pub(super) fn plan(
    (m, panels): (usize, usize),
    (mr, step): (usize, usize),
    threads: usize,
    split: Split,
) -> Vec<(Range<usize>, Range<usize>)> {
    let row_blocks = m.div_ceil(mr);
    let col_blocks = panels.div_ceil(step);
    let by_columns = match split {
        Split::Columns => true,
        Split::Rows => false,
        Split::Auto => col_blocks >= 4 * threads || row_blocks < 2 * threads,
    };
    let mut parts = Vec::with_capacity(threads);
    if by_columns {
        let t = threads.min(col_blocks).max(1);
        for i in 0..t {
            let (p0, p1) = (
                i * col_blocks / t * step,
                ((i + 1) * col_blocks / t * step).min(panels),
            );
            parts.push((0..m, p0..p1));
        }
    } else {
        let t = threads.min(row_blocks).max(1);
        for i in 0..t {
            let (r0, r1) = (
                i * row_blocks / t * mr,
                ((i + 1) * row_blocks / t * mr).min(m),
            );
            parts.push((r0..r1, 0..panels));
        }
    }
    parts.retain(|(r, p)| !r.is_empty() && !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_the_output_once() {
        for split in [Split::Auto, Split::Columns, Split::Rows] {
            for &(m, panels) in &[(1, 1), (1, 48), (7, 3), (300, 12), (2304, 192), (13, 3142)] {
                for (threads, tile) in (1..=5).flat_map(|t| [(t, (6, 1)), (t, (14, 2))]) {
                    let mut hits = vec![0u8; m * panels];
                    let parts = plan((m, panels), tile, threads, split);
                    assert!(parts.len() <= threads);
                    for (rows, ps) in parts {
                        assert_eq!(rows.start % tile.0, 0);
                        assert_eq!(ps.start % tile.1, 0);
                        for i in rows {
                            for p in ps.clone() {
                                hits[i * panels + p] += 1;
                            }
                        }
                    }
                    assert!(
                        hits.iter().all(|&h| h == 1),
                        "{split:?} {m} {panels} {threads}"
                    );
                }
            }
        }
    }
}
