//! Splitting one product across threads. The output is cut into chunks (rectangles: a range of
//! rows x a range of `NR`-wide panels), a few per thread, and each thread takes the next chunk
//! from a shared counter until none is left, running the blocked loop on it. Taking chunks in
//! turn rather than one fixed share each keeps both cores busy when one of them is slowed by
//! other work (a shared machine), at the cost of an atomic add per chunk.
//!
//! Small batches split columns, so the packed weights are streamed once in all (the batch-1 case
//! is bound by memory bandwidth); large batches split rows unless the columns far outnumber
//! them (the unembedding).

use std::ops::Range;

use std::sync::atomic::{AtomicUsize, Ordering};

use super::super::threads::Workers;
use super::NR;

/// How to divide the output between threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Split {
    /// Columns for small batches or many more columns than rows, rows otherwise.
    #[default]
    Auto,
    /// Chunks are ranges of output columns (of packed-weight panels), all rows.
    Columns,
    /// Chunks are ranges of output rows, all columns.
    Rows,
}

/// Chunks per thread at most: enough that a slowed thread (or a slower core) leaves little
/// for the others to wait on.
const CHUNKS_PER_THREAD: usize = 4;

/// Rows per chunk at least when rows are split, and columns when columns are: smaller chunks
/// cost more in repeated passes over the other operand than they gain in balance. Measured
/// with `examples/gemm_tune.rs` on the machine of `docs/bench-gemm.md`: one chunk per thread
/// was 4 % faster than four in the geometric mean over the model shapes at M = 256, 1024 and
/// 2304, up to 20 % at M = 256, and level at M = 2304; in whole forward passes 256-row
/// chunks did as well as or better than 512.
const MIN_CHUNK_ROWS: usize = 256;
/// See [`MIN_CHUNK_ROWS`].
const MIN_CHUNK_COLS: usize = 2048;

/// One rectangle of the output: rows x panels.
pub(super) type Chunk = (Range<usize>, Range<usize>);

/// The chunks for `threads` threads: none empty, covering `0..m` x `0..panels` exactly once.
/// Row ranges start at multiples of `mr` and panel ranges at multiples of `step` (the kernel's
/// tile), so that only the last chunk has edge tiles. One thread gets one chunk: the whole.
/// `x_shared`: all of x is packed once for every chunk (a skinny product), so column chunks
/// cost nothing extra and may be narrow.
pub(super) fn plan(
    (m, panels): (usize, usize),
    (mr, step): (usize, usize),
    threads: usize,
    (split, x_shared): (Split, bool),
) -> Vec<Chunk> {
    let row_blocks = m.div_ceil(mr);
    let col_blocks = panels.div_ceil(step);
    let by_columns = match split {
        Split::Columns => true,
        Split::Rows => false,
        // Column chunks each pack x again (m * k values, and packing is slower per value than
        // streaming); row chunks each stream all of W again (k * n values, from cache when it
        // fits). So: columns for few rows or for many more columns than rows.
        Split::Auto => {
            row_blocks < 2 * threads || (col_blocks >= 2 * threads && panels * NR >= 8 * m)
        }
    };
    // Every chunk costs a pass over the operand it does not split (row chunks stream all of
    // W again, column chunks pack all of x again), so chunks stay at least MIN_CHUNK_ROWS tall
    // or MIN_CHUNK_COLS wide; their count is a multiple of the thread count, so that equal
    // threads finish together.
    let by_size = if by_columns {
        panels * NR / if x_shared { NR } else { MIN_CHUNK_COLS }
    } else {
        m / MIN_CHUNK_ROWS
    };
    let wanted = if threads <= 1 {
        1
    } else {
        threads * (by_size / threads).clamp(1, CHUNKS_PER_THREAD)
    };
    let mut parts = Vec::with_capacity(wanted);
    if by_columns {
        let t = wanted.min(col_blocks).max(1);
        for i in 0..t {
            let (p0, p1) = (
                i * col_blocks / t * step,
                ((i + 1) * col_blocks / t * step).min(panels),
            );
            parts.push((0..m, p0..p1));
        }
    } else {
        let t = wanted.min(row_blocks).max(1);
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

/// Runs `work` on every chunk, on the calling thread and the pool workers `workers` lends: each
/// takes the next unclaimed chunk until none is left. One thread, or one chunk: inline.
pub(super) fn run_chunks(chunks: &[Chunk], workers: &Workers, work: impl Fn(&Chunk) + Sync) {
    if workers.threads() <= 1 || chunks.len() <= 1 {
        chunks.iter().for_each(work);
        return;
    }
    let next = AtomicUsize::new(0);
    workers.run(|_| {
        while let Some(chunk) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
            work(chunk);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_once() {
        for threads in 1..=4 {
            for n_chunks in [0, 1, 3, 17] {
                let chunks: Vec<Chunk> = (0..n_chunks).map(|i| (i..i + 1, 0..1)).collect();
                let hits: Vec<AtomicUsize> = (0..n_chunks).map(|_| AtomicUsize::new(0)).collect();
                let workers = crate::backend::cpu::threads::reserve_workers(threads);
                run_chunks(&chunks, &workers, |(r, _)| {
                    hits[r.start].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn plans_cover_the_output_once() {
        let splits = [Split::Auto, Split::Columns, Split::Rows];
        for (split, shared) in splits.into_iter().flat_map(|s| [(s, false), (s, true)]) {
            for &(m, panels) in &[(1, 1), (1, 48), (7, 3), (300, 12), (2304, 192), (13, 3142)] {
                for (threads, tile) in (1..=5).flat_map(|t| [(t, (6, 1)), (t, (14, 2))]) {
                    let mut hits = vec![0u8; m * panels];
                    let parts = plan((m, panels), tile, threads, (split, shared));
                    assert!(parts.len() <= threads * CHUNKS_PER_THREAD);
                    if threads == 1 {
                        assert_eq!(parts, vec![(0..m, 0..panels)]);
                    }
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
                        "{split:?} {shared} {m} {panels} {threads}"
                    );
                }
            }
        }
    }

    /// Chunks stay large enough to pay for their repeated pass over the other operand, come in
    /// multiples of the thread count, and skinny products (x packed once) split finely.
    #[test]
    fn chunk_counts_follow_their_size() {
        let count = |m, panels, split| plan((m, panels), (14, 2), 2, split).len();
        assert_eq!(count(2304, 48, (Split::Rows, false)), 8); // 288 rows each
        assert_eq!(count(1024, 48, (Split::Rows, false)), 4);
        assert_eq!(count(600, 48, (Split::Rows, false)), 2);
        assert_eq!(count(256, 48, (Split::Rows, false)), 2);
        assert_eq!(count(256, 192, (Split::Columns, false)), 2); // 3072 columns
        assert_eq!(count(2304, 3142, (Split::Columns, false)), 8); // the unembedding
        assert_eq!(count(1, 36, (Split::Columns, true)), 8); // batch 1: x shared
    }
}
