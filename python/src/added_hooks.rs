//! Hooks added to the model, as TL's `add_hook`, `reset_hooks` and the `with model.hooks(...)`
//! context manager: they run in every later pass (`forward`, `run_with_hooks`,
//! `run_with_cache`, `generate`) until removed.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors::{input_error, UnsupportedError};
use crate::model::ModelPy;

/// One added hook.
struct AddedHook {
    /// A name, a `("z", 3)` tuple or a predicate over names.
    selector: Py<PyAny>,
    /// `fn(activation, hook)`.
    func: Py<PyAny>,
    /// Kept by `reset_hooks()` unless `including_permanent`.
    permanent: bool,
    /// The `hooks(...)` context it was added in (removed when that context ends).
    context: Option<u64>,
}

/// The hooks added to one model, and the `hooks(...)` contexts open on it.
#[derive(Default)]
pub struct AddedHooks {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    hooks: Vec<AddedHook>,
    /// Open contexts, innermost last.
    open: Vec<u64>,
    next_context: u64,
}

impl AddedHooks {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when no hook is added.
    pub fn is_empty(&self) -> bool {
        self.state().hooks.is_empty()
    }

    /// The added hooks as `(selector, fn)` pairs, in the order they were added (they run in
    /// that order, before a pass's own `fwd_hooks`).
    pub fn pairs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for h in &self.state().hooks {
            list.append((h.selector.clone_ref(py), h.func.clone_ref(py)))?;
        }
        Ok(list)
    }

    /// Adds a hook, in the innermost open context if any.
    fn add(&self, selector: Py<PyAny>, func: Py<PyAny>, permanent: bool) {
        let mut state = self.state();
        let context = state.open.last().copied().filter(|_| !permanent);
        state.hooks.push(AddedHook {
            selector,
            func,
            permanent,
            context,
        });
    }

    /// Removes every hook that is not permanent (every hook with `including_permanent`).
    fn reset(&self, including_permanent: bool) {
        self.state()
            .hooks
            .retain(|h| h.permanent && !including_permanent);
    }

    /// Opens a context; its id.
    fn open(&self) -> u64 {
        let mut state = self.state();
        let id = state.next_context;
        state.next_context += 1;
        state.open.push(id);
        id
    }

    /// Closes a context, removing its hooks when `remove`.
    fn close(&self, id: u64, remove: bool) {
        let mut state = self.state();
        state.open.retain(|&c| c != id);
        if remove {
            state.hooks.retain(|h| h.context != Some(id));
        }
    }
}

impl ModelPy {
    /// The hooks a pass runs: the added ones, then `extra` (a pass's own `fwd_hooks`);
    /// `None` when there are none (the pass then runs with the GIL released).
    pub(crate) fn hook_list<'py>(
        &self,
        py: Python<'py>,
        extra: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let list = self.added.pairs(py)?;
        if let Some(extra) = extra.filter(|e| !e.is_none()) {
            for item in extra.try_iter()? {
                list.append(item?)?;
            }
        }
        Ok((!list.is_empty()).then_some(list))
    }

    /// Refuses to run `what` (a built-in sweep, which runs its own batched passes) while
    /// hooks are added: they would not run in it, and its numbers would silently differ.
    pub(crate) fn require_no_added_hooks(&self, what: &str) -> PyResult<()> {
        if self.added.is_empty() {
            return Ok(());
        }
        Err(input_error(format!(
            "{what} does not run added hooks (add_hook / hooks(...)); call reset_hooks() \
             first, or express the edit as an intervention"
        )))
    }
}

/// Refuses a hook direction other than forward (hooklens has no backward pass).
fn forward_only(dir: &str) -> PyResult<()> {
    match dir {
        "fwd" => Ok(()),
        "bwd" | "both" => Err(UnsupportedError::new_err(
            "backward hooks: hooklens runs forward passes only (no gradients)",
        )),
        other => Err(input_error(format!(
            "dir must be \"fwd\" (or TL's \"bwd\", unsupported), got {other:?}"
        ))),
    }
}

/// Checks a hook function and its selector's form (the points it names are resolved at
/// each pass, as for `run_with_hooks`).
fn checked_pair<'py>(
    selector: &Bound<'py, PyAny>,
    func: &Bound<'py, PyAny>,
) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    if !func.is_callable() {
        return Err(input_error("a hook is a function fn(activation, hook)"));
    }
    Ok((selector.clone().unbind(), func.clone().unbind()))
}

#[pymethods]
impl ModelPy {
    /// TL's `add_hook`: `hook` runs at the points `name` selects (a name, `("z", 3)` or a
    /// predicate over names) in every later pass and in `generate`, until `reset_hooks()`
    /// (or the end of the enclosing `with model.hooks(...)`). `is_permanent` hooks survive
    /// `reset_hooks()` unless `including_permanent=True`.
    #[pyo3(signature = (name, hook, dir="fwd", is_permanent=false))]
    fn add_hook(
        &self,
        name: &Bound<'_, PyAny>,
        hook: &Bound<'_, PyAny>,
        dir: &str,
        is_permanent: bool,
    ) -> PyResult<()> {
        forward_only(dir)?;
        crate::run::check_selector(&self.model, name)?;
        let (selector, func) = checked_pair(name, hook)?;
        self.added.add(selector, func, is_permanent);
        Ok(())
    }

    /// TL's `reset_hooks`: removes the added hooks (the permanent ones too with
    /// `including_permanent=True`). `clear_contexts` is accepted for TL's signature.
    #[pyo3(signature = (clear_contexts=true, including_permanent=false))]
    fn reset_hooks(&self, clear_contexts: bool, including_permanent: bool) {
        let _ = clear_contexts;
        self.added.reset(including_permanent);
    }

    /// TL's `with model.hooks(fwd_hooks=[(name, fn), ...]):` — the hooks run in every pass
    /// and `generate` inside the block; with `reset_hooks_end` (the default) they, and
    /// hooks added with `add_hook` inside the block, are removed when it ends.
    #[pyo3(signature = (fwd_hooks=None, bwd_hooks=None, reset_hooks_end=true, clear_contexts=false))]
    fn hooks(
        slf: &Bound<'_, Self>,
        fwd_hooks: Option<&Bound<'_, PyAny>>,
        bwd_hooks: Option<&Bound<'_, PyAny>>,
        reset_hooks_end: bool,
        clear_contexts: bool,
    ) -> PyResult<HooksContext> {
        let _ = clear_contexts;
        if bwd_hooks.is_some_and(|b| b.len().unwrap_or(1) > 0) {
            forward_only("bwd")?;
        }
        let mut pairs = Vec::new();
        if let Some(list) = fwd_hooks.filter(|h| !h.is_none()) {
            for item in list.try_iter()? {
                let (sel, func): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?
                    .extract()
                    .map_err(|_| input_error("fwd_hooks is a list of (name, function) pairs"))?;
                crate::run::check_selector(&slf.get().model, &sel)?;
                pairs.push(checked_pair(&sel, &func)?);
            }
        }
        Ok(HooksContext {
            model: slf.clone().unbind(),
            pairs,
            reset_hooks_end,
            id: None,
        })
    }
}

/// What `model.hooks(...)` returns: adds its hooks on `__enter__`, removes them on
/// `__exit__`.
#[pyclass(module = "hooklens")]
pub struct HooksContext {
    model: Py<ModelPy>,
    pairs: Vec<(Py<PyAny>, Py<PyAny>)>,
    reset_hooks_end: bool,
    id: Option<u64>,
}

#[pymethods]
impl HooksContext {
    /// Adds the hooks; the model (as TL's context manager returns it).
    fn __enter__(&mut self, py: Python<'_>) -> PyResult<Py<ModelPy>> {
        if self.id.is_some() {
            return Err(input_error("this hooks(...) context is already entered"));
        }
        let added = &self.model.get().added;
        let id = added.open();
        for (sel, func) in &self.pairs {
            added.add(sel.clone_ref(py), func.clone_ref(py), false);
        }
        self.id = Some(id);
        Ok(self.model.clone_ref(py))
    }

    /// Removes the hooks of the block (with `reset_hooks_end`); exceptions propagate.
    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        if let Some(id) = self.id.take() {
            self.model.get().added.close(id, self.reset_hooks_end);
        }
        false
    }
}
