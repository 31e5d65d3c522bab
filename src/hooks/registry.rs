//! Hook functions and the per-pass slot table that the forward pass fires into.
//!
//! Selectors are resolved to slot indices once per pass (`SlotTable::build`); firing an empty
//! slot is one indexed load and a length check: no allocation, no copy, no string compare.

use super::intervention::ResolvedIntervention;
use super::point::{slot_count, HookKind, HookPoint};
use super::select::HookSelector;
use super::values::{Deferred, HostValues, Ready};
use crate::backend::{Backend, CpuBackend};
use crate::copies::{for_purpose, Purpose};
use crate::error::{HookLensError, Result};
use crate::layout::RowLayout;
use crate::model::config::ModelConfig;
use crate::tensor::{sub_range, Tensor};

/// A mutable view of an activation in the engine's own buffer.
///
/// On the CPU the values are computed when a hook first reads or writes them
/// ([`ActivationMut::data`], [`ActivationMut::data_mut`], ...): a slot whose hooks touch
/// only the shape, the name or the context keeps the fused kernels that never materialise
/// the value, so a hook that acts in one layer and returns early in the others costs the
/// others nothing but the call.
pub struct ActivationMut<'a> {
    values: &'a mut (dyn HostValues + 'a),
    shape: &'a [usize],
    name: &'a str,
}

impl<'a> ActivationMut<'a> {
    /// The values, row-major in [`ActivationMut::shape`].
    pub fn data(&self) -> &[f32] {
        self.values.values()
    }

    /// The values, writable: edits change the rest of the pass.
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.values.values_mut()
    }

    /// The TL shape, batch first.
    pub fn shape(&self) -> &[usize] {
        self.shape
    }

    /// The contiguous block at a leading index, writable (e.g. `[b, p, h]` of `hook_z` is one
    /// head's `d_head` values).
    pub fn slice_mut(&mut self, index: &[usize]) -> Result<&mut [f32]> {
        let (start, len) = sub_range(self.shape, index)?;
        Ok(&mut self.data_mut()[start..start + len])
    }

    /// Replaces the whole activation; the shape must be the activation's own.
    pub fn set(&mut self, values: &[f32], shape: &[usize]) -> Result<()> {
        let len: usize = self.shape.iter().product();
        if shape != self.shape || values.len() != len {
            return Err(HookLensError::HookShape {
                name: self.name.to_string(),
                expected: self.shape.to_vec(),
                found: shape.to_vec(),
            });
        }
        self.data_mut().copy_from_slice(values);
        Ok(())
    }

    /// Replaces the whole activation with a tensor of the same shape.
    pub fn set_tensor(&mut self, t: &Tensor) -> Result<()> {
        self.set(&t.data, &t.shape)
    }
}

/// Where a hook is firing.
pub struct HookContext<'a> {
    /// The TL name, e.g. `blocks.0.attn.hook_z`.
    pub name: &'a str,
    /// The typed point.
    pub point: HookPoint,
    /// The activation's shape.
    pub shape: &'a [usize],
    /// In a padded batch, TL's `attention_mask`: 1 at real positions, 0 at pads, row-major
    /// `[batch, pos]`; `None` when every position is real.
    pub attention_mask: Option<&'a [u8]>,
    /// The absolute position of the activation's first position: 0, except in generation's
    /// passes over the new tokens with the KV cache, where an activation holds only those
    /// positions (`[batch, new, ...]`; scores and pattern `[batch, heads, new, pos so far]`).
    pub first_position: usize,
}

/// A hook function: reads and may edit the activation in place.
pub type HookFn<'a> = Box<dyn FnMut(&mut ActivationMut<'_>, &HookContext<'_>) -> Result<()> + 'a>;

/// A set of hooks to run a pass with, in registration order per point.
#[derive(Default)]
pub struct Hooks<'a> {
    pub(crate) entries: Vec<(HookSelector, HookFn<'a>)>,
}

impl<'a> Hooks<'a> {
    /// No hooks.
    pub fn new() -> Self {
        Hooks {
            entries: Vec::new(),
        }
    }

    /// Adds a hook at every point the selector names (`"blocks.0.hook_resid_pre"`,
    /// `("z", 3)`, `("scale", 2, "ln1")`, a [`HookPoint`] or [`HookSelector::predicate`]).
    pub fn add<S, F>(&mut self, selector: S, f: F) -> &mut Self
    where
        S: Into<HookSelector>,
        F: FnMut(&mut ActivationMut<'_>, &HookContext<'_>) -> Result<()> + 'a,
    {
        self.entries.push((selector.into(), Box::new(f)));
        self
    }

    /// True when no hook is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One slot's registrations.
#[derive(Default)]
struct Slot {
    hooks: Vec<usize>,
    cache: bool,
    /// (sequence, index into `SlotTable::interventions`).
    interventions: Vec<(usize, usize)>,
    name: String,
}

impl Slot {
    fn is_empty(&self) -> bool {
        !self.cache && self.hooks.is_empty() && self.interventions.is_empty()
    }
}

/// What the forward pass fires into: hooks, cache requests and built-in interventions,
/// resolved to dense slots.
pub(crate) struct SlotTable<'h, 'a> {
    slots: Vec<Slot>,
    hooks: Option<&'h mut Hooks<'a>>,
    interventions: &'h [ResolvedIntervention],
    n_layers: usize,
    cfg: &'h ModelConfig,
    /// Copies made for the cache, in firing order.
    pub(crate) cached: Vec<(HookPoint, Tensor)>,
    /// A padded batch's `attention_mask` (1 real, 0 pad), handed to hooks. `[batch, pos]`
    pub(crate) attention_mask: Option<Vec<u8>>,
}

impl<'h, 'a> SlotTable<'h, 'a> {
    /// Resolves every hook selector and every point to cache, failing before the pass on an
    /// unknown name. `interventions[i]` applies to sequence `intervention_seqs[i]`.
    pub(crate) fn build(
        cfg: &'h ModelConfig,
        hooks: Option<&'h mut Hooks<'a>>,
        cache_points: &[HookPoint],
        interventions: &'h [ResolvedIntervention],
        intervention_seqs: &[usize],
    ) -> Result<Self> {
        let n_layers = cfg.n_layers;
        let mut slots: Vec<Slot> = (0..slot_count(n_layers)).map(|_| Slot::default()).collect();
        if let Some(h) = hooks.as_deref() {
            for (i, (selector, _)) in h.entries.iter().enumerate() {
                for point in selector.resolve(cfg)? {
                    let slot = &mut slots[point.slot(n_layers)];
                    slot.hooks.push(i);
                    slot.name = point.name();
                }
            }
        }
        for point in cache_points {
            let slot = &mut slots[point.slot(n_layers)];
            slot.cache = true;
            slot.name = point.name();
        }
        for (i, (iv, &seq)) in interventions.iter().zip(intervention_seqs).enumerate() {
            let slot = &mut slots[iv.point.slot(n_layers)];
            slot.interventions.push((seq, i));
            slot.name = iv.point.name();
        }
        check_split_layers(&slots, interventions, n_layers)?;
        Ok(SlotTable {
            slots,
            hooks,
            interventions,
            n_layers,
            cfg,
            cached: Vec::new(),
            attention_mask: None,
        })
    }

    /// True when anything is registered at this point.
    #[inline]
    pub(crate) fn active(&self, point: HookPoint) -> bool {
        !self.slots[point.slot(self.n_layers)].is_empty()
    }

    /// True when nothing is registered at any point of block `layer`, of a later block or
    /// of the final norm and unembedding: what those compute is observed only through the
    /// logits.
    pub(crate) fn quiet_from_layer(&self, layer: usize) -> bool {
        let first = HookPoint::layer(HookKind::ResidPre, layer).slot(self.n_layers);
        self.slots[first.min(self.slots.len())..]
            .iter()
            .all(Slot::is_empty)
    }

    /// True when the opt-in per-head result is wanted in this layer.
    pub(crate) fn wants_result(&self, layer: usize) -> bool {
        self.active(HookPoint::layer(HookKind::Result, layer))
    }

    /// True when a per-head attention input (`hook_attn_in`, `hook_q_input`, ...) is watched
    /// in this layer, so the layer runs `ln1` and the q, k, v products per head.
    pub(crate) fn wants_split(&self, layer: usize) -> bool {
        split_watched(&self.slots, layer, self.n_layers)
    }

    /// Runs the hooks registered at `point` on `data` (laid out as `layout`), applies the
    /// built-in interventions, then copies the value into the cache if asked. An empty slot
    /// costs one indexed load on the host: the backend is not touched.
    #[inline]
    pub(crate) fn fire<B: Backend>(
        &mut self,
        backend: &B,
        point: HookPoint,
        data: &mut B::Buf,
        layout: &RowLayout,
    ) -> Result<()> {
        if self.slots[point.slot(self.n_layers)].is_empty() {
            return Ok(());
        }
        self.fire_slow(backend, point, data, layout, None)
    }

    /// [`SlotTable::fire`], with `Some(shape)` for a value whose shape is not the point's
    /// usual one: `ln1` applied to per-head inputs (`[batch, pos, heads, 1 | d_model]`, as
    /// TL's). Only hooks and the cache see such a value; interventions at it are refused by
    /// `build`.
    #[inline]
    pub(crate) fn fire_shaped<B: Backend>(
        &mut self,
        backend: &B,
        point: HookPoint,
        data: &mut B::Buf,
        layout: &RowLayout,
        shape: Option<Vec<usize>>,
    ) -> Result<()> {
        if self.slots[point.slot(self.n_layers)].is_empty() {
            return Ok(());
        }
        self.fire_slow(backend, point, data, layout, shape)
    }

    /// Fires `point` on a value the pass computes only if the slot needs it: `produce` runs
    /// the kernels that materialise it and returns the buffer. When only host closures are
    /// registered and buffers are host memory, `produce` runs when a closure first reads or
    /// writes the values, and not at all if none does; a cache request, a built-in
    /// intervention or a device backend runs it before firing. Returns true when the value
    /// was computed: the pass then continues from the buffer; false: nothing needed it, and
    /// the pass may take its fused kernels.
    pub(crate) fn fire_deferred<'b, B: Backend>(
        &mut self,
        backend: &B,
        (point, shape): (HookPoint, Option<Vec<usize>>),
        layout: &RowLayout,
        produce: impl FnOnce() -> &'b mut B::Buf,
    ) -> Result<bool> {
        let slot = &self.slots[point.slot(self.n_layers)];
        if slot.is_empty() {
            return Ok(false);
        }
        let hooks_only = slot.interventions.is_empty() && !slot.cache;
        let Some(hooks) = self
            .hooks
            .as_deref_mut()
            .filter(|_| B::HOST_BUFFERS && hooks_only)
        else {
            self.fire_slow(backend, point, produce(), layout, shape)?;
            return Ok(true);
        };
        let shape = shape.unwrap_or_else(|| observed_shape(point, self.cfg, layout));
        let ctx = HookContext {
            name: &slot.name,
            point,
            shape: &shape,
            attention_mask: self.attention_mask.as_deref(),
            first_position: first_position(slot, layout)?,
        };
        let mut values = Deferred::new(|| backend.host_slice_mut(produce()).unwrap_or_default());
        run_hooks(hooks, &slot.hooks, &mut values, &ctx)?;
        Ok(values.was_computed())
    }

    /// A watched slot: host closures on a host view of the buffer (the buffer itself on the
    /// CPU), then the built-in interventions as backend kernels, then the cache copy.
    #[cold]
    fn fire_slow<B: Backend>(
        &mut self,
        backend: &B,
        point: HookPoint,
        data: &mut B::Buf,
        layout: &RowLayout,
        shape: Option<Vec<usize>>,
    ) -> Result<()> {
        let slot = &self.slots[point.slot(self.n_layers)];
        let first_position = first_position(slot, layout)?;
        let shape = shape.unwrap_or_else(|| observed_shape(point, self.cfg, layout));
        if let (Some(hooks), false) = (self.hooks.as_deref_mut(), slot.hooks.is_empty()) {
            let ctx = HookContext {
                name: &slot.name,
                point,
                shape: &shape,
                attention_mask: self.attention_mask.as_deref(),
                first_position,
            };
            for_purpose(Purpose::HookViews, || {
                backend.with_host_mut(data, |host| {
                    run_hooks(hooks, &slot.hooks, &mut Ready(host), &ctx)
                })
            })?;
        }
        for_purpose(Purpose::Interventions, || {
            for &(seq, i) in &slot.interventions {
                backend.intervene(&self.interventions[i], data, layout, seq);
            }
        });
        if slot.cache {
            let data = for_purpose(Purpose::Cache, || backend.download(data));
            self.cached.push((point, Tensor { data, shape }));
        }
        Ok(())
    }
}

/// The absolute position of the first computed position, which every sequence of `layout`
/// must share when hooks or the cache observe `slot`.
fn first_position(slot: &Slot, layout: &RowLayout) -> Result<usize> {
    let observed = slot.cache || !slot.hooks.is_empty();
    match layout.common_suffix_start() {
        Some(start) => Ok(start),
        None if !observed => Ok(0),
        None => Err(HookLensError::input(format!(
            "hooks and caches need every sequence to compute the same positions; \
             `{}` is in a pass that computes different positions per sequence",
            slot.name
        ))),
    }
}

/// The TL shape of `point`'s value in a pass over `layout`, whose sequences compute the same
/// positions (all of them, or the new ones of a cached generation pass): the position axis
/// counts the computed positions; the key axis of scores and pattern counts every position.
fn observed_shape(point: HookPoint, cfg: &ModelConfig, layout: &RowLayout) -> Vec<usize> {
    let mut shape = point.shape(cfg, layout.batch(), layout.positions_per_seq());
    if matches!(point.kind, HookKind::AttnScores | HookKind::Pattern) {
        shape[3] = layout.seq_len; // [batch, n_heads, computed, seq_len]
    }
    shape
}

/// Runs the hooks `indices` of `hooks` on one activation, in registration order.
fn run_hooks(
    hooks: &mut Hooks<'_>,
    indices: &[usize],
    values: &mut dyn HostValues,
    ctx: &HookContext<'_>,
) -> Result<()> {
    for &i in indices {
        let mut act = ActivationMut {
            values: &mut *values,
            shape: ctx.shape,
            name: ctx.name,
        };
        (hooks.entries[i].1)(&mut act, ctx)?;
    }
    Ok(())
}

/// True when a per-head attention input of `layer` has anything registered.
fn split_watched(slots: &[Slot], layer: usize, n_layers: usize) -> bool {
    [
        HookKind::AttnIn,
        HookKind::QInput,
        HookKind::KInput,
        HookKind::VInput,
    ]
    .into_iter()
    .any(|k| !slots[HookPoint::layer(k, layer).slot(n_layers)].is_empty())
}

/// Refuses built-in interventions at `ln1` in a layer whose attention inputs are split per
/// head: `ln1` then runs once per q / k / v input with per-head shapes (as in TL), which the
/// intervention's layout does not describe.
fn check_split_layers(
    slots: &[Slot],
    interventions: &[ResolvedIntervention],
    n_layers: usize,
) -> Result<()> {
    for iv in interventions {
        let ln1 = matches!(iv.point.kind, HookKind::Ln1Scale | HookKind::Ln1Normalized);
        match iv.point.layer {
            Some(l) if ln1 && split_watched(slots, l, n_layers) => {
                return Err(HookLensError::input(format!(
                    "an intervention at `{}` cannot run in a layer whose attention inputs are \
                     split per head (hook_attn_in / hook_q_input / hook_k_input / hook_v_input \
                     are watched there, so ln1 has per-head shapes); intervene on the per-head \
                     input instead",
                    iv.point.name()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Measures what firing an empty slot costs: `iterations` fires at every per-layer point of
/// layer 0 on a table with nothing registered. Returns seconds per fire. (Published by
/// `hooklens bench`: multiplied by the fires per pass it bounds the cost of empty slots.)
pub fn measure_empty_fire(cfg: &ModelConfig, iterations: usize) -> Result<f64> {
    let mut table = SlotTable::build(cfg, None, &[], &[], &[])?;
    let points: Vec<HookPoint> = super::point::LAYER_KINDS
        .iter()
        .map(|&k| HookPoint::layer(k, 0))
        .collect();
    time_fires(&points, iterations, |p, buf, layout| {
        table.fire(&CpuBackend, std::hint::black_box(p), buf, layout)
    })
}

/// Measures what firing a watched slot costs: `iterations` fires at every per-layer point of
/// layer 0, each with `hooks` registered there (e.g. one do-nothing closure, or a C callback)
/// on a one-value buffer (the hooks must not read past it). Returns seconds per fire: the
/// call path of a pass (shape, context, the calls), without kernels.
pub fn measure_hook_fire(
    cfg: &ModelConfig,
    hooks: &mut Hooks<'_>,
    iterations: usize,
) -> Result<f64> {
    let mut table = SlotTable::build(cfg, Some(hooks), &[], &[], &[])?;
    let points: Vec<HookPoint> = super::point::LAYER_KINDS
        .iter()
        .map(|&k| HookPoint::layer(k, 0))
        .filter(|p| table.active(*p))
        .collect();
    time_fires(&points, iterations, |p, buf, layout| {
        table.fire_slow(&CpuBackend, p, buf, layout, None)
    })
}

/// Seconds per call of `fire` over `iterations` rounds of `points`, on a one-value buffer
/// of a one-token layout.
fn time_fires(
    points: &[HookPoint],
    iterations: usize,
    mut fire: impl FnMut(HookPoint, &mut Vec<f32>, &RowLayout) -> Result<()>,
) -> Result<f64> {
    let layout = RowLayout::full(1, 1);
    let mut buf = vec![0.0f32; 1];
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        for &p in points {
            fire(p, &mut buf, &layout)?;
        }
    }
    Ok(start.elapsed().as_secs_f64() / (iterations * points.len()).max(1) as f64)
}

/// Hook fires in one plain pass of a model (per-layer points plus the global ones; opt-in
/// points do not fire unless watched).
pub fn fires_per_pass(cfg: &ModelConfig) -> usize {
    super::point::hook_points(cfg, false).len()
}
