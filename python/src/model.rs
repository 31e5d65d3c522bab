//! `HookedTransformer`: loading, tokens, and the passes with TransformerLens' names.

use std::path::PathBuf;

use hooklens::hooks::CacheSource;
use hooklens::model::known::resolve_model_arg;
use hooklens::model::weight_cache::WeightCache;
use hooklens::{Device, LoadOptions, Model, TokenBatch};
use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::added_hooks::AddedHooks;
use crate::cache::{CachePy, Origin};
use crate::config::ConfigPy;
use crate::convert::{batch_to_numpy, output_to_py, rows_to_numpy, token_rows};
use crate::errors::{input_error, IntoPyResult};
use crate::pass_opts::PassOpts;
use crate::points::HookPointPy;
use crate::run::{forward, with_cache, with_hooks, FilterSpec, OwnedInput};

/// A loaded model with TransformerLens' `HookedTransformer` API on the hooklens engine.
#[pyclass(name = "HookedTransformer", module = "hooklens", frozen)]
pub struct ModelPy {
    pub(crate) model: Model,
    /// Hooks added with `add_hook` / `hooks(...)`, run in every pass.
    pub(crate) added: AddedHooks,
}

/// True for an existing path, or text with a directory separator or a `.gguf` ending.
fn looks_like_path(p: &std::path::Path) -> bool {
    p.exists() || p.components().count() > 1 || p.extension().is_some_and(|e| e == "gguf")
}

impl ModelPy {
    /// What a cache of a pass over `input` records: its tokens, its texts, this model.
    fn origin(&self, input: &Bound<'_, PyAny>, owned: &OwnedInput) -> PyResult<Origin> {
        let tokens = match owned {
            OwnedInput::Tokens(t) => Some(t.clone()),
            OwnedInput::Residual(_, t) => t.clone(),
        };
        let prompts = match input.downcast::<PyString>() {
            Ok(text) => vec![text.to_str()?.to_string()],
            Err(_) => input.extract::<Vec<String>>().unwrap_or_default(),
        };
        let source = CacheSource {
            model: self.model.source().display().to_string(),
            prompts,
            extra: Default::default(),
        };
        Ok(Origin { tokens, source })
    }
}

/// The load options of `load`'s four keywords, in TL's order.
fn processing(
    fold_ln: bool,
    center_writing_weights: bool,
    center_unembed: bool,
    fold_value_biases: bool,
) -> LoadOptions {
    LoadOptions {
        fold_ln,
        center_writing_weights,
        center_unembed,
        fold_value_biases,
    }
}

impl ModelPy {
    /// Loads `model` (a path, a known name, or None for the default model) onto `device` with
    /// TL's weight processing as `options` says, and the packed-weight cache
    /// `HOOKLENS_WEIGHT_CACHE` chooses (as the CLI).
    fn load_processed(
        py: Python<'_>,
        model: Option<PathBuf>,
        device: &str,
        options: LoadOptions,
    ) -> PyResult<Self> {
        let device = Device::parse(device).py_err()?;
        let path = match model {
            // A path (or what is meant as one): the loader's own error if it is not there.
            Some(p) if looks_like_path(&p) => p,
            // A known name, or None for the default model.
            other => {
                let arg = other.map(|p| p.to_string_lossy().into_owned());
                resolve_model_arg(arg.as_deref()).py_err()?
            }
        };
        let cache = WeightCache::from_env().py_err()?;
        let model = py
            .allow_threads(|| Model::load_with_options(&path, device, cache, options))
            .py_err()?;
        Ok(ModelPy {
            model,
            added: AddedHooks::default(),
        })
    }
}

#[pymethods]
impl ModelPy {
    /// Loads a model: an HF checkpoint directory, a `.gguf` file or a known name
    /// (`"smollm2-135m"`); `None` is the default model. `device` is "cpu", "auto" or "cuda".
    /// The four keywords are TL's weight processing, all off by default (the weights as the
    /// checkpoint has them, as the CLI's `--process none`); all four on is what TL's own
    /// `from_pretrained` does by default.
    #[staticmethod]
    #[pyo3(signature = (
        model=None,
        device="cpu",
        *,
        fold_ln=false,
        center_writing_weights=false,
        center_unembed=false,
        fold_value_biases=false,
    ))]
    fn load(
        py: Python<'_>,
        model: Option<PathBuf>,
        device: &str,
        fold_ln: bool,
        center_writing_weights: bool,
        center_unembed: bool,
        fold_value_biases: bool,
    ) -> PyResult<Self> {
        let options = processing(
            fold_ln,
            center_writing_weights,
            center_unembed,
            fold_value_biases,
        );
        Self::load_processed(py, model, device, options)
    }

    /// TL's name for [`ModelPy::load`], with the same keywords (and the same all-off
    /// defaults: pass all four as True for TL's `from_pretrained` weights).
    #[staticmethod]
    #[pyo3(signature = (
        model_name,
        device="cpu",
        *,
        fold_ln=false,
        center_writing_weights=false,
        center_unembed=false,
        fold_value_biases=false,
    ))]
    fn from_pretrained(
        py: Python<'_>,
        model_name: PathBuf,
        device: &str,
        fold_ln: bool,
        center_writing_weights: bool,
        center_unembed: bool,
        fold_value_biases: bool,
    ) -> PyResult<Self> {
        let options = processing(
            fold_ln,
            center_writing_weights,
            center_unembed,
            fold_value_biases,
        );
        Self::load_processed(py, Some(model_name), device, options)
    }

    /// TL's `from_pretrained_no_processing`: the checkpoint's weights, no processing.
    #[staticmethod]
    #[pyo3(signature = (model_name, device="cpu"))]
    fn from_pretrained_no_processing(
        py: Python<'_>,
        model_name: PathBuf,
        device: &str,
    ) -> PyResult<Self> {
        Self::load_processed(py, Some(model_name), device, LoadOptions::default())
    }

    /// The configuration with TL's field names.
    #[getter]
    fn cfg(&self) -> ConfigPy {
        ConfigPy::new(self.model.config(), self.model.device().to_string())
    }

    /// Where the model was loaded from.
    #[getter]
    fn source(&self) -> String {
        self.model.source().display().to_string()
    }

    /// Token ids `[batch, pos]` (int64) of a text or a list of texts; shorter texts are padded
    /// to the longest with the model's pad id on `padding_side` ("right", TL's default, or
    /// "left").
    #[pyo3(signature = (input, prepend_bos=true, padding_side=None))]
    fn to_tokens(
        &self,
        py: Python<'_>,
        input: &Bound<'_, PyAny>,
        prepend_bos: bool,
        padding_side: Option<&str>,
    ) -> PyResult<PyObject> {
        let side = crate::convert::padding_side(padding_side)?;
        let rows = token_rows(&self.model, input, prepend_bos)?;
        if rows.iter().all(|r| r.len() == rows[0].len()) {
            return rows_to_numpy(py, &rows); // no pads (an empty text included)
        }
        let batch = TokenBatch::padded(&rows, side, self.model.pad_id()).py_err()?;
        batch_to_numpy(py, &batch)
    }

    /// One string per token: of a text (tokenized first), of ids `[pos]`, or of `[batch, pos]`
    /// (a list per row; a batch of one gives one list, as TL).
    #[pyo3(signature = (input, prepend_bos=true))]
    fn to_str_tokens(
        &self,
        py: Python<'_>,
        input: &Bound<'_, PyAny>,
        prepend_bos: bool,
    ) -> PyResult<PyObject> {
        let rows = token_rows(&self.model, input, prepend_bos)?
            .iter()
            .map(|ids| self.model.to_str_tokens(ids))
            .collect::<hooklens::Result<Vec<_>>>()
            .py_err()?;
        if rows.len() == 1 {
            return Ok(rows[0].clone().into_pyobject(py)?.into_any().unbind());
        }
        Ok(rows.into_pyobject(py)?.into_any().unbind())
    }

    /// The text of ids `[pos]` (a string) or `[batch, pos]` (a list of strings).
    fn to_string(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let one_row = crate::convert::int_array(ids)?.ndim() <= 1;
        let tk = self.model.tokenizer().py_err()?;
        let texts = token_rows(&self.model, ids, false)?
            .iter()
            .map(|row| tk.decode(row))
            .collect::<hooklens::Result<Vec<_>>>()
            .py_err()?;
        if one_row {
            return Ok(texts[0].clone().into_pyobject(py)?.into_any().unbind());
        }
        Ok(texts.into_pyobject(py)?.into_any().unbind())
    }

    /// The id of a text that must be exactly one token (e.g. `" Paris"`).
    fn to_single_token(&self, text: &str) -> PyResult<u32> {
        self.model
            .tokenizer()
            .py_err()?
            .to_single_token(text)
            .py_err()
    }

    /// TL's `forward`: logits `[batch, pos, d_vocab]`, the loss, both, None, or the residual
    /// `[batch, pos, d_model]` with `stop_at_layer`. A float array input is a residual stream
    /// entering block `start_at_layer` (`tokens=` gives the loss its targets). A list of
    /// texts of different lengths is padded (`padding_side`) and its pads masked; ids take
    /// TL's `attention_mask` `[batch, pos]`. Keywords: `attention_mask`, `loss_per_token`,
    /// `padding_side`, `prepend_bos`, `start_at_layer`, `stop_at_layer`, `tokens`.
    #[pyo3(signature = (input, return_type=Some("logits"), **kwargs))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input: &Bound<'py, PyAny>,
        return_type: Option<&str>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<PyObject> {
        let p = PassOpts::read(return_type, kwargs, &[])?;
        let input = p.input(&self.model, input)?;
        let out = match self.hook_list(py, None)? {
            Some(hooks) => with_hooks(py, &self.model, &input, &hooks, None, &p.opts)?.0,
            None => forward(py, &self.model, &input, &p.opts)?,
        };
        output_to_py(py, out, p.opts.return_type)
    }

    /// `model(input, ...)` is `model.forward(input, ...)`.
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method("forward", args, kwargs)
    }

    /// A pass with hooks `[(name | ("z", 3) | predicate, fn)]`; `fn(activation, hook)` gets a
    /// writable numpy view of the engine's buffer (valid during the call only) and may edit
    /// it in place or return a same-shape array. Hooks added with `add_hook` / `hooks(...)`
    /// run first. Keywords as `forward`'s (and TL's `reset_hooks_end`, ignored: these hooks
    /// never outlive the call).
    #[pyo3(signature = (input, fwd_hooks=None, bwd_hooks=None, return_type=Some("logits"), **kwargs))]
    fn run_with_hooks<'py>(
        &self,
        py: Python<'py>,
        input: &Bound<'py, PyAny>,
        fwd_hooks: Option<&Bound<'py, PyAny>>,
        bwd_hooks: Option<&Bound<'py, PyAny>>,
        return_type: Option<&str>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<PyObject> {
        if bwd_hooks.is_some_and(|b| b.len().unwrap_or(1) > 0) {
            return Err(crate::errors::UnsupportedError::new_err(
                "bwd_hooks: hooklens runs forward passes only (no gradients)",
            ));
        }
        let p = PassOpts::read(return_type, kwargs, &["reset_hooks_end"])?;
        let input = p.input(&self.model, input)?;
        let out = match self.hook_list(py, fwd_hooks)? {
            Some(hooks) => with_hooks(py, &self.model, &input, &hooks, None, &p.opts)?.0,
            None => forward(py, &self.model, &input, &p.opts)?,
        };
        output_to_py(py, out, p.opts.return_type)
    }

    /// A pass that also returns an `ActivationCache` of the points `names_filter` selects
    /// (None: every default point; a name, a list, or a function of a name). Keywords as
    /// `forward`'s.
    #[pyo3(signature = (input, names_filter=None, return_type=Some("logits"), **kwargs))]
    fn run_with_cache<'py>(
        &self,
        py: Python<'py>,
        input: &Bound<'py, PyAny>,
        names_filter: Option<&Bound<'py, PyAny>>,
        return_type: Option<&str>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<(PyObject, CachePy)> {
        let p = PassOpts::read(return_type, kwargs, &[])?;
        let owned = p.input(&self.model, input)?;
        let filter = FilterSpec::read(&self.model, names_filter)?;
        let (out, cache) = match self.hook_list(py, None)? {
            Some(hooks) => {
                let (out, cache) =
                    with_hooks(py, &self.model, &owned, &hooks, Some(&filter), &p.opts)?;
                let cache = cache.ok_or_else(|| input_error("the pass returned no cache"))?;
                (out, cache)
            }
            None => with_cache(py, &self.model, &owned, &filter, &p.opts)?,
        };
        let origin = self.origin(input, &owned)?;
        let cache = CachePy::new(py, cache, self.model.config().clone(), origin)?;
        Ok((output_to_py(py, out, p.opts.return_type)?, cache))
    }

    /// Reads an activation cache saved by `ActivationCache.save` (or the CLI's
    /// `--save-cache`) for this model, its tokens in `cache.tokens`. A file that cannot be
    /// read or is not a hooklens cache raises `CacheFileError`.
    fn load_cache(&self, py: Python<'_>, path: PathBuf) -> PyResult<CachePy> {
        crate::cache::load_cache(py, path, self.model.config())
    }

    /// Every hook point, name to `HookPoint`, in firing order (opt-in points included).
    #[getter]
    fn hook_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for p in self.model.hook_points(true) {
            d.set_item(p.name(), HookPointPy::new(p.name(), p.layer))?;
        }
        Ok(d)
    }

    /// The TL 4.x aliases of a hook point's TL 2.x name.
    fn hook_aliases(&self, name: &Bound<'_, PyString>) -> PyResult<Vec<String>> {
        let name = name.to_str()?;
        let cfg = self.model.config();
        let points = hooklens::HookSelector::from(name).resolve(cfg).py_err()?;
        points
            .first()
            .map(|p| p.aliases(cfg))
            .ok_or_else(|| input_error(format!("{name} names no hook point")))
    }

    fn __repr__(&self) -> String {
        format!("HookedTransformer({:?})", self.model.source())
    }
}
