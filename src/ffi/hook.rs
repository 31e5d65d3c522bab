//! C hook callbacks: the selector resolved to hook points, and the trampoline that hands the
//! engine's buffer to the C function.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};

use crate::error::{HookLensError, Result};
use crate::hooks::select::resolve_text;
use crate::hooks::{ActivationMut, HookContext, HookPoint, Hooks, NamesFilter};
use crate::model::config::ModelConfig;

/// A hook callback: called at each matching hook point with its TransformerLens name, the
/// engine's own buffer for the activation (`ndim` axes of sizes `shape[0..ndim]`, batch
/// first, row-major, writable in place: edits change the rest of the pass), and the `user`
/// pointer given with it. `name`, `data` and `shape` are valid only during the call. Return 0
/// to go on; a nonzero value aborts the pass and the run returns that value. It is called on
/// the thread that started the run.
#[allow(non_camel_case_types)]
pub type hl_hook_fn = Option<
    unsafe extern "C" fn(
        name: *const c_char,
        data: *mut f32,
        shape: *const i64,
        ndim: c_int,
        user: *mut c_void,
    ) -> c_int,
>;

/// The hook points a selector names: a full name or short form when it is one, else every
/// point whose name (or TL 4.x alias) the selector matches as a regex. A selector that is
/// neither is the unknown-name error, with the nearest names.
pub(crate) fn select_points(selector: &str, cfg: &ModelConfig) -> Result<Vec<HookPoint>> {
    let exact = match resolve_text(selector, cfg) {
        Ok(point) => return Ok(vec![point]),
        Err(e) => e,
    };
    match NamesFilter::regex_matching(selector, cfg) {
        Ok(filter) => filter.resolve(cfg),
        Err(_) => Err(exact),
    }
}

/// A C callback with its user pointer, and the status it aborted with (0 while it has not).
pub(crate) struct CHook {
    /// The callback.
    pub fun: unsafe extern "C" fn(*const c_char, *mut f32, *const i64, c_int, *mut c_void) -> c_int,
    /// Passed back to it.
    pub user: *mut c_void,
    /// The callback's nonzero return, once it aborted the pass.
    pub aborted: Cell<c_int>,
}

impl CHook {
    /// Registers the callback at every point, in firing order.
    pub fn register<'a>(&'a self, points: &[HookPoint], hooks: &mut Hooks<'a>) {
        // Names as C strings, made once per run, not per call.
        let names: HashMap<HookPoint, CString> = points
            .iter()
            .map(|p| (*p, CString::new(p.name()).unwrap_or_default()))
            .collect();
        let names = std::rc::Rc::new(names);
        for point in points {
            let names = std::rc::Rc::clone(&names);
            hooks.add(*point, move |act, ctx| {
                self.call(&names[&ctx.point], act, ctx)
            });
        }
    }

    /// One call of the callback on the engine's buffer.
    fn call(
        &self,
        name: &CString,
        act: &mut ActivationMut<'_>,
        ctx: &HookContext<'_>,
    ) -> Result<()> {
        let shape: Vec<i64> = act.shape().iter().map(|&d| d as i64).collect();
        let data = act.data_mut().as_mut_ptr();
        // SAFETY: `name` is NUL-terminated, `data` points to the activation's
        // `shape.iter().product()` floats and `shape` to `ndim` sizes, all alive for the
        // call; the callback's contract (hl_hook_fn) is to use them only during the call.
        let status = unsafe {
            (self.fun)(
                name.as_ptr(),
                data,
                shape.as_ptr(),
                shape.len() as c_int,
                self.user,
            )
        };
        if status == 0 {
            return Ok(());
        }
        self.aborted.set(status);
        Err(HookLensError::Hook {
            name: ctx.name.to_string(),
            message: format!("the C callback returned {status}, which aborts the pass"),
        })
    }
}
