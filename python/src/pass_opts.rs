//! The keyword options every pass takes (`loss_per_token`, `prepend_bos`, `start_at_layer`,
//! `stop_at_layer`, `tokens`), read once for `forward`, `run_with_hooks` and `run_with_cache`.

use hooklens::{Model, RunOptions};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::return_type;
use crate::run::OwnedInput;

/// A pass's options.
pub struct PassOpts<'py> {
    /// The library's options.
    pub opts: RunOptions,
    /// Whether text gets BOS (TL's default: yes).
    pub prepend_bos: bool,
    /// The tokens of a residual-stream input, for the loss.
    pub tokens: Option<Bound<'py, PyAny>>,
}

impl<'py> PassOpts<'py> {
    /// Reads `return_type` and the keyword options; `also` names keywords the caller accepts
    /// and ignores. Any other keyword is a `TypeError`, as for a Python function.
    pub fn read(
        rt: Option<&str>,
        kwargs: Option<&Bound<'py, PyDict>>,
        also: &[&str],
    ) -> PyResult<Self> {
        let mut p = PassOpts {
            opts: RunOptions {
                return_type: return_type(rt)?,
                ..RunOptions::default()
            },
            prepend_bos: true,
            tokens: None,
        };
        for (key, value) in kwargs.into_iter().flat_map(|kw| kw.iter()) {
            let key: String = key.extract()?;
            match key.as_str() {
                "loss_per_token" => p.opts.loss_per_token = value.extract()?,
                "prepend_bos" => p.prepend_bos = value.extract()?,
                "start_at_layer" => p.opts.start_at_layer = value.extract()?,
                "stop_at_layer" => p.opts.stop_at_layer = value.extract()?,
                "tokens" => p.tokens = (!value.is_none()).then_some(value),
                k if also.contains(&k) => {}
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "unexpected keyword argument {other:?} (a pass takes loss_per_token, \
                         prepend_bos, start_at_layer, stop_at_layer, tokens)"
                    )))
                }
            }
        }
        Ok(p)
    }

    /// The pass's input, read with these options.
    pub fn input(&self, model: &Model, input: &Bound<'py, PyAny>) -> PyResult<OwnedInput> {
        OwnedInput::read(model, input, self.tokens.as_ref(), self.prepend_bos)
    }
}
