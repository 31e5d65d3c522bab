//! A fixed set of interventions over a dataset ("are these heads necessary?"): every prompt
//! run clean and with all the interventions together, batched as one dataset sweep (each
//! prompt a base with one variant), each measured with its own metric at its own last token.

use std::path::Path;

use super::dataset::DatasetRow;
use super::dataset_sweep::run_dataset;
use super::engine::{Base, SweepOptions, SweepStats, Variant};
use super::sweeps::{Entry, Reading, SweepSpec};
use crate::error::{HookLensError, Result};
use crate::hooks::intervention::{HookTarget, Intervention};
use crate::model::Model;

/// One prompt's clean and intervened metric.
#[derive(Clone, Debug, PartialEq)]
pub struct InterventionValue {
    /// The prompt's line in the dataset file.
    pub line: usize,
    /// The metric on the clean run.
    pub clean: f64,
    /// The metric with every intervention applied.
    pub intervened: f64,
}

/// The result of [`intervene_dataset`].
#[derive(Clone, Debug)]
pub struct InterventionReport {
    /// Each prompt's values, in dataset order.
    pub per_prompt: Vec<InterventionValue>,
    /// The mean clean metric.
    pub clean_mean: f64,
    /// The mean intervened metric.
    pub intervened_mean: f64,
    /// Work of the batched passes.
    pub stats: SweepStats,
}

impl InterventionReport {
    /// `intervened_mean - clean_mean`.
    pub fn delta_mean(&self) -> f64 {
        self.intervened_mean - self.clean_mean
    }
}

/// Reads a spec file: a JSON list of [`Intervention`]s. Errors name the file and, for JSON
/// that is not a list of interventions, serde's line and column and the problem.
pub fn read_interventions(path: &Path) -> Result<Vec<Intervention>> {
    let text = std::fs::read_to_string(path).map_err(|e| HookLensError::io(path, e))?;
    parse_interventions(&text)
        .map_err(|e| HookLensError::input(format!("{}: {}", path.display(), message_of(e))))
}

/// [`read_interventions`] of text already read.
pub fn parse_interventions(text: &str) -> Result<Vec<Intervention>> {
    let ivs: Vec<Intervention> = serde_json::from_str(text).map_err(|e| {
        HookLensError::input(format!(
            "not a JSON list of interventions ({{\"hook\", \"op\": {{\"kind\": ...}}, \"heads\"?, \"positions\"?}}): {e}"
        ))
    })?;
    if ivs.is_empty() {
        return Err(HookLensError::input(
            "the list of interventions is empty (nothing to apply)",
        ));
    }
    Ok(ivs)
}

/// An input error's message without the prefix its display adds.
fn message_of(e: HookLensError) -> String {
    match e {
        HookLensError::Input { message } => message,
        other => other.to_string(),
    }
}

/// Checks every intervention against the model and each prompt's length; errors name the
/// intervention (from 1) and the line.
fn check_spec(model: &Model, rows: &[DatasetRow], spec: &[Intervention]) -> Result<()> {
    let cfg = model.config();
    for row in rows {
        for (i, iv) in spec.iter().enumerate() {
            iv.resolve(cfg, row.clean.len()).map_err(|e| {
                let hint = layer_hint(iv, cfg.n_layers).unwrap_or_default();
                HookLensError::input(format!(
                    "intervention {} (of {}) on line {}: {}{hint}",
                    i + 1,
                    spec.len(),
                    row.line,
                    message_of(e)
                ))
            })?;
        }
    }
    Ok(())
}

/// A note when the hook names a layer past the model's last (`blocks.N.` with N too large).
fn layer_hint(iv: &Intervention, n_layers: usize) -> Option<String> {
    let HookTarget::Name(name) = &iv.hook else {
        return None;
    };
    let layer: usize = name
        .strip_prefix("blocks.")?
        .split('.')
        .next()?
        .parse()
        .ok()?;
    (layer >= n_layers).then(|| {
        format!(
            " (layer {layer} is out of range: the model has {n_layers} layers, 0 to {})",
            n_layers - 1
        )
    })
}

/// Runs every prompt of `rows` clean and with all of `spec` applied together, batched (one
/// dataset sweep, `--max-rows` bounded; `naive`: one full forward per run instead). Each
/// prompt's metric is its row's ([`DatasetRow::metric`], log p(target) without `against`).
pub fn intervene_dataset(
    model: &Model,
    rows: &[DatasetRow],
    spec: &[Intervention],
    naive: bool,
    opts: &SweepOptions<'_>,
) -> Result<InterventionReport> {
    if spec.is_empty() {
        return Err(HookLensError::input("no interventions to apply"));
    }
    check_spec(model, rows, spec)?;
    let specs: Vec<SweepSpec> = rows.iter().map(|r| one_variant(r, spec)).collect();
    let metrics = rows
        .iter()
        .map(|r| r.metric(false))
        .collect::<Result<Vec<_>>>()?;
    let report = run_dataset(model, &specs, &metrics, naive, opts)?;
    let per_prompt: Vec<InterventionValue> = (rows.iter().zip(&report.per_prompt))
        .map(|(row, r)| InterventionValue {
            line: row.line,
            clean: r.clean,
            intervened: r.results[0].value,
        })
        .collect();
    let n = per_prompt.len() as f64;
    Ok(InterventionReport {
        clean_mean: per_prompt.iter().map(|v| v.clean).sum::<f64>() / n,
        intervened_mean: per_prompt.iter().map(|v| v.intervened).sum::<f64>() / n,
        per_prompt,
        stats: report.stats,
    })
}

/// A sweep of one prompt with one variant: all of `spec`.
fn one_variant(row: &DatasetRow, spec: &[Intervention]) -> SweepSpec {
    SweepSpec {
        bases: vec![Base {
            tokens: row.clean.clone(),
            interventions: Vec::new(),
        }],
        variants: vec![Variant {
            base: 0,
            interventions: spec.to_vec(),
        }],
        entries: vec![Entry {
            layer: 0,
            head: None,
            pos: None,
        }],
        clean_base: 0,
        corrupted_bases: Vec::new(),
        reading: Reading::Ablation,
    }
}
