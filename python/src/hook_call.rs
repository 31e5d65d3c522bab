//! Calling a Python hook `fn(activation, hook)` from inside a pass.

use std::cell::RefCell;
use std::rc::Rc;

use hooklens::{ActivationMut, HookContext, HookLensError as EngineError};
use numpy::{PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyType};

use crate::errors::to_py;
use crate::points::HookPointPy;
use crate::view::{borrow_view, release, REGISTRY_ATTR};

/// The first Python exception a pass's hooks raised (the pass stops there), with the hook's
/// name.
pub type ErrorSlot = Rc<RefCell<Option<(PyErr, String)>>>;

/// One Python hook function, ready to be called by the engine.
#[derive(Clone)]
pub struct PyHook<'py> {
    /// The function `fn(activation, hook)`.
    pub func: Bound<'py, PyAny>,
    /// `hooklens._view.ActivationView`.
    pub view_type: Bound<'py, PyType>,
    /// Where an exception goes.
    pub errors: ErrorSlot,
}

impl PyHook<'_> {
    /// Runs the function on the activation; a Python exception is kept in the slot and the
    /// pass is stopped with a hook error naming the point.
    pub fn call(&self, act: &mut ActivationMut<'_>, ctx: &HookContext<'_>) -> hooklens::Result<()> {
        match self.call_py(act, ctx) {
            Ok(()) => Ok(()),
            Err(err) => {
                let message = err.to_string();
                *self.errors.borrow_mut() = Some((err, ctx.name.to_string()));
                Err(EngineError::Hook {
                    name: ctx.name.to_string(),
                    message,
                })
            }
        }
    }

    fn call_py(&self, act: &mut ActivationMut<'_>, ctx: &HookContext<'_>) -> PyResult<()> {
        let py = self.func.py();
        let shape = act.shape().to_vec(); // TL shape, batch first
        let data = act.data_mut();
        // SAFETY: `data` is the engine's buffer for this slot, valid and unused by the engine
        // until this function returns; `release` below moves every array still pointing into
        // it onto a copy before we return. `view_type` subclasses numpy.ndarray.
        let view = unsafe { borrow_view(py, &self.view_type, data, &shape)? };
        let registry = PyList::empty(py);
        view.setattr(REGISTRY_ATTR, &registry)?;
        let hook = HookPointPy::new(ctx.name.to_string(), ctx.point.layer)
            .with_mask(ctx.attention_mask, shape.first().copied().unwrap_or(1));
        let outcome = self
            .func
            .call1((&view, hook))
            .and_then(|ret| replacement(py, ret, &view, &shape, ctx.name));
        // Whatever happened, the hook's arrays stop pointing into the buffer now.
        let released = release(py, view, &registry, data);
        if let Some(values) = outcome? {
            data.copy_from_slice(values.as_slice()?);
        }
        released.map(|_| ())
    }
}

/// What the hook returned, as a private f32 copy to write into the buffer: `None` when it
/// returned `None` or its own view (in-place edits stand), an error when the shape differs.
fn replacement<'py>(
    py: Python<'py>,
    ret: Bound<'py, PyAny>,
    view: &Bound<'py, PyAny>,
    shape: &[usize],
    name: &str,
) -> PyResult<Option<PyReadonlyArrayDyn<'py, f32>>> {
    if ret.is_none() || ret.is(view) {
        return Ok(None);
    }
    // A copy, even of a view of the buffer itself: the values are read while the buffer is
    // written.
    let np = py.import("numpy")?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("dtype", "float32")?;
    kwargs.set_item("order", "C")?;
    kwargs.set_item("copy", true)?;
    let arr = np.call_method("array", (ret,), Some(&kwargs))?;
    let arr = arr.downcast_into::<numpy::PyArrayDyn<f32>>()?;
    if arr.shape() != shape {
        return Err(to_py(EngineError::HookShape {
            name: name.to_string(),
            expected: shape.to_vec(),
            found: arr.shape().to_vec(),
        }));
    }
    Ok(Some(arr.readonly()))
}
