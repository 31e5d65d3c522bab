//! The benchmark's cases: what one timed run of each does.

use std::hint::black_box;
use std::os::raw::{c_char, c_int, c_void};

use crate::error::{HookLensError, Result};
use crate::ffi::CHook;
use crate::hooks::intervention::{Intervention, Op};
use crate::sweep::flops::{full_pass_flops, last_logits_pass_flops};
use crate::sweep::{ablation_sweep, AblationMethod, AblationTarget, Metric, SweepOptions};
use crate::{
    HookKind, HookPoint, Hooks, Input, LogitPositions, Model, NamesFilter, RunOptions, TokenBatch,
};

/// One kind of work the benchmark times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Case {
    /// A plain forward pass.
    Plain,
    /// A plain pass with logits only at each sequence's last position (what sweeps and
    /// generation ask for: the last block runs its queries and MLP there alone).
    PlainLast,
    /// A do-nothing Rust closure registered at every default hook slot (it never reads its
    /// values, so those a fused kernel skips are never computed).
    EmptySlots,
    /// A read-only Rust closure at every default slot (sums the activation).
    ReadAll,
    /// `run_with_cache` of every default hook point.
    CacheAll,
    /// One built-in intervention: zero one head's `hook_z` in every sequence.
    BuiltinZeroHead,
    /// The same as a Rust closure at `hook_z`.
    ClosureZeroHead,
    /// The same as a C function through the C ABI's callback path (`hl_run_with_hook`).
    CCallbackZeroHead,
    /// The same as a Python hook through the Python package (another process).
    PythonZeroHead,
    /// The zero-ablation sweep of every head, batched by the sweep engine.
    SweepEngine,
    /// The same sweep, one full forward per head.
    SweepNaive,
}

impl Case {
    /// Every case, in the order they run.
    pub const ALL: [Case; 11] = [
        Case::Plain,
        Case::PlainLast,
        Case::EmptySlots,
        Case::ReadAll,
        Case::CacheAll,
        Case::BuiltinZeroHead,
        Case::ClosureZeroHead,
        Case::CCallbackZeroHead,
        Case::PythonZeroHead,
        Case::SweepEngine,
        Case::SweepNaive,
    ];

    /// The case's name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Case::Plain => "plain",
            Case::PlainLast => "plain_last",
            Case::EmptySlots => "empty_slots",
            Case::ReadAll => "read_all",
            Case::CacheAll => "cache_all",
            Case::BuiltinZeroHead => "builtin_zero_head",
            Case::ClosureZeroHead => "closure_zero_head",
            Case::CCallbackZeroHead => "c_callback_zero_head",
            Case::PythonZeroHead => "python_zero_head",
            Case::SweepEngine => "sweep_engine",
            Case::SweepNaive => "sweep_naive",
        }
    }

    /// Parses a comma-separated list of case names (`all` for every case).
    pub fn parse_list(text: &str) -> Result<Vec<Case>> {
        if text.trim() == "all" {
            return Ok(Case::ALL.to_vec());
        }
        let mut cases = Vec::new();
        for name in text.split(',').map(str::trim) {
            let case = Case::ALL
                .into_iter()
                .find(|c| c.name() == name)
                .ok_or_else(|| {
                    let known: Vec<_> = Case::ALL.iter().map(|c| c.name()).collect();
                    HookLensError::input(format!(
                        "--cases: unknown case `{name}` (known: all, {})",
                        known.join(", ")
                    ))
                })?;
            if !cases.contains(&case) {
                cases.push(case);
            }
        }
        Ok(cases)
    }

    /// True for the sweeps, which run once at the sweep's prompt, not per shape.
    pub fn is_sweep(self) -> bool {
        matches!(self, Case::SweepEngine | Case::SweepNaive)
    }

    /// The floating-point work of one run of a plain case at (batch, tokens), by the
    /// sweep engine's count (matrix products and attention; `None` for the other cases,
    /// whose hooks add work that count does not see).
    pub fn gflop(self, model: &Model, (batch, seq_len): (usize, usize)) -> Option<f64> {
        let cfg = model.config();
        let flop = match self {
            Case::Plain => full_pass_flops(cfg, batch, seq_len),
            Case::PlainLast => last_logits_pass_flops(cfg, batch, seq_len),
            _ => return None,
        };
        Some(flop / 1e9)
    }
}

/// The head the zero-head cases ablate: head 0 of the middle layer.
pub(crate) fn zeroed_head(model: &Model) -> (usize, usize) {
    (model.config().n_layers / 2, 0)
}

/// One timed run of an in-process pass case on `tokens`.
pub(crate) fn run_pass_case(model: &Model, case: Case, tokens: &TokenBatch) -> Result<()> {
    let opts = RunOptions::default();
    let (layer, head) = zeroed_head(model);
    let z = HookPoint::layer(HookKind::Z, layer);
    match case {
        Case::Plain => black_box(model.forward(tokens, &opts).map(drop)),
        Case::PlainLast => {
            let last = RunOptions {
                logits_at: LogitPositions::Last,
                ..RunOptions::default()
            };
            black_box(model.forward(tokens, &last).map(drop))
        }
        Case::EmptySlots => every_slot(model, tokens, |_| Ok(())),
        Case::ReadAll => every_slot(model, tokens, |act| {
            black_box(act.data().iter().sum::<f32>());
            Ok(())
        }),
        Case::CacheAll => {
            let (out, cache) = model.run_with_cache(tokens, &NamesFilter::All, &opts)?;
            black_box((out, cache));
            Ok(())
        }
        Case::BuiltinZeroHead => {
            let zero = Intervention::new(z, Op::Zero).at_heads(vec![head]);
            let each_row: Vec<_> = (0..tokens.batch()).map(|b| (b, zero.clone())).collect();
            let run =
                model.run_with_interventions(Input::Tokens(tokens), None, None, &each_row, &opts);
            black_box(run.map(drop))
        }
        Case::ClosureZeroHead => {
            let mut hooks = Hooks::new();
            hooks.add(z, move |act, _| zero_head_closure(act, head));
            black_box(model.run_with_hooks(tokens, &mut hooks, &opts).map(drop))
        }
        Case::CCallbackZeroHead => c_callback_zero_head(model, tokens, z, head),
        Case::PythonZeroHead | Case::SweepEngine | Case::SweepNaive => Err(HookLensError::input(
            format!("`{}` is not an in-process pass case", case.name()),
        )),
    }
}

/// A pass with `hook` registered at every default slot. A hook that never asks for its
/// values (`empty_slots`) leaves them uncomputed where a fused kernel skips them.
fn every_slot(
    model: &Model,
    tokens: &TokenBatch,
    hook: impl Fn(&mut crate::ActivationMut<'_>) -> Result<()>,
) -> Result<()> {
    let mut hooks = Hooks::new();
    for point in model.hook_points(false) {
        hooks.add(point, |act, _| hook(act));
    }
    black_box(model.run_with_hooks(tokens, &mut hooks, &RunOptions::default()))?;
    Ok(())
}

/// Zeros `head` of a `hook_z` value. act: `[batch, pos, n_heads, d_head]`
fn zero_head_closure(act: &mut crate::ActivationMut<'_>, head: usize) -> Result<()> {
    let (batch, pos) = (act.shape()[0], act.shape()[1]);
    for b in 0..batch {
        for p in 0..pos {
            act.slice_mut(&[b, p, head])?.fill(0.0);
        }
    }
    Ok(())
}

/// A C callback zeroing the head `*user` of a `[batch, pos, n_heads, d_head]` value.
unsafe extern "C" fn c_zero_head(
    _name: *const c_char,
    data: *mut f32,
    shape: *const i64,
    ndim: c_int,
    user: *mut c_void,
) -> c_int {
    if ndim != 4 {
        return 1;
    }
    // SAFETY: the C ABI's contract: `shape` holds `ndim` sizes and `data` their product of
    // values, valid and exclusive during the call; `user` is the `usize` head registered by
    // `c_callback_zero_head`, alive for the pass.
    let (dims, head) = unsafe {
        (
            std::slice::from_raw_parts(shape, 4),
            *(user as *const usize),
        )
    };
    let [rows, heads, d_head] = [
        (dims[0] * dims[1]) as usize,
        dims[2] as usize,
        dims[3] as usize,
    ];
    // SAFETY: as above: `data` holds rows * heads * d_head values.
    let values = unsafe { std::slice::from_raw_parts_mut(data, rows * heads * d_head) };
    for row in values.chunks_exact_mut(heads * d_head) {
        row[head * d_head..][..d_head].fill(0.0);
    }
    0
}

/// A pass with [`c_zero_head`] registered at `z` through the C ABI's callback path.
fn c_callback_zero_head(
    model: &Model,
    tokens: &TokenBatch,
    z: HookPoint,
    head: usize,
) -> Result<()> {
    let mut head = head;
    // SAFETY: c_zero_head follows hl_hook_fn's contract; `head` outlives the pass.
    let c_hook = unsafe { CHook::new(c_zero_head, (&mut head as *mut usize).cast()) };
    let mut hooks = Hooks::new();
    c_hook.register(&[z], &mut hooks);
    let out = model.run_with_hooks(tokens, &mut hooks, &RunOptions::default());
    drop(hooks);
    match c_hook.aborted() {
        0 => black_box(out.map(drop)),
        status => Err(HookLensError::input(format!(
            "the C callback returned {status}"
        ))),
    }
}

/// One run of the zero-ablation sweep of every head on `prompt`, batched or naive.
pub(crate) fn run_sweep_case(model: &Model, case: Case, prompt: &[u32]) -> Result<()> {
    let spec = ablation_sweep(model, prompt, AblationTarget::Heads, &AblationMethod::Zero)?;
    let target = *prompt.last().unwrap_or(&0);
    let metric = Metric::LogProb { target };
    let naive = case == Case::SweepNaive;
    black_box(spec.run(model, &metric, naive, &SweepOptions::default())?);
    Ok(())
}
