//! Dataset files for sweeps over many prompts: JSON Lines, one prompt (or one clean /
//! corrupted pair) per line, each with its own target token and, optionally, a token it is
//! compared with. Bad lines are errors naming the line number and the field.
//!
//! ```text
//! {"prompt": "The capital of France is", "target": " Paris", "against": " Rome"}
//! {"prompt": "The Eiffel Tower is in", "target": " Paris", "subject": "Eiffel Tower"}
//! {"tokens": [1, 504, 3], "target_id": 123, "against_id": 456}
//! {"clean": "...", "corrupted": "...", "target": " Mary", "against": " John"}
//! {"clean_tokens": [..], "corrupted_tokens": [..], "target_id": 5, "against_id": 7}
//! ```

use std::path::Path;

use serde_json::{Map, Value};

use super::metric::Metric;
use crate::error::{HookLensError, Result};
use crate::model::Model;

/// What each line of a dataset holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    /// One prompt: `prompt` or `tokens`.
    Prompts,
    /// A clean and a corrupted prompt: `clean` / `clean_tokens`, `corrupted` /
    /// `corrupted_tokens`.
    Pairs,
    /// Two prompts compared with each other (`diff`): as [`DatasetKind::Pairs`], with the
    /// target optional (no metric is read).
    Contrasts,
}

impl DatasetKind {
    /// True when every line must name a target token.
    fn needs_target(self) -> bool {
        self != DatasetKind::Contrasts
    }
}

/// One line of a dataset, tokenized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetRow {
    /// Its line number in the file (from 1).
    pub line: usize,
    /// The prompt (the clean one of a pair).
    pub clean: Vec<u32>,
    /// The corrupted prompt of a pair.
    pub corrupted: Option<Vec<u32>>,
    /// The target token (`None` only in a [`DatasetKind::Contrasts`] dataset).
    pub target: Option<u32>,
    /// The token the target is compared with, if any.
    pub against: Option<u32>,
    /// The subject (causal tracing's noised tokens), as text found in the prompt.
    pub subject: Option<String>,
}

impl DatasetRow {
    /// The row's metric: `logit(target) - logit(against)` with `against`, else
    /// `log p(target)` (or `p(target)` when `prob`).
    pub fn metric(&self, prob: bool) -> Result<Metric> {
        let target = self.target.ok_or_else(|| {
            HookLensError::input(format!(
                "line {}: missing field `target` (or `target_id`)",
                self.line
            ))
        })?;
        Ok(match (self.against, prob) {
            (Some(other), _) => Metric::LogitDiff { target, other },
            (None, true) => Metric::Prob { target },
            (None, false) => Metric::LogProb { target },
        })
    }
}

/// Reads a dataset file: every non-blank line a JSON object of `kind`. Texts are tokenized
/// with the model's tokenizer (BOS first when `prepend_bos`); targets given as text must be
/// one token.
pub fn read_dataset(
    path: &Path,
    kind: DatasetKind,
    model: &Model,
    prepend_bos: bool,
) -> Result<Vec<DatasetRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| HookLensError::io(path, e))?;
    parse_dataset(&text, kind, model, prepend_bos).map_err(|e| match e {
        HookLensError::Input { message } => {
            HookLensError::input(format!("{}: {message}", path.display()))
        }
        other => other,
    })
}

/// [`read_dataset`] of text already read.
pub fn parse_dataset(
    text: &str,
    kind: DatasetKind,
    model: &Model,
    prepend_bos: bool,
) -> Result<Vec<DatasetRow>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| HookLensError::input(format!("line {}: {msg}", i + 1));
        let value: Value = serde_json::from_str(line).map_err(|e| at(format!("not JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(at("expected a JSON object".into()));
        };
        let row = parse_row(&obj, kind, model, prepend_bos).map_err(|e| match e {
            HookLensError::Input { message } => at(message),
            other => other,
        })?;
        rows.push(DatasetRow { line: i + 1, ..row });
    }
    if rows.is_empty() {
        return Err(HookLensError::input(
            "the dataset has no lines (one JSON object per line)",
        ));
    }
    Ok(rows)
}

/// The fields a line of `kind` may have.
fn known_fields(kind: DatasetKind) -> &'static [&'static str] {
    match kind {
        DatasetKind::Prompts => &[
            "prompt",
            "tokens",
            "target",
            "target_id",
            "against",
            "against_id",
            "subject",
        ],
        DatasetKind::Pairs | DatasetKind::Contrasts => &[
            "clean",
            "clean_tokens",
            "corrupted",
            "corrupted_tokens",
            "target",
            "target_id",
            "against",
            "against_id",
        ],
    }
}

fn parse_row(
    obj: &Map<String, Value>,
    kind: DatasetKind,
    model: &Model,
    bos: bool,
) -> Result<DatasetRow> {
    let known = known_fields(kind);
    if let Some(field) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(HookLensError::input(format!(
            "unknown field `{field}` (expected {})",
            known.join(", ")
        )));
    }
    let (clean, corrupted) = match kind {
        DatasetKind::Prompts => (sequence(obj, "prompt", "tokens", model, bos)?, None),
        DatasetKind::Pairs | DatasetKind::Contrasts => (
            sequence(obj, "clean", "clean_tokens", model, bos)?,
            Some(sequence(obj, "corrupted", "corrupted_tokens", model, bos)?),
        ),
    };
    let target = token(obj, "target", "target_id", model)?;
    if target.is_none() && kind.needs_target() {
        return Err(HookLensError::input(
            "missing field `target` (or `target_id`)",
        ));
    }
    let against = token(obj, "against", "against_id", model)?;
    let subject = match obj.get("subject") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(HookLensError::input("field `subject`: expected a string")),
    };
    let vocab = model.config().d_vocab;
    for (field, ids) in [("prompt", Some(&clean)), ("corrupted", corrupted.as_ref())] {
        if let Some(&bad) = ids.into_iter().flatten().find(|&&t| t as usize >= vocab) {
            return Err(HookLensError::input(format!(
                "field `{field}`: token id {bad} is outside the vocabulary ({vocab})"
            )));
        }
    }
    Ok(DatasetRow {
        line: 0,
        clean,
        corrupted,
        target,
        against,
        subject,
    })
}

/// A token sequence given as text (`text_field`) or ids (`ids_field`), exactly one of them.
fn sequence(
    obj: &Map<String, Value>,
    text_field: &str,
    ids_field: &str,
    model: &Model,
    bos: bool,
) -> Result<Vec<u32>> {
    let ids = match (obj.get(text_field), obj.get(ids_field)) {
        (Some(_), Some(_)) => {
            return Err(HookLensError::input(format!(
                "give `{text_field}` or `{ids_field}`, not both"
            )))
        }
        (Some(Value::String(text)), None) => model.tokenizer()?.to_tokens(text, bos)?,
        (Some(_), None) => {
            return Err(HookLensError::input(format!(
                "field `{text_field}`: expected a string"
            )))
        }
        (None, Some(Value::Array(items))) => (items.iter())
            .map(|v| id_of(v, ids_field))
            .collect::<Result<Vec<u32>>>()?,
        (None, Some(_)) => {
            return Err(HookLensError::input(format!(
                "field `{ids_field}`: expected a list of token ids"
            )))
        }
        (None, None) => {
            return Err(HookLensError::input(format!(
                "missing field `{text_field}` (or `{ids_field}`)"
            )))
        }
    };
    if ids.is_empty() {
        return Err(HookLensError::input(format!(
            "field `{text_field}`: no tokens"
        )));
    }
    Ok(ids)
}

/// A token given as text that must be one token (`text_field`) or as an id (`id_field`).
fn token(
    obj: &Map<String, Value>,
    text_field: &str,
    id_field: &str,
    model: &Model,
) -> Result<Option<u32>> {
    let id = match (obj.get(text_field), obj.get(id_field)) {
        (Some(_), Some(_)) => {
            return Err(HookLensError::input(format!(
                "give `{text_field}` or `{id_field}`, not both"
            )))
        }
        (Some(Value::String(text)), None) => model
            .tokenizer()?
            .to_single_token(text)
            .map_err(|e| HookLensError::input(format!("field `{text_field}`: {e}")))?,
        (Some(_), None) => {
            return Err(HookLensError::input(format!(
                "field `{text_field}`: expected a string"
            )))
        }
        (None, Some(v)) => id_of(v, id_field)?,
        (None, None) => return Ok(None),
    };
    if id as usize >= model.config().d_vocab {
        return Err(HookLensError::input(format!(
            "field `{text_field}`: token id {id} is outside the vocabulary ({})",
            model.config().d_vocab
        )));
    }
    Ok(Some(id))
}

/// A token id (a non-negative integer that fits in 32 bits).
fn id_of(v: &Value, field: &str) -> Result<u32> {
    (v.as_u64())
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| HookLensError::input(format!("field `{field}`: `{v}` is not a token id")))
}
