//! Python bindings of hooklens: TransformerLens' `HookedTransformer` API on the hooklens
//! engine, with numpy arrays (hooks get writable views of the engine's own buffers).

mod added_hooks;
mod cache;
mod config;
mod convert;
mod errors;
mod generate;
mod hook_call;
mod model;
mod pass_opts;
mod points;
mod run;
mod sweep_args;
mod sweeps;
mod view;
mod weights;

use pyo3::prelude::*;

/// Sets the engine's CPU threads (at least 1; all cores by default), as `--threads`.
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    if n == 0 {
        return Err(errors::input_error("the thread count must be at least 1"));
    }
    hooklens::set_num_threads(n);
    Ok(())
}

/// The native module `hooklens._hooklens`.
#[pymodule]
fn _hooklens(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::ModelPy>()?;
    m.add_class::<cache::CachePy>()?;
    m.add_class::<added_hooks::HooksContext>()?;
    m.add_class::<config::ConfigPy>()?;
    m.add_class::<points::HookPointPy>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    errors::register(m)?;
    Ok(())
}
