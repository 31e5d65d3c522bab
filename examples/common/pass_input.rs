//! Inputs of the pass-timing examples: arbitrary token batches (the same every run) and
//! their numeric arguments.

use hooklens::{Result, TokenBatch};

/// `batch` rows of `seq` arbitrary ids below `vocab` (the same for the same arguments).
pub fn arbitrary_tokens(batch: usize, seq: usize, vocab: usize) -> Result<TokenBatch> {
    let rows: Vec<Vec<u32>> = (0..batch)
        .map(|i| {
            (0..seq)
                .map(|j| ((i * 7919 + j * 104_729) % vocab) as u32)
                .collect()
        })
        .collect();
    TokenBatch::from_rows(&rows)
}

/// `s` as a number, or exit 2 with `usage`.
pub fn number_arg(usage: &str, s: &str) -> usize {
    s.parse().unwrap_or_else(|_| {
        eprintln!("{usage}: {s:?} is not a number");
        std::process::exit(2)
    })
}
