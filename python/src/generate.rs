//! `model.generate`: TL's `HookedTransformer.generate` on the engine's KV-cache generation
//! (greedy, or seeded temperature / top-k / top-p sampling), with the GIL released during
//! the passes unless hooks are added (`add_hook`, `with model.hooks(...)`), which run in
//! every pass as TL's do.

use std::hash::BuildHasher;

use hooklens::model::generate::{GenerateOptions, Generation};
use hooklens::model::sampling::SamplingOptions;
use hooklens::{Model, Tokenizer};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert::{rows_to_numpy, token_rows};
use crate::errors::{input_error, IntoPyResult};
use crate::model::ModelPy;
use crate::run::{build_hooks, raise_hook_error};

/// What `generate` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GenReturn {
    /// The text of the prompt and the new tokens.
    Str,
    /// The ids of the prompt and the new tokens. `[1, pos + new]`
    Tokens,
}

impl GenReturn {
    /// TL's `return_type`: "input" (text in, text out; tokens in, tokens out), "str" or
    /// "tokens".
    fn read(value: &str, text_input: bool) -> PyResult<Self> {
        match value {
            "input" if text_input => Ok(GenReturn::Str),
            "input" | "tokens" => Ok(GenReturn::Tokens),
            "str" => Ok(GenReturn::Str),
            other => Err(input_error(format!(
                "return_type must be \"input\", \"str\" or \"tokens\", got {other:?}"
            ))),
        }
    }
}

/// The sampling options of `generate`'s keywords. `do_sample=False` is greedy whatever the
/// temperature; `do_sample=True` needs a temperature above 0. Without a seed, sampling draws
/// one from the process's random state (so runs differ, as TL's).
fn sampling(
    temperature: f32,
    do_sample: Option<bool>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    seed: Option<u64>,
) -> PyResult<SamplingOptions> {
    let temperature = match do_sample {
        Some(false) => 0.0,
        Some(true) if temperature <= 0.0 => {
            return Err(input_error(
                "do_sample=True needs a temperature above 0 (temperature=0 is greedy)",
            ))
        }
        _ => temperature,
    };
    let seed = seed.unwrap_or_else(|| std::collections::hash_map::RandomState::new().hash_one(0));
    let opts = SamplingOptions {
        temperature,
        top_k,
        top_p,
        seed,
    };
    opts.validate().py_err()?;
    Ok(opts)
}

/// The prompt's ids: a text (tokenized as `to_tokens`), or ids `[pos]` / `[1, pos]`.
fn prompt_ids(model: &Model, input: &Bound<'_, PyAny>, prepend_bos: bool) -> PyResult<Vec<u32>> {
    let rows = token_rows(model, input, prepend_bos)?;
    match <[Vec<u32>; 1]>::try_from(rows) {
        Ok([ids]) => Ok(ids),
        Err(rows) => Err(input_error(format!(
            "generate takes one prompt (a text, ids [pos] or [1, pos]), got a batch of {}",
            rows.len()
        ))),
    }
}

/// Prints the new tokens' text as it grows (whole characters only), as TL's `verbose` shows
/// progress.
struct Printer<'t> {
    tokenizer: &'t Tokenizer,
    new_tokens: Vec<u32>,
    printed: usize,
}

impl Printer<'_> {
    /// Adds a token and prints the text it completes.
    fn push(&mut self, py: Python<'_>, token: u32) -> PyResult<()> {
        self.new_tokens.push(token);
        let text = self.tokenizer.decode(&self.new_tokens).py_err()?;
        if text.len() > self.printed && text.is_char_boundary(self.printed) {
            print(py, &text[self.printed..])?;
            self.printed = text.len();
        }
        Ok(())
    }
}

/// Python's `print(text, end="", flush=True)` (so that it goes where `sys.stdout` points).
fn print(py: Python<'_>, text: &str) -> PyResult<()> {
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("end", "")?;
    kwargs.set_item("flush", true)?;
    py.import("builtins")?
        .getattr("print")?
        .call((text,), Some(&kwargs))?;
    Ok(())
}

/// Generates; between tokens it checks for Ctrl-C and, with `verbose`, prints. A Python error
/// there stops generation and is raised. Without added hooks the GIL is released during
/// the passes (taken between tokens); with them it is held, since they are Python.
fn run(
    py: Python<'_>,
    model_py: &ModelPy,
    prompt: &[u32],
    opts: &GenerateOptions,
    verbose: bool,
) -> PyResult<Generation> {
    let model = &model_py.model;
    let mut printer = match verbose {
        true => Some(Printer {
            tokenizer: model.tokenizer().py_err()?,
            new_tokens: Vec::new(),
            printed: 0,
        }),
        false => None,
    };
    let mut raised: Option<PyErr> = None;
    let mut between_tokens = |py: Python<'_>, token: u32| -> bool {
        let step = py.check_signals();
        let step = step.and_then(|_| printer.as_mut().map_or(Ok(()), |p| p.push(py, token)));
        step.map_err(|e| raised = Some(e)).is_ok()
    };
    let result = match model_py.hook_list(py, None)? {
        Some(list) => {
            let (mut hooks, errors) = build_hooks(py, model, &list)?;
            let mut on_token = |token: u32| Ok(between_tokens(py, token));
            let result =
                model.generate_with_hooks(prompt, opts, &[], Some(&mut hooks), &mut on_token);
            drop(hooks);
            raise_hook_error(py, &errors)?;
            result
        }
        None => py.allow_threads(|| {
            let mut on_token = |token: u32| Ok(Python::with_gil(|py| between_tokens(py, token)));
            model.generate(prompt, opts, &[], &mut on_token)
        }),
    };
    if verbose {
        print(py, "\n")?;
    }
    match raised {
        Some(err) => Err(err),
        None => result.py_err(),
    }
}

#[pymethods]
impl ModelPy {
    /// TL's `generate`: up to `max_new_tokens` tokens after `input` (a text, tokenized with
    /// BOS as `to_tokens`, or ids `[pos]` / `[1, pos]`), greedy at `temperature=0`, else
    /// sampled with `top_k` / `top_p` from `seed` (the same seed, the same tokens). Stops
    /// after the end-of-sequence token (`stop_at_eos`) or once the new text contains `stop`.
    /// `return_type`: "input" (text for a text input, else tokens), "str" (the text, a
    /// leading BOS left out) or "tokens" (int64 `[1, pos + new]`).
    #[pyo3(signature = (
        input,
        max_new_tokens=10,
        *,
        temperature=0.0,
        top_k=None,
        top_p=None,
        seed=None,
        do_sample=None,
        stop_at_eos=true,
        stop=None,
        use_past_kv_cache=true,
        prepend_bos=true,
        return_type="input",
        verbose=false,
    ))]
    #[allow(clippy::too_many_arguments)] // TL's keyword arguments
    fn generate(
        &self,
        py: Python<'_>,
        input: &Bound<'_, PyAny>,
        max_new_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        top_p: Option<f32>,
        seed: Option<u64>,
        do_sample: Option<bool>,
        stop_at_eos: bool,
        stop: Option<String>,
        use_past_kv_cache: bool,
        prepend_bos: bool,
        return_type: &str,
        verbose: bool,
    ) -> PyResult<PyObject> {
        let want = GenReturn::read(return_type, input.is_instance_of::<PyString>())?;
        let prompt = prompt_ids(&self.model, input, prepend_bos)?;
        let opts = GenerateOptions {
            max_new: max_new_tokens,
            sampling: sampling(temperature, do_sample, top_k, top_p, seed)?,
            stop: stop.filter(|s| !s.is_empty()),
            stop_at_eos,
            kv_cache: use_past_kv_cache,
        };
        let generation = run(py, self, &prompt, &opts, verbose)?;
        self.generation_to_py(py, generation.tokens, want)
    }
}

impl ModelPy {
    /// The generated sequence as text (a leading BOS left out, as TL) or ids `[1, pos]`.
    fn generation_to_py(
        &self,
        py: Python<'_>,
        tokens: Vec<u32>,
        want: GenReturn,
    ) -> PyResult<PyObject> {
        if want == GenReturn::Tokens {
            return rows_to_numpy(py, &[tokens]);
        }
        let bos = self.model.config().bos_token_id;
        let body = match tokens.split_first() {
            Some((first, rest)) if Some(*first) == bos => rest,
            _ => &tokens[..],
        };
        let text = self.model.tokenizer().py_err()?.decode(body).py_err()?;
        Ok(text.into_pyobject(py)?.into_any().unbind())
    }
}
