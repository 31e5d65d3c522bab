//! A model loaded onto a backend: its prepared weights and the arenas of its passes.
//! [`Loaded`] is the enum over backends at the public boundary, so [`Model`](super::Model)
//! and everything built on it (the C ABI, the Python package) stay non-generic.

use super::arena::ArenaPool;
use super::config::ModelConfig;
use super::forward::{last_block_positions, run_pass, LogitRows, PassInput, PassOutput, PassPlan};
use super::kv_cache::KvCache;
use super::weights::{check_sizes, Weights};
use crate::backend::{Backend, CpuBackend};
use crate::error::Result;
use crate::hooks::registry::SlotTable;
use crate::layout::{RealSpan, RowLayout};

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
        // A device backend reports a failed weight upload here, at load, not at the first pass.
        backend.check()?;
        Ok(Engine {
            backend,
            weights,
            arenas: ArenaPool::default(),
        })
    }

    /// A plain pass over every position of `batch` sequences of `seq` tokens, blocks
    /// `layers.0..layers.1`, padded when `spans` are given (one per sequence); `kv_out`
    /// receives every layer's keys and values. When only each sequence's last logits are
    /// wanted and nothing watches the last block, it computes only those positions past its
    /// keys and values.
    #[allow(clippy::too_many_arguments)]
    pub fn plain_pass(
        &self,
        cfg: &ModelConfig,
        input: PassInput<'_>,
        (batch, seq, layers): (usize, usize, (usize, usize)),
        spans: Option<&[RealSpan]>,
        logits: LogitRows,
        slots: &mut SlotTable<'_, '_>,
        kv_out: Option<&mut KvCache<B>>,
    ) -> Result<PassOutput> {
        let layout = RowLayout::full(batch, seq);
        let last_block = last_block_positions(cfg, (&layout, layers.1), spans, logits, slots);
        let plan = PassPlan {
            input,
            layout,
            layers,
            kv_prefix: None,
            kv_in_place: false,
            final_positions: last_block.as_deref(),
            logits,
            joiners: &[],
            after_block: None,
            spans,
        };
        run_pass(self, cfg, &plan, slots, kv_out)
    }
}

/// A model's engine on the backend it was loaded onto. (One per model: the variants' size
/// difference costs nothing worth a box.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Loaded {
    /// The CPU kernels.
    Cpu(Engine<CpuBackend>),
    /// A CUDA device (experimental).
    #[cfg(feature = "cuda")]
    Cuda(Engine<crate::backend::cuda::CudaBackend>),
}

/// Runs `$body` with `$engine` bound to the model's engine, whatever its backend (the body is
/// compiled once per backend: static dispatch inside it).
macro_rules! with_engine {
    ($loaded:expr, |$engine:ident| $body:expr) => {
        match $loaded {
            $crate::model::engine::Loaded::Cpu($engine) => $body,
            #[cfg(feature = "cuda")]
            $crate::model::engine::Loaded::Cuda($engine) => $body,
        }
    };
}
pub(crate) use with_engine;

/// Loads weights onto `device`: `$load` is compiled once per backend with `$backend` bound to
/// it, and its weights go into that backend's engine. On the CPU the weights come from the
/// packed-weight cache when `$cache` (a `&CacheRequest`) has a matching file, and what the
/// cache did is recorded on `$clock`; the weights are processed as `$cache.processing` says
/// (on a device: processed on the CPU, then uploaded). Evaluates to `Result<Loaded>`.
macro_rules! load_onto {
    ($device:expr, $cfg:expr, $cache:expr, $clock:expr, |$backend:ident| $load:expr) => {
        (|| -> $crate::error::Result<$crate::model::engine::Loaded> {
            match $device {
                $crate::device::Device::Cpu => {
                    let $backend = &$crate::backend::CpuBackend;
                    let (weights, used) =
                        $crate::model::weight_cache::cpu_weights($cache, $cfg, || $load)?;
                    $clock.record_cache(used);
                    let engine = $crate::model::engine::Engine::new(*$backend, weights, $cfg)?;
                    Ok($crate::model::engine::Loaded::Cpu(engine))
                }
                #[cfg(feature = "cuda")]
                $crate::device::Device::Cuda(n) => {
                    let owned = $crate::backend::cuda::CudaBackend::new(n)?;
                    let weights = if $cache.processing.any() {
                        // TL's processing runs on the CPU weights, which then go to the device.
                        let $backend = &$crate::backend::CpuBackend;
                        let (host, used) =
                            $crate::model::weight_cache::cpu_weights($cache, $cfg, || $load)?;
                        $clock.record_cache(used);
                        $crate::model::transfer::weights_onto(host, &owned)
                    } else {
                        let $backend = &owned;
                        $load?
                    };
                    let engine = $crate::model::engine::Engine::new(owned, weights, $cfg)?;
                    Ok($crate::model::engine::Loaded::Cuda(engine))
                }
                #[cfg(not(feature = "cuda"))]
                $crate::device::Device::Cuda(_) => Err($crate::error::HookLensError::Unsupported {
                    what: "this build has no CUDA backend".into(),
                }),
            }
        })()
    };
}
pub(crate) use load_onto;
