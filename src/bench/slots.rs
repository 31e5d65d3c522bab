//! What one hook slot costs per fire, without kernels: empty, with a Rust closure, with a C
//! callback through the C ABI's trampoline.

use std::os::raw::{c_char, c_int, c_void};

use serde::Serialize;

use crate::error::Result;
use crate::ffi::CHook;
use crate::hooks::point::hook_points;
use crate::hooks::registry::{measure_empty_fire, measure_hook_fire};
use crate::{HookPoint, Hooks, ModelConfig};

/// Nanoseconds per fire of one slot.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SlotCosts {
    /// Nothing registered: what every unwatched slot of every pass costs.
    pub empty_ns: f64,
    /// A do-nothing Rust closure registered.
    pub rust_closure_ns: f64,
    /// A do-nothing C function registered through the C ABI's callback path.
    pub c_callback_ns: f64,
}

/// A C callback that does nothing.
unsafe extern "C" fn c_noop(
    _name: *const c_char,
    _data: *mut f32,
    _shape: *const i64,
    _ndim: c_int,
    _user: *mut c_void,
) -> c_int {
    0
}

/// Fires per measurement.
const FIRES: usize = 20_000;

/// The three costs, measured in `rounds` interleaved rounds; the fastest round of each
/// (the one least disturbed by other work on the machine).
pub fn measure_slot_costs(cfg: &ModelConfig, rounds: usize) -> Result<SlotCosts> {
    // Layer 0's default points (the opt-in ones change how the layer runs).
    let points: Vec<HookPoint> = (hook_points(cfg, false).into_iter())
        .filter(|p| p.layer == Some(0))
        .collect();
    // SAFETY: c_noop ignores its arguments and returns 0, so any user pointer will do.
    let c_hook = unsafe { CHook::new(c_noop, std::ptr::null_mut()) };
    let mut best = [f64::INFINITY; 3];
    for _ in 0..rounds.max(1) {
        best[0] = best[0].min(measure_empty_fire(cfg, FIRES)?);
        let mut rust = Hooks::new();
        for &p in &points {
            rust.add(p, |_, _| Ok(()));
        }
        best[1] = best[1].min(measure_hook_fire(cfg, &mut rust, FIRES)?);
        let mut c = Hooks::new();
        c_hook.register(&points, &mut c);
        best[2] = best[2].min(measure_hook_fire(cfg, &mut c, FIRES)?);
    }
    Ok(SlotCosts {
        empty_ns: best[0] * 1e9,
        rust_closure_ns: best[1] * 1e9,
        c_callback_ns: best[2] * 1e9,
    })
}
