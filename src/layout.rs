//! Which rows a pass computes. A plain pass computes every position of every sequence
//! (`[batch, pos]`, TL's layout). A sweep pass computes, for each sequence, only the positions
//! an intervention can change (a suffix `start..seq_len`), packed one sequence after another,
//! and reuses the keys/values of the unchanged prefix from a base run. In the last layer it
//! may keep only the positions a metric reads.

/// The real (non-pad) positions of one padded sequence: `start..start + len`. Left padding
/// puts the pads before (`start` = the number of pads), right padding after (`start` = 0).
/// Attention masks every key outside the span; positions are counted from `start`, as TL's
/// `get_offset_position_ids` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealSpan {
    /// First real position.
    pub start: usize,
    /// Real positions (at least one).
    pub len: usize,
}

impl RealSpan {
    /// One past the last real position.
    pub fn end(&self) -> usize {
        self.start + self.len
    }

    /// True when `pos` holds a real token.
    pub fn contains(&self, pos: usize) -> bool {
        (self.start..self.end()).contains(&pos)
    }

    /// The position the model embeds (learned) or rotates to (rotary) at `pos`: TL's
    /// `clamp(cumsum(mask) - 1, min=0)`, i.e. `pos - start` at real positions, 0 before the
    /// span and `len - 1` after it.
    pub fn model_position(&self, pos: usize) -> usize {
        pos.saturating_sub(self.start)
            .min(self.len.saturating_sub(1))
    }

    /// The last key query `pos` may attend to, relative to `start`, or `None` when no real
    /// key is at or before it (a pad query of left padding, whose pattern row is all zeros).
    pub fn last_key(&self, pos: usize) -> Option<usize> {
        (pos >= self.start && self.len > 0).then(|| pos.min(self.end() - 1) - self.start)
    }
}

/// The rows of one sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqRows {
    /// Index of this sequence's first row in the packed buffers.
    pub offset: usize,
    /// Absolute positions of its rows, ascending.
    pub positions: Vec<usize>,
}

/// The packed rows of a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowLayout {
    /// Positions per sequence (the key length of attention).
    pub seq_len: usize,
    /// One entry per sequence (batch element).
    pub seqs: Vec<SeqRows>,
}

impl RowLayout {
    /// Every position of `batch` sequences of `seq_len`: the `[batch, pos]` layout.
    pub fn full(batch: usize, seq_len: usize) -> Self {
        RowLayout::from_positions(
            seq_len,
            (0..batch).map(|_| (0..seq_len).collect()).collect(),
        )
    }

    /// Sequence `s` computing positions `starts[s]..seq_len`.
    pub fn suffixes(seq_len: usize, starts: &[usize]) -> Self {
        RowLayout::from_positions(
            seq_len,
            starts.iter().map(|&s| (s..seq_len).collect()).collect(),
        )
    }

    /// A layout from explicit ascending positions per sequence.
    pub fn from_positions(seq_len: usize, positions: Vec<Vec<usize>>) -> Self {
        let mut offset = 0;
        let seqs = positions
            .into_iter()
            .map(|positions| {
                let rows = SeqRows { offset, positions };
                offset += rows.positions.len();
                rows
            })
            .collect();
        RowLayout { seq_len, seqs }
    }

    /// Total packed rows.
    pub fn rows(&self) -> usize {
        self.seqs.last().map_or(0, |s| s.offset + s.positions.len())
    }

    /// Number of sequences.
    pub fn batch(&self) -> usize {
        self.seqs.len()
    }

    /// True when every sequence computes every position (hooks see TL shapes).
    pub fn is_full(&self) -> bool {
        self.seqs.iter().all(|s| {
            s.positions.len() == self.seq_len
                && s.positions.iter().enumerate().all(|(i, &p)| i == p)
        })
    }

    /// `Some(start)` when every sequence computes the same contiguous positions
    /// `start..seq_len` (a full layout is `Some(0)`; generation's cached passes compute the
    /// new positions only): the rows then form a `[batch, seq_len - start, ...]` tensor.
    pub fn common_suffix_start(&self) -> Option<usize> {
        let first = self.seqs.first()?;
        let start = self.seq_len.checked_sub(first.positions.len())?;
        let is_suffix = |s: &SeqRows| {
            s.positions.len() == self.seq_len - start
                && s.positions.iter().enumerate().all(|(i, &p)| p == start + i)
        };
        self.seqs.iter().all(is_suffix).then_some(start)
    }

    /// The positions the first sequence computes: every sequence's where hooks see the pass
    /// (a full layout or a common suffix, [`RowLayout::common_suffix_start`]), the position
    /// axis of the tensors they see.
    pub fn positions_per_seq(&self) -> usize {
        self.seqs.first().map_or(0, |s| s.positions.len())
    }

    /// The packed row of sequence `seq` at absolute position `pos`, if computed.
    pub fn row_of(&self, seq: usize, pos: usize) -> Option<usize> {
        let s = self.seqs.get(seq)?;
        s.positions.binary_search(&pos).ok().map(|i| s.offset + i)
    }

    /// The layout keeping, in each sequence, only the positions in `keep` that it computes;
    /// with, for each new row, the old row it comes from.
    pub fn restrict(&self, keep: &[usize]) -> (RowLayout, Vec<usize>) {
        let mut sources = Vec::new();
        let positions = self
            .seqs
            .iter()
            .map(|s| {
                let mut kept = Vec::new();
                for (i, &p) in s.positions.iter().enumerate() {
                    if keep.contains(&p) {
                        kept.push(p);
                        sources.push(s.offset + i);
                    }
                }
                kept
            })
            .collect();
        (RowLayout::from_positions(self.seq_len, positions), sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_common_suffix_is_found_only_when_every_sequence_computes_it() {
        assert_eq!(RowLayout::full(2, 5).common_suffix_start(), Some(0));
        assert_eq!(
            RowLayout::suffixes(5, &[3, 3]).common_suffix_start(),
            Some(3)
        );
        assert_eq!(RowLayout::suffixes(5, &[3, 4]).common_suffix_start(), None);
        let gap = RowLayout::from_positions(5, vec![vec![2, 4]]);
        assert_eq!(gap.common_suffix_start(), None);
        let not_to_the_end = RowLayout::from_positions(5, vec![vec![1, 2]]);
        assert_eq!(not_to_the_end.common_suffix_start(), None);
        assert_eq!(
            RowLayout::from_positions(5, vec![]).common_suffix_start(),
            None
        );
    }

    #[test]
    fn suffix_rows_pack_one_sequence_after_another() {
        let l = RowLayout::suffixes(5, &[0, 3, 4]);
        assert_eq!(l.rows(), 5 + 2 + 1);
        assert_eq!(l.row_of(1, 3), Some(5));
        assert_eq!(l.row_of(1, 2), None);
        assert_eq!(l.row_of(2, 4), Some(7));
        assert!(!l.is_full());
        assert!(RowLayout::full(2, 3).is_full());
        let (r, src) = l.restrict(&[4]);
        assert_eq!(r.rows(), 3);
        assert_eq!(src, vec![4, 6, 7]);
    }

    #[test]
    fn span_positions_follow_tl_offset_position_ids() {
        // TL: mask 0 0 1 1 1 0 -> cumsum - 1 = -1 -1 0 1 2 2 -> clamped 0 0 0 1 2 2.
        let span = RealSpan { start: 2, len: 3 };
        let got: Vec<usize> = (0..6).map(|p| span.model_position(p)).collect();
        assert_eq!(got, vec![0, 0, 0, 1, 2, 2]);
        assert_eq!(span.last_key(1), None);
        assert_eq!(span.last_key(2), Some(0));
        assert_eq!(span.last_key(5), Some(2));
        assert!(span.contains(4) && !span.contains(5) && !span.contains(1));
    }
}
