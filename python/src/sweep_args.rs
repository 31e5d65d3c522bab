//! Arguments the sweeps share: the metric with its target tokens, one prompt, the subject.

use hooklens::sweep::Metric;
use hooklens::{LogitPositions, Model, ReturnType, RunOptions, TokenBatch};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::errors::{input_error, IntoPyResult};

/// The one row of a batch of one.
pub fn one_row(tokens: &TokenBatch) -> PyResult<Vec<u32>> {
    if tokens.batch() != 1 {
        return Err(input_error(format!(
            "a sweep takes one prompt, got a batch of {}",
            tokens.batch()
        )));
    }
    Ok(tokens.row(0).to_vec())
}

/// A token id from a single-token text or an int.
fn token_id(model: &Model, t: &Bound<'_, PyAny>) -> PyResult<u32> {
    if let Ok(s) = t.downcast::<PyString>() {
        return model
            .tokenizer()
            .py_err()?
            .to_single_token(s.to_str()?)
            .py_err();
    }
    t.extract()
}

/// The model's top next-token prediction after `prompt` (the default target).
fn top_prediction(py: Python<'_>, model: &Model, prompt: &[u32]) -> PyResult<u32> {
    let tokens = TokenBatch::single(prompt.to_vec()).py_err()?;
    let opts = RunOptions {
        return_type: ReturnType::Logits,
        logits_at: LogitPositions::Last,
        ..RunOptions::default()
    };
    let out = py
        .allow_threads(|| model.forward(&tokens, &opts))
        .py_err()?;
    let logits = out.logits.ok_or_else(|| input_error("no logits"))?; // [1, 1, d_vocab]
    let best = hooklens::analysis::top_k(&logits.data, 1);
    Ok(best[0].token_id)
}

/// A metric by name ("logprob", "prob", "logit-diff", "loss", "kl"); the target defaults to
/// the model's top prediction, `against` is needed by "logit-diff".
pub fn metric_of(
    py: Python<'_>,
    model: &Model,
    prompt: &[u32],
    name: &str,
    target: Option<&Bound<'_, PyAny>>,
    against: Option<&Bound<'_, PyAny>>,
) -> PyResult<Metric> {
    let target = match target.filter(|t| !t.is_none()) {
        Some(t) => token_id(model, t)?,
        None => top_prediction(py, model, prompt)?,
    };
    let metric = match name.replace('_', "-").as_str() {
        "logprob" => Metric::LogProb { target },
        "prob" => Metric::Prob { target },
        "logit-diff" => {
            let other = against
                .filter(|a| !a.is_none())
                .ok_or_else(|| input_error("metric \"logit-diff\" needs against= (a token)"))?;
            Metric::LogitDiff {
                target,
                other: token_id(model, other)?,
            }
        }
        "loss" => Metric::Loss,
        "kl" => Metric::KlToClean,
        other => {
            return Err(input_error(format!(
                "metric must be logprob, prob, logit-diff, loss or kl, got {other:?}"
            )))
        }
    };
    metric.validate(model.config().d_vocab).py_err()?;
    Ok(metric)
}

/// Subject positions: a list of ints, or a text whose tokens appear in the prompt (tried
/// with a leading space first, as it usually follows a word).
pub fn subject_positions(
    model: &Model,
    prompt: &[u32],
    subject: &Bound<'_, PyAny>,
) -> PyResult<Vec<usize>> {
    let Ok(text) = subject.downcast::<PyString>() else {
        return subject.extract();
    };
    let text = text.to_str()?;
    let tk = model.tokenizer().py_err()?;
    let trimmed = text.trim_start();
    for candidate in [format!(" {trimmed}"), trimmed.to_string()] {
        let ids = tk.encode(&candidate).py_err()?;
        if ids.is_empty() || ids.len() > prompt.len() {
            continue;
        }
        if let Some(start) = prompt.windows(ids.len()).position(|w| w == ids.as_slice()) {
            return Ok((start..start + ids.len()).collect());
        }
    }
    Err(input_error(format!(
        "the subject {text:?} does not appear as whole tokens in the prompt {}; pass its positions",
        tk.show_tokens(prompt)
    )))
}
