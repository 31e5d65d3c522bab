//! C hook callbacks: the selector resolved to hook points, and the trampoline that hands the
//! engine's buffer to the C function.

use std::cell::Cell;
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

/// The most axes an activation has (TL shapes have at most 5).
const MAX_DIMS: usize = 8;

/// The C callback type without the `Option` of a nullable pointer.
pub type CHookFn =
    unsafe extern "C" fn(*const c_char, *mut f32, *const i64, c_int, *mut c_void) -> c_int;

/// A C callback with its user pointer, registered as ordinary hooks: what `hl_run_with_hook`
/// runs, public so that `hooklens bench` can time the same path.
pub struct CHook {
    fun: CHookFn,
    user: *mut c_void,
    /// The callback's nonzero return, once it aborted the pass (0 while it has not).
    aborted: Cell<c_int>,
}

impl CHook {
    /// A callback and the pointer passed back to it.
    ///
    /// # Safety
    /// `fun` follows [`hl_hook_fn`]'s contract, and `user` is what it expects, valid for as
    /// long as the hooks it is registered with may fire.
    pub unsafe fn new(fun: CHookFn, user: *mut c_void) -> Self {
        CHook {
            fun,
            user,
            aborted: Cell::new(0),
        }
    }

    /// The status the callback aborted the pass with, 0 when it did not.
    pub fn aborted(&self) -> c_int {
        self.aborted.get()
    }

    /// Registers the callback at every point, in firing order.
    pub fn register<'a>(&'a self, points: &[HookPoint], hooks: &mut Hooks<'a>) {
        for point in points {
            // The name as a C string, made once per registration, not per call.
            let name = CString::new(point.name()).unwrap_or_default();
            hooks.add(*point, move |act, ctx| self.call(&name, act, ctx));
        }
    }

    /// One call of the callback on the engine's buffer.
    fn call(
        &self,
        name: &CString,
        act: &mut ActivationMut<'_>,
        ctx: &HookContext<'_>,
    ) -> Result<()> {
        let mut dims = [0i64; MAX_DIMS]; // no allocation per call
        let ndim = act.shape().len();
        if ndim > MAX_DIMS {
            return Err(HookLensError::unsupported(format!(
                "an activation of {ndim} axes"
            )));
        }
        for (d, &size) in dims.iter_mut().zip(act.shape()) {
            *d = size as i64;
        }
        let data = act.data_mut().as_mut_ptr();
        // SAFETY: `name` is NUL-terminated, `data` points to the activation's values (the
        // product of its sizes) and `dims` to its `ndim` sizes, all alive for the call; the
        // callback's contract (hl_hook_fn) is to use them only during the call.
        let status =
            unsafe { (self.fun)(name.as_ptr(), data, dims.as_ptr(), ndim as c_int, self.user) };
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
