//! What a pass takes (tokens or a residual stream, options) and what it returns.

mod padding;

pub use padding::PaddingSide;

use super::config::ModelConfig;
use crate::error::{HookLensError, Result};
use crate::hooks::select::normalize_layer;
use crate::layout::RealSpan;
use crate::tensor::Tensor;

/// A batch of token sequences of one length `seq`: equal-length rows, or rows padded to the
/// longest ([`TokenBatch::padded`]) with the real positions of each row. // [batch, seq]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    ids: Vec<u32>,
    batch: usize,
    seq: usize,
    /// The real positions of each row; `None` when every position is real.
    spans: Option<Vec<RealSpan>>,
}

/// Parses the CLI's `--tokens 1, 2,3` form into ids: comma-separated non-negative integers,
/// blanks ignored. Fails with [`HookLensError::Input`] naming the first bad item.
pub fn parse_token_list(list: &str) -> Result<Vec<u32>> {
    parse_token_ids(list, "--tokens")
}

/// [`parse_token_list`] with `source` (a flag, or a file and line) opening the error.
pub fn parse_token_ids(list: &str, source: &str) -> Result<Vec<u32>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                HookLensError::input(format!(
                    "{source}: `{s}` is not a token id (expected comma-separated non-negative integers)"
                ))
            })
        })
        .collect()
}

impl TokenBatch {
    /// One sequence.
    pub fn single(ids: Vec<u32>) -> Result<Self> {
        Self::from_rows(&[ids])
    }

    /// Several sequences, which must all have the same non-zero length.
    pub fn from_rows<R: AsRef<[u32]>>(rows: &[R]) -> Result<Self> {
        let Some(first) = rows.first() else {
            return Err(HookLensError::input("the batch is empty"));
        };
        let seq = first.as_ref().len();
        if seq == 0 {
            return Err(HookLensError::input("a sequence has no tokens"));
        }
        let mut ids = Vec::with_capacity(rows.len() * seq);
        for (b, row) in rows.iter().enumerate() {
            let row = row.as_ref();
            if row.len() != seq {
                return Err(HookLensError::input(format!(
                    "sequences in a batch must have equal lengths: row 0 has {seq} tokens, row {b} has {}",
                    row.len()
                )));
            }
            ids.extend_from_slice(row);
        }
        Ok(TokenBatch {
            ids,
            batch: rows.len(),
            seq,
            spans: None,
        })
    }

    /// The ids, row-major.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Row `b`.
    pub fn row(&self, b: usize) -> &[u32] {
        &self.ids[b * self.seq..(b + 1) * self.seq]
    }

    /// Number of sequences.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Tokens per sequence.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// Checks ids against the vocabulary and the length against the context.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        if self.seq > cfg.n_ctx {
            return Err(HookLensError::SequenceTooLong {
                len: self.seq,
                n_ctx: cfg.n_ctx,
            });
        }
        if let Some(i) = self.ids.iter().position(|&t| t as usize >= cfg.d_vocab) {
            return Err(HookLensError::TokenOutOfRange {
                token: self.ids[i],
                at: (i / self.seq, i % self.seq),
                vocab: cfg.d_vocab,
            });
        }
        Ok(())
    }
}

/// The input of a pass.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Token ids, embedded by the model.
    Tokens(&'a TokenBatch),
    /// A residual stream entering block `start_at_layer` (TL's `start_at_layer`), with the
    /// tokens when a loss is wanted. resid: // [b, p, d_model]
    Residual {
        /// The residual stream.
        resid: &'a Tensor,
        /// Tokens for the loss, if any.
        tokens: Option<&'a TokenBatch>,
    },
}

impl<'a> From<&'a TokenBatch> for Input<'a> {
    fn from(t: &'a TokenBatch) -> Self {
        Input::Tokens(t)
    }
}

impl<'a> Input<'a> {
    /// (batch, seq) of the input.
    pub fn batch_seq(&self) -> (usize, usize) {
        match self {
            Input::Tokens(t) => (t.batch(), t.seq()),
            Input::Residual { resid, .. } => (
                resid.shape.first().copied().unwrap_or(0),
                resid.shape.get(1).copied().unwrap_or(0),
            ),
        }
    }

    /// The tokens, when known.
    pub fn tokens(&self) -> Option<&'a TokenBatch> {
        match self {
            Input::Tokens(t) => Some(t),
            Input::Residual { tokens, .. } => *tokens,
        }
    }

    /// Checks the input against the model.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        if let Some(t) = self.tokens() {
            t.validate(cfg)?;
        }
        if let Input::Residual { resid, tokens } = self {
            let ok = resid.shape.len() == 3
                && resid.shape[0] > 0
                && resid.shape[1] > 0
                && resid.shape[2] == cfg.d_model
                && resid.data.len() == resid.shape.iter().product::<usize>();
            if !ok {
                return Err(HookLensError::input(format!(
                    "a residual input must have shape [batch, pos, {}], got {:?}",
                    cfg.d_model, resid.shape
                )));
            }
            if resid.shape[1] > cfg.n_ctx {
                return Err(HookLensError::SequenceTooLong {
                    len: resid.shape[1],
                    n_ctx: cfg.n_ctx,
                });
            }
            if let Some(t) = tokens {
                if (t.batch(), t.seq()) != (resid.shape[0], resid.shape[1]) {
                    return Err(HookLensError::input(format!(
                        "tokens are {}x{} but the residual is {:?}",
                        t.batch(),
                        t.seq(),
                        resid.shape
                    )));
                }
            }
        }
        Ok(())
    }
}

/// What a pass returns (TL's `return_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReturnType {
    /// Logits.
    #[default]
    Logits,
    /// Mean next-token cross-entropy.
    Loss,
    /// Logits and loss.
    Both,
    /// Nothing (hooks and cache only); the unembedding is skipped.
    None,
}

/// Where logits are computed when only logits are returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogitPositions {
    /// Every position: logits // [b, p, vocab]
    #[default]
    All,
    /// The last position of each sequence: logits // [b, 1, vocab]
    ///
    /// When no hook, cache request or intervention is registered in the last block, at the
    /// final norm or at the unembedding, the last block computes keys and values at every
    /// position but its queries, attention, output projection, MLP and the final norm only
    /// at each sequence's last (real) position: nothing else can observe them.
    Last,
}

/// Options of a pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// What to return.
    pub return_type: ReturnType,
    /// With a loss, also return it per token // [b, p - 1]
    pub loss_per_token: bool,
    /// Start at this block; the input must then be a residual stream.
    pub start_at_layer: Option<i64>,
    /// Stop before this block and return the residual stream (negative counts from the end).
    pub stop_at_layer: Option<i64>,
    /// Which positions get logits (a loss always computes all).
    pub logits_at: LogitPositions,
}

impl RunOptions {
    /// Options returning this.
    pub fn returning(return_type: ReturnType) -> Self {
        RunOptions {
            return_type,
            ..Self::default()
        }
    }

    /// The blocks to run, `start..stop`.
    pub fn layer_range(&self, n_layers: usize) -> Result<(usize, usize)> {
        let resolve = |l: i64| -> Result<usize> {
            if l == n_layers as i64 {
                Ok(n_layers)
            } else {
                normalize_layer(l, n_layers)
            }
        };
        let start = self.start_at_layer.map(resolve).transpose()?.unwrap_or(0);
        let stop = self
            .stop_at_layer
            .map(resolve)
            .transpose()?
            .unwrap_or(n_layers);
        if start > stop {
            return Err(HookLensError::input(format!(
                "start_at_layer ({start}) is after stop_at_layer ({stop})"
            )));
        }
        Ok((start, stop))
    }
}

/// What a pass returned.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Logits, // [b, p, vocab] (or [b, 1, vocab] with `LogitPositions::Last`)
    pub logits: Option<Tensor>,
    /// Mean next-token loss.
    pub loss: Option<f32>,
    /// Per-token loss, // [b, p - 1]
    pub loss_per_token: Option<Tensor>,
    /// The residual stream when the pass stopped early, // [b, p, d_model]
    pub residual: Option<Tensor>,
}
