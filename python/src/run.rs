//! The passes: plain (GIL released), with Python hooks, with a cache.

use std::cell::RefCell;
use std::rc::Rc;

use hooklens::{
    ActivationCache, Hooks, Input, Model, NamesFilter, Output, PaddingSide, RunOptions, Tensor,
    TokenBatch,
};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple, PyType};

use crate::convert::{float_tensor, masked_batch, padded_token_batch};
use crate::errors::{input_error, IntoPyResult};
use crate::hook_call::{ErrorSlot, PyHook};
use crate::points::{points_matching, selector_of, Selector};

/// A pass's input, owned so that it can cross into a thread without the GIL.
pub enum OwnedInput {
    /// Token ids.
    Tokens(TokenBatch),
    /// A residual stream (for `start_at_layer`) and the tokens for a loss, if given.
    Residual(Tensor, Option<TokenBatch>),
}

impl OwnedInput {
    /// Reads a pass input: a float array is a residual stream `[batch, pos, d_model]`,
    /// anything else is tokens (text, texts padded on `tokens.side`, ids), with the
    /// spans of `tokens.mask` when given.
    pub fn read(
        model: &Model,
        input: &Bound<'_, PyAny>,
        tokens: &TokenOpts<'_, '_>,
    ) -> PyResult<Self> {
        if is_float_array(input)? {
            let toks = tokens.ids.map(|t| tokens.batch(model, t)).transpose()?;
            if toks.is_none() && tokens.mask.is_some() {
                return Err(input_error(
                    "attention_mask with a residual input needs tokens= (the mask is the tokens')",
                ));
            }
            return Ok(OwnedInput::Residual(float_tensor(input)?, toks));
        }
        Ok(OwnedInput::Tokens(tokens.batch(model, input)?))
    }

    /// The library's view of it.
    pub fn as_input(&self) -> Input<'_> {
        match self {
            OwnedInput::Tokens(t) => Input::Tokens(t),
            OwnedInput::Residual(resid, tokens) => Input::Residual {
                resid,
                tokens: tokens.as_ref(),
            },
        }
    }
}

/// How a pass reads its tokens: BOS, the side pads go on, and an explicit attention mask.
pub struct TokenOpts<'a, 'py> {
    /// The tokens of a residual-stream input (`tokens=`), if given.
    pub ids: Option<&'a Bound<'py, PyAny>>,
    /// Whether text gets BOS.
    pub prepend_bos: bool,
    /// Where the pads of shorter texts go.
    pub side: PaddingSide,
    /// TL's `attention_mask` `[batch, pos]`, if given.
    pub mask: Option<&'a Bound<'py, PyAny>>,
}

impl TokenOpts<'_, '_> {
    /// The token batch of `input`, padded and masked as these options say.
    fn batch(&self, model: &Model, input: &Bound<'_, PyAny>) -> PyResult<TokenBatch> {
        let tokens = padded_token_batch(model, input, self.prepend_bos, self.side)?;
        match self.mask {
            Some(mask) => masked_batch(&tokens, mask),
            None => Ok(tokens),
        }
    }
}

fn is_float_array(input: &Bound<'_, PyAny>) -> PyResult<bool> {
    if input.is_instance_of::<PyString>() || !input.hasattr("dtype")? {
        return Ok(false);
    }
    let kind: String = input.getattr("dtype")?.getattr("kind")?.extract()?;
    Ok(kind == "f")
}

/// What `run_with_cache` keeps, in a form that can cross threads.
pub enum FilterSpec {
    /// Every default point.
    All,
    /// These points.
    Names(Vec<Selector>),
}

impl FilterSpec {
    /// TL's `names_filter`: None, a name, a short-form tuple, a list of those, or a predicate
    /// over names (called here, once per name, before the pass).
    pub fn read(model: &Model, filter: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(f) = filter.filter(|f| !f.is_none()) else {
            return Ok(FilterSpec::All);
        };
        if f.is_instance_of::<PyString>() || f.is_instance_of::<PyTuple>() {
            return Ok(FilterSpec::Names(vec![selector_of(f)?]));
        }
        if let Ok(list) = f.downcast::<PyList>() {
            let names = list
                .iter()
                .map(|s| selector_of(&s))
                .collect::<PyResult<_>>()?;
            return Ok(FilterSpec::Names(names));
        }
        if f.is_callable() {
            let cfg = model.config();
            let matched = points_matching(cfg, &model.hook_points(true), f)?;
            return Ok(FilterSpec::Names(
                matched
                    .into_iter()
                    .map(|(_, name)| Selector::Name(name))
                    .collect(),
            ));
        }
        Err(input_error(
            "names_filter must be None, a name, a list of names or a function of a name",
        ))
    }

    fn to_filter(&self) -> NamesFilter {
        match self {
            FilterSpec::All => NamesFilter::All,
            FilterSpec::Names(v) => {
                NamesFilter::Names(v.iter().map(Selector::to_hook_selector).collect())
            }
        }
    }
}

/// A plain pass, with the GIL released.
pub fn forward(
    py: Python<'_>,
    model: &Model,
    input: &OwnedInput,
    opts: &RunOptions,
) -> PyResult<Output> {
    py.allow_threads(|| model.forward(input.as_input(), opts))
        .py_err()
}

/// A caching pass, with the GIL released.
pub fn with_cache(
    py: Python<'_>,
    model: &Model,
    input: &OwnedInput,
    filter: &FilterSpec,
    opts: &RunOptions,
) -> PyResult<(Output, ActivationCache)> {
    py.allow_threads(|| model.run_with_cache(input.as_input(), &filter.to_filter(), opts))
        .py_err()
}

/// A pass with Python hooks `[(name | tuple | predicate, fn)]`, caching the points of
/// `cache` if given; the GIL is held (the hooks are Python). A hook's exception is raised
/// from here with a note naming the hook point.
pub fn with_hooks<'py>(
    py: Python<'py>,
    model: &Model,
    input: &OwnedInput,
    fwd_hooks: &Bound<'py, PyAny>,
    cache: Option<&FilterSpec>,
    opts: &RunOptions,
) -> PyResult<(Output, Option<ActivationCache>)> {
    let (mut hooks, errors) = build_hooks(py, model, fwd_hooks)?;
    let filter = cache.map(FilterSpec::to_filter);
    let input = input.as_input();
    let result = model.run_with_interventions(input, Some(&mut hooks), filter.as_ref(), &[], opts);
    drop(hooks);
    raise_hook_error(py, &errors)?;
    result.py_err()
}

/// The engine's hooks for Python hooks `[(name | tuple | predicate, fn)]`, and the slot
/// their exceptions go to.
pub fn build_hooks<'py>(
    py: Python<'py>,
    model: &Model,
    fwd_hooks: &Bound<'py, PyAny>,
) -> PyResult<(Hooks<'py>, ErrorSlot)> {
    let view_type = py
        .import("hooklens._view")?
        .getattr("ActivationView")?
        .downcast_into::<PyType>()?;
    let errors: ErrorSlot = Rc::new(RefCell::new(None));
    let mut hooks = Hooks::new();
    for item in fwd_hooks.try_iter()? {
        let (sel, func): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?
            .extract()
            .map_err(|_| input_error("fwd_hooks is a list of (name, function) pairs"))?;
        let hook = PyHook {
            func,
            view_type: view_type.clone(),
            errors: Rc::clone(&errors),
        };
        for selector in hook_selectors(model, &sel)? {
            let h = hook.clone();
            hooks.add(selector.to_hook_selector(), move |act, ctx| {
                h.call(act, ctx)
            });
        }
    }
    Ok((hooks, errors))
}

/// Raises the first exception a pass's hooks raised, if any, with a note naming the hook
/// point.
pub fn raise_hook_error(py: Python<'_>, errors: &ErrorSlot) -> PyResult<()> {
    let raised = errors.borrow_mut().take();
    match raised {
        Some((err, name)) => {
            note(py, &err, &name);
            Err(err)
        }
        None => Ok(()),
    }
}

/// Checks that a hook selector names hook points of the model (a name, a `("z", 3)` tuple
/// or a predicate), so that `add_hook` fails at once on a bad name.
pub fn check_selector(model: &Model, sel: &Bound<'_, PyAny>) -> PyResult<()> {
    for selector in hook_selectors(model, sel)? {
        selector
            .to_hook_selector()
            .resolve(model.config())
            .py_err()?;
    }
    Ok(())
}

/// A name or short form as one selector; a predicate as the points it accepts.
fn hook_selectors(model: &Model, sel: &Bound<'_, PyAny>) -> PyResult<Vec<Selector>> {
    if sel.is_callable() && !sel.is_instance_of::<PyString>() {
        let matched = points_matching(model.config(), &model.hook_points(true), sel)?;
        return Ok(matched
            .into_iter()
            .map(|(p, _)| Selector::Point(p))
            .collect());
    }
    Ok(vec![selector_of(sel)?])
}

/// Adds "raised in the hook at `name`" to the exception's notes (Python 3.11+).
fn note(py: Python<'_>, err: &PyErr, name: &str) {
    let value = err.value(py);
    if value.hasattr("add_note").unwrap_or(false) {
        let _ = value.call_method1("add_note", (format!("raised in the hook at `{name}`"),));
    }
}
