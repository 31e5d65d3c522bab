//! Keys and values of every layer for a batch of sequences, kept after a pass so that later
//! passes can reuse them: the sweep engine's variants read their base run's prefix from it
//! (and generation appends to it in place).

use super::config::ModelConfig;
use crate::backend::{Backend, CpuBackend};

/// Per layer the keys (after rotary) and values of `seqs` sequences at `positions` positions,
/// each `[seqs, positions, n_kv_heads, d_head]`.
pub struct KvCache<B: Backend = CpuBackend> {
    seqs: usize,
    positions: usize,
    width: usize,
    /// (keys, values) per layer, `None` until a pass has filled it.
    layers: Vec<Option<(B::Buf, B::Buf)>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `seqs` sequences of `positions` positions of a model.
    pub fn new(cfg: &ModelConfig, seqs: usize, positions: usize) -> Self {
        KvCache {
            seqs,
            positions,
            width: cfg.n_kv_heads * cfg.d_head,
            layers: (0..cfg.n_layers).map(|_| None).collect(),
        }
    }

    /// Sequences held.
    pub fn seqs(&self) -> usize {
        self.seqs
    }

    /// Positions per sequence.
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// Values per position (`n_kv_heads * d_head`).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Layer `l`'s keys and values, if a pass filled them.
    pub fn layer(&self, l: usize) -> Option<(&B::Buf, &B::Buf)> {
        self.layers.get(l)?.as_ref().map(|(k, v)| (k, v))
    }

    /// Layer `l`'s keys and values, writable (generation appends to them in place).
    pub(crate) fn layer_mut(&mut self, l: usize) -> Option<(&mut B::Buf, &mut B::Buf)> {
        self.layers.get_mut(l)?.as_mut().map(|(k, v)| (k, v))
    }

    /// Stores layer `l`'s keys and values (each `[seqs, positions, width]`).
    pub(crate) fn set_layer(&mut self, l: usize, keys: B::Buf, values: B::Buf) {
        if let Some(slot) = self.layers.get_mut(l) {
            *slot = Some((keys, values));
        }
    }
}
