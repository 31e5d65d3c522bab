//! Numpy arrays over the engine's own buffer while a hook runs, and what becomes of them when
//! it returns.
//!
//! During the call the hook gets an `ActivationView` (an `ndarray` subclass defined in
//! `hooklens/_view.py`) whose data pointer is the engine's buffer: no copy. Every array numpy
//! derives from it (slices, reshapes, transposes, ufunc outputs) is recorded, through
//! `__array_finalize__`, as a weak reference in a per-call registry. When the hook returns,
//! any of those arrays that is still alive and still points into the buffer has escaped the
//! hook; each is moved onto one private copy of the buffer taken at that moment (its data
//! pointer and base are rewritten), so a stale use reads that snapshot instead of memory the
//! engine is about to reuse or free.

use std::ffi::{c_int, c_void};
use std::ops::Range;
use std::ptr;

use numpy::npyffi::{self, npy_intp, PY_ARRAY_API};
use numpy::{Element, PyArray1, PyArrayDescrMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyType};

/// The attribute of an `ActivationView` holding its call's registry (a list of weakrefs).
pub const REGISTRY_ATTR: &str = "_hl_views";

/// A writable `subtype` array over `data`, C-contiguous in `shape`, with no base: numpy frees
/// only memory it owns, so it never frees `data`.
///
/// # Safety
/// `data` must stay valid and otherwise untouched for as long as the array (or anything
/// derived from it) can reach it: callers end that with [`release`] before `data` is used
/// again. `subtype` must be a subclass of `numpy.ndarray`.
pub unsafe fn borrow_view<'py>(
    py: Python<'py>,
    subtype: &Bound<'py, PyType>,
    data: &mut [f32],
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let mut dims: Vec<npy_intp> = shape.iter().map(|&d| d as npy_intp).collect();
    let descr = <f32 as Element>::get_dtype(py).into_dtype_ptr();
    let arr = PY_ARRAY_API.PyArray_NewFromDescr(
        py,
        subtype.as_type_ptr(),
        descr,
        dims.len() as c_int,
        dims.as_mut_ptr(),
        ptr::null_mut(), // C-order strides from the dims
        data.as_mut_ptr().cast::<c_void>(),
        npyffi::NPY_ARRAY_WRITEABLE,
        ptr::null_mut(),
    );
    Bound::from_owned_ptr_or_err(py, arr)
}

/// Ends the hook's access to `data`: every registered array that is still alive and points
/// into `data`, and `view` itself when something still holds it, is moved onto one private
/// copy of `data`. Returns how many arrays were moved.
pub fn release<'py>(
    py: Python<'py>,
    view: Bound<'py, PyAny>,
    registry: &Bound<'py, PyList>,
    data: &[f32],
) -> PyResult<usize> {
    let range = byte_range(data);
    let mut snapshot: Option<Bound<'py, PyArray1<f32>>> = None;
    let mut moved = 0;
    for weak in registry.iter() {
        let obj = weak.call0()?;
        if obj.is_none() || obj.is(&view) {
            continue;
        }
        moved += move_if_inside(py, &obj, &range, data, &mut snapshot)?;
    }
    // Our `view` holds one reference; any other is someone keeping the array itself.
    if view.get_refcnt() > 1 {
        moved += move_if_inside(py, &view, &range, data, &mut snapshot)?;
    }
    view.setattr(REGISTRY_ATTR, py.None())?;
    Ok(moved)
}

/// The addresses `data` occupies.
fn byte_range(data: &[f32]) -> Range<usize> {
    let start = data.as_ptr() as usize;
    start..start + std::mem::size_of_val(data)
}

/// Moves `obj` onto the snapshot when it is an ndarray whose data lies inside `range`.
fn move_if_inside<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    range: &Range<usize>,
    data: &[f32],
    snapshot: &mut Option<Bound<'py, PyArray1<f32>>>,
) -> PyResult<usize> {
    let Ok(arr) = obj.downcast::<numpy::PyUntypedArray>() else {
        return Ok(0);
    };
    let raw = arr.as_array_ptr();
    // SAFETY: `raw` is a live ndarray (we hold a reference); reading its data pointer is
    // what numpy's PyArray_DATA does.
    let at = unsafe { (*raw).data } as usize;
    if !range.contains(&at) {
        return Ok(0);
    }
    let copy = snapshot.get_or_insert_with(|| PyArray1::from_slice(py, data));
    // SAFETY: `raw` is a live ndarray whose data pointer lies `at - range.start` bytes into
    // the engine's buffer, and every element it can reach lies inside that buffer (it was
    // derived from the hook's view of exactly `data`). `copy` is an owned, contiguous copy of
    // the whole buffer, so the same offset addresses the same elements there. The array
    // takes a strong reference to `copy` as its base (keeping the memory alive) and gives up
    // its old base. Neither field is read concurrently: we hold the GIL.
    unsafe {
        let copy_data = (*copy.as_array_ptr()).data;
        (*raw).data = copy_data.add(at - range.start);
        let old_base = (*raw).base;
        (*raw).base = copy.clone().into_any().into_ptr();
        pyo3::ffi::Py_XDECREF(old_base);
    }
    obj.setattr(REGISTRY_ATTR, py.None())?;
    Ok(1)
}
