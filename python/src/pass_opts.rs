//! The keyword options every pass takes (`attention_mask`, `loss_per_token`, `padding_side`,
//! `prepend_bos`, `start_at_layer`, `stop_at_layer`, `tokens`), read once for `forward`,
//! `run_with_hooks` and `run_with_cache`.

use hooklens::{Model, PaddingSide, RunOptions};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{padding_side, return_type};
use crate::run::{OwnedInput, TokenOpts};

/// A pass's options.
pub struct PassOpts<'py> {
    /// The library's options.
    pub opts: RunOptions,
    /// Whether text gets BOS (TL's default: yes).
    pub prepend_bos: bool,
    /// The tokens of a residual-stream input, for the loss.
    pub tokens: Option<Bound<'py, PyAny>>,
    /// Where the pads of shorter texts go (TL's default: right).
    pub padding_side: PaddingSide,
    /// TL's `attention_mask` `[batch, pos]` (1 real, 0 pad), if given.
    pub attention_mask: Option<Bound<'py, PyAny>>,
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
            padding_side: PaddingSide::Right,
            attention_mask: None,
        };
        for (key, value) in kwargs.into_iter().flat_map(|kw| kw.iter()) {
            let key: String = key.extract()?;
            match key.as_str() {
                "loss_per_token" => p.opts.loss_per_token = value.extract()?,
                "prepend_bos" => p.prepend_bos = value.extract()?,
                "start_at_layer" => p.opts.start_at_layer = value.extract()?,
                "stop_at_layer" => p.opts.stop_at_layer = value.extract()?,
                "tokens" => p.tokens = (!value.is_none()).then_some(value),
                "padding_side" => {
                    p.padding_side = padding_side(value.extract::<Option<String>>()?.as_deref())?
                }
                "attention_mask" => p.attention_mask = (!value.is_none()).then_some(value),
                k if also.contains(&k) => {}
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "unexpected keyword argument {other:?} (a pass takes attention_mask, \
                         loss_per_token, padding_side, prepend_bos, start_at_layer, \
                         stop_at_layer, tokens)"
                    )))
                }
            }
        }
        Ok(p)
    }

    /// The pass's input, read with these options.
    pub fn input(&self, model: &Model, input: &Bound<'py, PyAny>) -> PyResult<OwnedInput> {
        let tokens = TokenOpts {
            ids: self.tokens.as_ref(),
            prepend_bos: self.prepend_bos,
            side: self.padding_side,
            mask: self.attention_mask.as_ref(),
        };
        OwnedInput::read(model, input, &tokens)
    }
}
