//! `hooklens ablate | patch | trace --dataset FILE`: the sweep of every prompt (pair) of a JSON Lines
//! dataset, run as one batched sweep (one per token length), reported as dataset means with
//! each prompt's values in the JSON.

use std::path::Path;

use hooklens::output::write_json;
use hooklens::sweep::{
    read_dataset, report_document, run_dataset, DatasetKind, DatasetReport, DatasetRow, Metric,
    SweepContext as DocumentContext, SweepOutcome, SweepReport, SweepSpec,
};
use hooklens::{Model, Result};
use serde_json::json;

use crate::cmd_sweep::OutputArgs;
use crate::progress::progress_bar;
use crate::sweep_output::{write_all, SweepContext};
use crate::sweep_print::print_report;
use crate::term::outln;
use hooklens::sweep::SweepOptions;

/// How to read a dataset: what each line holds, BOS, and whether a row without `against`
/// measures p(target) (trace) or log p(target).
pub struct Reading {
    /// Prompts or pairs.
    pub kind: DatasetKind,
    /// Prepend BOS to texts.
    pub bos: bool,
    /// `prob` instead of `logprob` for rows without `against`.
    pub prob: bool,
}

/// Reads the dataset, builds each row's sweep with `spec_of`, runs them as one batched sweep
/// and writes the report.
pub fn run(
    model: &Model,
    path: &Path,
    reading: Reading,
    spec_of: impl Fn(&DatasetRow) -> Result<SweepSpec>,
    label: &str,
    out: &OutputArgs,
) -> Result<()> {
    let rows = read_dataset(path, reading.kind, model, reading.bos)?;
    run_rows(model, path, &rows, reading.prob, spec_of, label, out)
}

/// [`run`] of a dataset already read (`prob`: see [`Reading::prob`]).
pub fn run_rows(
    model: &Model,
    path: &Path,
    rows: &[DatasetRow],
    prob: bool,
    spec_of: impl Fn(&DatasetRow) -> Result<SweepSpec>,
    label: &str,
    out: &OutputArgs,
) -> Result<()> {
    let specs = (rows.iter())
        .map(|r| spec_of(r).map_err(|e| at_line(path, r, e)))
        .collect::<Result<Vec<_>>>()?;
    let metrics = (rows.iter())
        .map(|r| r.metric(prob))
        .collect::<Result<Vec<Metric>>>()?;
    let label = format!("{label} over {} prompts of {}", rows.len(), path.display());
    let bar = progress_bar(&label);
    let opts = SweepOptions {
        max_rows: out.max_rows,
        progress: Some(&bar),
        ..SweepOptions::default()
    };
    let report = run_dataset(model, &specs, &metrics, out.naive, &opts)?;
    let means = SweepReport {
        clean: report.clean,
        corrupted: report.corrupted,
        results: report.results.clone(),
        outcome: SweepOutcome {
            base_values: Vec::new(),
            values: Vec::new(),
            stats: report.stats.clone(),
        },
    };
    let (metric, tokens) = (&metrics[0], &rows[0].clean);
    print_report(model, &means, metric, tokens, &label, out);
    outln!("(means over the prompts; the metric is each row's own target)");
    let ctx = SweepContext {
        metric,
        tokens,
        corrupted_tokens: rows[0].corrupted.as_deref(),
        title: &label,
    };
    let files = OutputArgs {
        json: None,
        ..out.clone()
    };
    let written = write_all(model, &means, &ctx, &files);
    if let Some(json_path) = &out.json {
        write_json(
            json_path,
            &document(model, &means, &report, rows, &metrics, out.naive),
        )?;
        outln!("wrote {}", json_path.display());
    }
    written
}

/// An error building row `r`'s sweep, with the file and line.
fn at_line(path: &Path, r: &DatasetRow, e: hooklens::HookLensError) -> hooklens::HookLensError {
    hooklens::HookLensError::input(format!("{}: line {}: {e}", path.display(), r.line))
}

/// The sweep document of the means (as a single prompt's, with row 1's tokens), plus
/// `"prompts"` and `"per_prompt": [{"line", "tokens", "corrupted_tokens"?, "metric", "clean",
/// "corrupted"?, "values": [one per result row]}]`.
fn document(
    model: &Model,
    means: &SweepReport,
    report: &DatasetReport,
    rows: &[DatasetRow],
    metrics: &[Metric],
    naive: bool,
) -> serde_json::Value {
    let ctx = DocumentContext {
        metric: &metrics[0],
        tokens: &rows[0].clean,
        corrupted_tokens: rows[0].corrupted.as_deref(),
        naive,
    };
    let mut doc = report_document(model, means, &ctx);
    let per_prompt: Vec<_> = (rows.iter().zip(&report.per_prompt).zip(metrics))
        .map(|((row, r), metric)| {
            let values: Vec<f64> = r.results.iter().map(|x| x.value).collect();
            let mut entry = json!({
                "line": row.line,
                "tokens": row.clean,
                "metric": metric,
                "clean": r.clean,
                "values": values,
            });
            if let (Some(c), Some(t)) = (r.corrupted, &row.corrupted) {
                entry["corrupted"] = json!(c);
                entry["corrupted_tokens"] = json!(t);
            }
            entry
        })
        .collect();
    doc["prompts"] = json!(rows.len());
    doc["per_prompt"] = json!(per_prompt);
    doc["metric"] =
        json!("each row's own (logit-diff with `against`, else logprob; prob for trace)");
    doc
}
