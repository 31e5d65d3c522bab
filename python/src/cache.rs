//! `ActivationCache`: the cached activations of `run_with_cache` as numpy arrays, indexed by
//! full name, TL 4.x alias or short form (`cache["z", 3]`, `cache["pattern", 0, "attn"]`).

use std::collections::HashMap;
use std::path::PathBuf;

use hooklens::hooks::{CacheSource, SavedCache};
use hooklens::{ActivationCache, HookPoint, ModelConfig, Tensor, TokenBatch};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::convert::{batch_to_numpy, tensor_to_numpy};
use crate::errors::{input_error, CacheFileError, IntoPyResult};
use crate::points::selector_of;

/// What a cache came from: the tokens of its pass (none for a residual-stream input without
/// `tokens=`), the prompts (texts), and the model's path or name.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The pass's tokens.
    pub tokens: Option<TokenBatch>,
    /// The model and prompts, as a saved cache records them.
    pub source: CacheSource,
}

/// Cached activations in firing order. Each value is a numpy array owned by the cache (the
/// engine's copy, moved, not copied again); indexing returns the same array every time.
#[pyclass(name = "ActivationCache", module = "hooklens", frozen)]
pub struct CachePy {
    names: Vec<String>,
    arrays: Vec<PyObject>,
    index: HashMap<HookPoint, usize>,
    cfg: ModelConfig,
    origin: Origin,
}

impl CachePy {
    /// Moves a library cache's tensors into numpy arrays; `origin` is what `save` records.
    pub fn new(
        py: Python<'_>,
        cache: ActivationCache,
        cfg: ModelConfig,
        origin: Origin,
    ) -> PyResult<Self> {
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
            origin,
        })
    }

    /// A cache read back from a file, with its tokens, prompts and model.
    pub fn from_saved(py: Python<'_>, saved: SavedCache, cfg: ModelConfig) -> PyResult<Self> {
        let tokens = TokenBatch::from_rows(&saved.tokens).ok();
        let origin = Origin {
            tokens,
            source: saved.source,
        };
        CachePy::new(py, saved.cache, cfg, origin)
    }

    /// A library cache of copies of the arrays' current values (edits included).
    fn to_library(&self, py: Python<'_>) -> PyResult<ActivationCache> {
        let mut entries = Vec::with_capacity(self.names.len());
        for (point, &i) in sorted_points(&self.index) {
            let arr = self.arrays[i].bind(py).downcast::<PyArrayDyn<f32>>()?;
            let shape = arr.shape().to_vec();
            let data = arr.readonly().as_array().iter().copied().collect(); // a copy, any layout
            entries.push((point, Tensor::new(data, shape).py_err()?));
        }
        Ok(ActivationCache::from_entries(entries, self.cfg.clone()))
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

    /// Writes the cache as a safetensors file with its tokens, prompts and model (the CLI's
    /// `--save-cache` format; `model.load_cache(path)` reads it back). A cache without
    /// tokens (a residual-stream pass without `tokens=`) cannot be saved.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let tokens = self.origin.tokens.as_ref().ok_or_else(|| {
            input_error("this cache has no tokens to save with it (pass tokens= to the pass)")
        })?;
        let cache = self.to_library(py)?;
        let source = &self.origin.source;
        py.allow_threads(|| cache.save_with_source(&path, tokens, source))
            .py_err()
    }

    /// The tokens of the pass (or of the file) the cache came from, int64 `[batch, pos]`;
    /// None when unknown.
    #[getter]
    fn tokens(&self, py: Python<'_>) -> PyResult<PyObject> {
        match &self.origin.tokens {
            Some(t) => batch_to_numpy(py, t),
            None => Ok(py.None()),
        }
    }

    /// The prompts the tokens came from (empty when the pass was given ids).
    #[getter]
    fn prompts(&self) -> Vec<String> {
        self.origin.source.prompts.clone()
    }

    fn __repr__(&self) -> String {
        format!("ActivationCache({} hook points)", self.names.len())
    }
}

/// The points in firing order (the order of their arrays).
fn sorted_points(index: &HashMap<HookPoint, usize>) -> Vec<(HookPoint, &usize)> {
    let mut points: Vec<(HookPoint, &usize)> = index.iter().map(|(p, i)| (*p, i)).collect();
    points.sort_by_key(|(_, i)| **i);
    points
}

/// Reads a cache file saved by `ActivationCache.save` (or the CLI's `--save-cache`) for a
/// model of configuration `cfg`; an unreadable or malformed file is a `CacheFileError`.
pub fn load_cache(py: Python<'_>, path: PathBuf, cfg: &ModelConfig) -> PyResult<CachePy> {
    let saved = py
        .allow_threads(|| ActivationCache::load_safetensors(&path, cfg))
        .map_err(|e| match e {
            hooklens::HookLensError::Io { .. } | hooklens::HookLensError::Format { .. } => {
                CacheFileError::new_err(e.to_string())
            }
            other => crate::errors::to_py(other),
        })?;
    CachePy::from_saved(py, saved, cfg.clone())
}
