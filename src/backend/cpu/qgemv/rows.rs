//! The quantised rows of one weight matrix and the block types they may have.

use std::sync::Arc;

use crate::model::gguf::GgmlType;

/// A block format of ggml that the quantised products decode: 32 weights per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantKind {
    /// `d` (f16), 32 x i8 `q`: `w = q * d`.
    Q8_0,
    /// `d` (f16), 16 bytes of nibbles (low: weights 0..16, high: 16..32): `w = d * (q - 8)`.
    Q4_0,
    /// `d`, `m` (f16), nibbles as Q4_0: `w = d * q + m`.
    Q4_1,
}

/// [`QuantKind::Q8_0`] as a const parameter of the SIMD decoders.
pub(super) const KIND_Q8_0: u8 = 0;
/// [`QuantKind::Q4_0`] as a const parameter.
pub(super) const KIND_Q4_0: u8 = 1;
/// [`QuantKind::Q4_1`] as a const parameter.
pub(super) const KIND_Q4_1: u8 = 2;

/// Weights per block, for every kind.
pub const BLOCK: usize = 32;

impl QuantKind {
    /// The same type as the GGUF reader names it (whose `dequantize` is the loader's).
    pub fn ggml_type(self) -> GgmlType {
        match self {
            QuantKind::Q8_0 => GgmlType::Q8_0,
            QuantKind::Q4_0 => GgmlType::Q4_0,
            QuantKind::Q4_1 => GgmlType::Q4_1,
        }
    }

    /// The kind of a GGUF tensor type, if the quantised products decode it.
    pub fn from_ggml_type(ty: GgmlType) -> Option<QuantKind> {
        match ty {
            GgmlType::Q8_0 => Some(QuantKind::Q8_0),
            GgmlType::Q4_0 => Some(QuantKind::Q4_0),
            GgmlType::Q4_1 => Some(QuantKind::Q4_1),
            _ => None,
        }
    }

    /// Bytes of one block.
    pub fn block_bytes(self) -> usize {
        match self {
            QuantKind::Q8_0 => 34,
            QuantKind::Q4_0 => 18,
            QuantKind::Q4_1 => 20,
        }
    }
}

/// The stored bytes of a `[k, n]` weight matrix whose output column `j` is the quantised row
/// `row_of[j]` (or `j`) of `k` weights: `n` rows of `k / 32` blocks, back to back.
#[derive(Clone)]
pub struct QuantRows {
    bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    kind: QuantKind,
    k: usize,
    n: usize,
    row_of: Option<Arc<[u32]>>,
}

impl QuantRows {
    /// Rows at `start..` of `bytes`, or `None` when `k` is not a whole number of blocks, the
    /// bytes are too few for `n` rows, or `row_of` is not a permutation of `0..n`.
    pub fn new(
        bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
        start: usize,
        (kind, k, n): (QuantKind, usize, usize),
        row_of: Option<Vec<u32>>,
    ) -> Option<Self> {
        if k == 0 || !k.is_multiple_of(BLOCK) {
            return None;
        }
        let end = start.checked_add(n.checked_mul(k / BLOCK * kind.block_bytes())?)?;
        if end > (*bytes).as_ref().len() {
            return None;
        }
        if let Some(order) = &row_of {
            let mut seen = vec![false; n];
            let is_permutation = order.len() == n
                && order
                    .iter()
                    .all(|&r| (r as usize) < n && !std::mem::replace(&mut seen[r as usize], true));
            if !is_permutation {
                return None;
            }
        }
        Some(QuantRows {
            bytes,
            start,
            kind,
            k,
            n,
            row_of: row_of.map(Arc::from),
        })
    }

    /// The block type.
    pub fn kind(&self) -> QuantKind {
        self.kind
    }

    /// `(k, n)`: weights per row (the product's input width) and rows (its output width).
    pub fn shape(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// Bytes of one row.
    fn row_bytes(&self) -> usize {
        self.k / BLOCK * self.kind.block_bytes()
    }

    /// The stored row behind output column `j` (`j < n`). `[k / 32 blocks]`
    pub fn row(&self, j: usize) -> &[u8] {
        let r = self.row_of.as_ref().map_or(j, |o| o[j] as usize);
        let len = self.row_bytes();
        let at = self.start + r * len;
        &(*self.bytes).as_ref()[at..at + len]
    }
}

impl std::fmt::Debug for QuantRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantRows")
            .field("kind", &self.kind)
            .field("k", &self.k)
            .field("n", &self.n)
            .field("permuted", &self.row_of.is_some())
            .finish()
    }
}
