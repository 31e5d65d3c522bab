//! A model loaded onto a backend: its prepared weights and the arenas of its passes.
//! [`Loaded`] is the enum over backends at the public boundary, so [`Model`](super::Model)
//! and everything built on it (the C ABI, the Python package) stay non-generic.

use super::arena::ArenaPool;
use super::config::ModelConfig;
use super::forward::{run_pass, LogitRows, PassInput, PassOutput, PassPlan};
use super::kv_cache::KvCache;
use super::weights::{check_sizes, Weights};
use crate::backend::{Backend, CpuBackend};
use crate::error::Result;
use crate::hooks::registry::SlotTable;
use crate::layout::RowLayout;

/// Weights prepared for backend `B`, and the arenas of the passes run on them.
pub(crate) struct Engine<B: Backend> {
    /// The backend.
    pub backend: B,
    /// The prepared weights.
    pub weights: Weights<B>,
    /// Arenas kept between passes (one per pass running at the same time).
    pub arenas: ArenaPool<B>,
}

impl<B: Backend> Engine<B> {
    /// An engine over weights prepared by `backend`, checked against the configuration.
    pub fn new(backend: B, weights: Weights<B>, cfg: &ModelConfig) -> Result<Self> {
        check_sizes(&backend, &weights, cfg)?;
        Ok(Engine {
            backend,
            weights,
            arenas: ArenaPool::default(),
        })
    }

    /// A plain pass over every position of `batch` sequences of `seq` tokens, blocks
    /// `layers.0..layers.1`; `kv_out` receives every layer's keys and values.
    pub fn plain_pass(
        &self,
        cfg: &ModelConfig,
        input: PassInput<'_>,
        (batch, seq, layers): (usize, usize, (usize, usize)),
        logits: LogitRows,
        slots: &mut SlotTable<'_, '_>,
        kv_out: Option<&mut KvCache<B>>,
    ) -> Result<PassOutput> {
        let plan = PassPlan {
            input,
            layout: RowLayout::full(batch, seq),
            layers,
            kv_prefix: None,
            final_positions: None,
            logits,
            joiners: &[],
            after_block: None,
        };
        run_pass(self, cfg, &plan, slots, kv_out)
    }
}

/// A model's engine on the backend it was loaded onto.
pub(crate) enum Loaded {
    /// The CPU kernels.
    Cpu(Engine<CpuBackend>),
}
