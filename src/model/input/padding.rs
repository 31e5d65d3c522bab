//! Ragged batches: rows of different lengths padded to the longest, as TL's `to_tokens` on a
//! list of texts does, with the real positions of each row (the attention mask).

use super::TokenBatch;
use crate::error::{HookLensError, Result};
use crate::layout::RealSpan;
use crate::tensor::Tensor;

/// Where the pads of a shorter row go (TL's `tokenizer.padding_side`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaddingSide {
    /// After the real tokens (TL's default): real positions start at 0.
    #[default]
    Right,
    /// Before the real tokens: every row's last real token is at the last position.
    Left,
}

impl std::str::FromStr for PaddingSide {
    type Err = HookLensError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "left" => Ok(PaddingSide::Left),
            "right" => Ok(PaddingSide::Right),
            other => Err(HookLensError::input(format!(
                "padding side `{other}`: expected `left` or `right`"
            ))),
        }
    }
}

impl TokenBatch {
    /// Rows of any non-zero lengths, padded with `pad_id` to the longest on `side`. When all
    /// rows have the same length the batch has no pads (as [`TokenBatch::from_rows`]).
    pub fn padded<R: AsRef<[u32]>>(rows: &[R], side: PaddingSide, pad_id: u32) -> Result<Self> {
        if rows.is_empty() {
            return Err(HookLensError::input("the batch is empty"));
        }
        if let Some(b) = rows.iter().position(|r| r.as_ref().is_empty()) {
            return Err(HookLensError::input(format!("row {b} has no tokens")));
        }
        let seq = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
        if rows.iter().all(|r| r.as_ref().len() == seq) {
            return Self::from_rows(rows);
        }
        let mut ids = vec![pad_id; rows.len() * seq]; // [batch, seq]
        let mut spans = Vec::with_capacity(rows.len());
        for (b, row) in rows.iter().enumerate() {
            let row = row.as_ref();
            let start = match side {
                PaddingSide::Left => seq - row.len(),
                PaddingSide::Right => 0,
            };
            ids[b * seq + start..][..row.len()].copy_from_slice(row);
            spans.push(RealSpan {
                start,
                len: row.len(),
            });
        }
        Ok(TokenBatch {
            ids,
            batch: rows.len(),
            seq,
            spans: Some(spans),
        })
    }

    /// The same ids with TL's `attention_mask` (1 at real positions, 0 at pads) as their
    /// spans. Each row's 1s must be one non-empty run, and the padding one-sided for the whole
    /// batch: every padded row starts at 0 (right padding) or every one ends at the last
    /// position (left padding). A mask of 1s only gives a batch without pads. Anything else
    /// is an input error (the engine represents a row's real tokens as one span).
    /// mask: // [batch, seq]
    pub fn with_attention_mask(&self, mask: &[u8]) -> Result<Self> {
        let (batch, seq) = (self.batch, self.seq);
        if mask.len() != batch * seq {
            return Err(HookLensError::input(format!(
                "the attention mask has {} values, the tokens {batch}x{seq}",
                mask.len()
            )));
        }
        let spans = (0..batch)
            .map(|b| mask_span(b, &mask[b * seq..][..seq]))
            .collect::<Result<Vec<_>>>()?;
        one_side(&spans, seq)?;
        let padded = spans.iter().any(|s| s.len != seq);
        Ok(TokenBatch {
            ids: self.ids.clone(),
            batch,
            seq,
            spans: padded.then_some(spans),
        })
    }

    /// The real positions of each row, or `None` when the batch has no pads.
    pub fn spans(&self) -> Option<&[RealSpan]> {
        self.spans.as_deref()
    }

    /// The real positions of row `b`.
    pub fn span(&self, b: usize) -> RealSpan {
        match &self.spans {
            Some(spans) => spans[b],
            None => RealSpan {
                start: 0,
                len: self.seq,
            },
        }
    }

    /// The real tokens of row `b` (without its pads).
    pub fn real_row(&self, b: usize) -> &[u32] {
        let span = self.span(b);
        &self.row(b)[span.start..span.end()]
    }

    /// TL's `attention_mask`: 1 at real positions, 0 at pads. // [batch, seq]
    pub fn attention_mask(&self) -> Vec<u8> {
        (0..self.batch)
            .flat_map(|b| {
                let span = self.span(b);
                (0..self.seq).map(move |p| u8::from(span.contains(p)))
            })
            .collect()
    }

    /// [`TokenBatch::attention_mask`] as a tensor of 0.0 / 1.0. // [batch, seq]
    pub fn attention_mask_tensor(&self) -> Tensor {
        let data = self.attention_mask().into_iter().map(f32::from).collect();
        Tensor {
            data,
            shape: vec![self.batch, self.seq],
        }
    }
}

/// The one run of 1s in row `b` of an attention mask. // row: [seq]
fn mask_span(b: usize, row: &[u8]) -> Result<RealSpan> {
    if let Some(p) = row.iter().position(|&v| v > 1) {
        return Err(HookLensError::input(format!(
            "attention mask row {b} holds {} at position {p}: expected 0 (pad) or 1 (real)",
            row[p]
        )));
    }
    let Some(start) = row.iter().position(|&v| v == 1) else {
        return Err(HookLensError::input(format!(
            "attention mask row {b} has no real (1) position"
        )));
    };
    let len = row[start..].iter().take_while(|&&v| v == 1).count();
    if row[start + len..].contains(&1) {
        return Err(HookLensError::input(format!(
            "attention mask row {b} has pads between real positions; hooklens takes one run \
             of 1s per row (left or right padding)"
        )));
    }
    Ok(RealSpan { start, len })
}

/// Checks that the padded rows are all right-padded or all left-padded.
fn one_side(spans: &[RealSpan], seq: usize) -> Result<()> {
    let padded = || spans.iter().enumerate().filter(|(_, s)| s.len != seq);
    let right = padded().all(|(_, s)| s.start == 0);
    let left = padded().all(|(_, s)| s.end() == seq);
    if right || left {
        return Ok(());
    }
    let rows: Vec<String> = padded()
        .map(|(b, s)| format!("row {b}: positions {}..{}", s.start, s.end()))
        .collect();
    Err(HookLensError::input(format!(
        "the attention mask must pad every row on one side (all left or all right), got {}",
        rows.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_and_right_padding_place_pads_and_spans() {
        let rows = [vec![5, 6, 7], vec![8]];
        let left = TokenBatch::padded(&rows, PaddingSide::Left, 0).unwrap();
        assert_eq!(left.ids(), &[5, 6, 7, 0, 0, 8]);
        assert_eq!(left.span(1), RealSpan { start: 2, len: 1 });
        assert_eq!(left.real_row(1), &[8]);
        assert_eq!(left.attention_mask(), vec![1, 1, 1, 0, 0, 1]);
        let right = TokenBatch::padded(&rows, PaddingSide::Right, 9).unwrap();
        assert_eq!(right.ids(), &[5, 6, 7, 8, 9, 9]);
        assert_eq!(right.attention_mask(), vec![1, 1, 1, 1, 0, 0]);
        assert_eq!(right.real_row(0), &[5, 6, 7]);
    }

    #[test]
    fn equal_rows_have_no_pads_and_empty_rows_are_errors() {
        let even = TokenBatch::padded(&[vec![1, 2], vec![3, 4]], PaddingSide::Left, 0).unwrap();
        assert!(even.spans().is_none());
        assert_eq!(
            even,
            TokenBatch::from_rows(&[vec![1, 2], vec![3, 4]]).unwrap()
        );
        let err = TokenBatch::padded(&[vec![1], vec![]], PaddingSide::Left, 0).unwrap_err();
        assert!(err.to_string().contains("row 1 has no tokens"), "{err}");
        assert!("middle".parse::<PaddingSide>().is_err());
    }

    #[test]
    fn attention_masks_become_spans_or_errors() {
        let base = TokenBatch::from_rows(&[vec![1, 2, 3], vec![4, 5, 6]]).unwrap();
        let left = base.with_attention_mask(&[1, 1, 1, 0, 1, 1]).unwrap();
        assert_eq!(left.span(1), RealSpan { start: 1, len: 2 });
        assert_eq!(left.attention_mask(), vec![1, 1, 1, 0, 1, 1]);
        let right = base.with_attention_mask(&[1, 0, 0, 1, 1, 1]).unwrap();
        assert_eq!(right.span(0), RealSpan { start: 0, len: 1 });
        assert!(base.with_attention_mask(&[1; 6]).unwrap().spans().is_none());
        let bad = [
            (&[1, 1, 1, 0, 0, 0][..], "row 1 has no real"),
            (&[1, 0, 1, 1, 1, 1][..], "pads between real positions"),
            (&[0, 1, 1, 1, 1, 0][..], "one side"),
            (&[0, 1, 0, 1, 1, 1][..], "one side"),
            (&[1, 1, 2, 1, 1, 1][..], "holds 2 at position 2"),
            (&[1, 1, 1][..], "3 values, the tokens 2x3"),
        ];
        for (mask, want) in bad {
            let err = base.with_attention_mask(mask).unwrap_err();
            assert!(err.to_string().contains(want), "{mask:?}: {err}");
        }
    }
}
