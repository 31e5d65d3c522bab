//! `ActivationCache`: the cached activations of `run_with_cache` as numpy arrays, indexed by
//! full name, TL 4.x alias or short form (`cache["z", 3]`, `cache["pattern", 0, "attn"]`).

use std::collections::HashMap;

use hooklens::{ActivationCache, HookPoint, ModelConfig};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::convert::tensor_to_numpy;
use crate::errors::{input_error, IntoPyResult};
use crate::points::selector_of;

/// Cached activations in firing order. Each value is a numpy array owned by the cache (the
/// engine's copy, moved, not copied again); indexing returns the same array every time.
#[pyclass(name = "ActivationCache", module = "hooklens", frozen)]
pub struct CachePy {
    names: Vec<String>,
    arrays: Vec<PyObject>,
    index: HashMap<HookPoint, usize>,
    cfg: ModelConfig,
}

impl CachePy {
    /// Moves a library cache's tensors into numpy arrays.
    pub fn new(py: Python<'_>, cache: ActivationCache, cfg: ModelConfig) -> PyResult<Self> {
        let mut names = Vec::with_capacity(cache.len());
        let mut arrays = Vec::with_capacity(cache.len());
        let mut index = HashMap::with_capacity(cache.len());
        for (i, (point, tensor)) in cache.into_entries().into_iter().enumerate() {
            names.push(point.name());
            arrays.push(tensor_to_numpy(py, tensor)?);
            index.insert(point, i);
        }
        Ok(CachePy {
            names,
            arrays,
            index,
            cfg,
        })
    }

    /// The position of the one point a key names, or why not.
    fn position(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        let selector = selector_of(key)?;
        let points = selector.to_hook_selector().resolve(&self.cfg).py_err()?;
        let [point] = points.as_slice() else {
            return Err(input_error(format!(
                "{key} names {} hook points; index by one",
                points.len()
            )));
        };
        self.index.get(point).copied().ok_or_else(|| {
            input_error(format!(
                "`{}` is a valid hook point but was not cached (widen names_filter)",
                point.name()
            ))
        })
    }
}

#[pymethods]
impl CachePy {
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        Ok(self.arrays[self.position(key)?].clone_ref(py))
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> bool {
        self.position(key).is_ok()
    }

    fn __len__(&self) -> usize {
        self.names.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, &self.names)?
            .into_any()
            .try_iter()
            .map(|i| i.into_any())
    }

    /// The cached points' TL 2.x names, in firing order.
    fn keys(&self) -> Vec<String> {
        self.names.clone()
    }

    /// The arrays, in firing order.
    fn values(&self, py: Python<'_>) -> Vec<PyObject> {
        self.arrays.iter().map(|a| a.clone_ref(py)).collect()
    }

    /// `(name, array)` pairs, in firing order.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.names
            .iter()
            .zip(&self.arrays)
            .map(|(n, a)| PyTuple::new(py, [n.into_pyobject(py)?.into_any(), a.bind(py).clone()]))
            .collect()
    }

    /// The cache as a plain dict, name to array (TL's `cache.cache_dict`).
    #[getter]
    fn cache_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (n, a) in self.names.iter().zip(&self.arrays) {
            d.set_item(n, a)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("ActivationCache({} hook points)", self.names.len())
    }
}
