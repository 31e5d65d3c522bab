//! `hooklens intervene --dataset FILE --spec SPEC.json`: every prompt run clean and with a
//! set of interventions applied together, batched; each prompt's two metrics and the means.

use std::path::PathBuf;

use clap::Args;
use hooklens::output::{check_writable, write_json};
use hooklens::sweep::{
    intervene_dataset, read_dataset, read_interventions, DatasetKind, DatasetRow,
    InterventionReport, SweepOptions,
};
use hooklens::{Model, Result};
use serde_json::json;

use crate::parse::positive_count;
use crate::progress::progress_bar;
use crate::target::describe_metric;
use crate::term::outln;

/// `intervene` options.
#[derive(Args, Debug)]
pub struct InterveneArgs {
    /// A JSON Lines dataset, one `{"prompt" | "tokens", "target" | "target_id", "against" |
    /// "against_id"?}` per line. Each prompt's metric is logit(target) - logit(against) with
    /// `against`, else log p(target), at its own last token.
    #[arg(long, value_name = "FILE.jsonl")]
    pub dataset: PathBuf,
    /// A JSON list of interventions applied together, e.g. heads 1 and 4 of layer 9 zeroed:
    /// `[{"hook": "blocks.9.attn.hook_z", "heads": [1, 4], "op": {"kind": "zero"}}]`. Ops:
    /// zero, scale {factor}, add {vector}, set {values}; `positions` optional.
    #[arg(long, value_name = "SPEC.json")]
    pub spec: PathBuf,
    /// Do not prepend BOS to the dataset's texts.
    #[arg(long)]
    pub no_bos: bool,
    /// Write `{"prompts", "spec", "metric", "clean_mean", "intervened_mean", "delta_mean",
    /// "per_prompt": [{"line", "tokens", "clean", "intervened", "delta"}]}` (checked before
    /// the run; written atomically).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// How many prompts the terminal table lists (all are in the JSON).
    #[arg(long, default_value_t = 50)]
    pub show: usize,
    /// Run one full forward per prompt and run instead of the batched engine.
    #[arg(long)]
    pub naive: bool,
    /// Most packed rows per batched pass, at least 1 (bounds memory).
    #[arg(long, default_value_t = 4096, value_parser = positive_count)]
    pub max_rows: usize,
}

/// Checks the output path and reads the spec before the model is loaded.
pub fn check_outputs(args: &InterveneArgs) -> Result<()> {
    read_interventions(&args.spec)?;
    args.json.as_deref().map_or(Ok(()), check_writable)
}

/// Runs `intervene`.
pub fn run(model: &Model, args: &InterveneArgs) -> Result<()> {
    let spec = read_interventions(&args.spec)?;
    let rows = read_dataset(&args.dataset, DatasetKind::Prompts, model, !args.no_bos)?;
    let label = format!(
        "{} intervention{} over {} prompts of {}",
        spec.len(),
        if spec.len() == 1 { "" } else { "s" },
        rows.len(),
        args.dataset.display()
    );
    let bar = progress_bar(&label);
    let opts = SweepOptions {
        max_rows: args.max_rows,
        progress: Some(&bar),
        ..SweepOptions::default()
    };
    let report = intervene_dataset(model, &rows, &spec, args.naive, &opts)
        .map_err(|e| hooklens::HookLensError::input(format!("{}: {e}", args.spec.display())))?;
    let metrics = (rows.iter())
        .map(|r| r.metric(false).map(|m| describe_metric(model, &m)))
        .collect::<Result<Vec<String>>>()?;
    print_table(&metrics, &report, &label, args.show);
    if let Some(path) = &args.json {
        let doc = document(&rows, &metrics, &report, &spec);
        write_json(path, &doc)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

/// The terminal table: one line per prompt (up to `show`), then the means.
/// `metrics`: each prompt's metric, described.
fn print_table(metrics: &[String], report: &InterventionReport, label: &str, show: usize) {
    outln!("{label}");
    outln!(
        "{:>6}  {:>12}  {:>12}  {:>10}  metric",
        "line",
        "clean",
        "intervened",
        "delta"
    );
    for (metric, v) in metrics.iter().zip(&report.per_prompt).take(show) {
        outln!(
            "{:>6}  {:>12.4}  {:>12.4}  {:>+10.4}  {}",
            v.line,
            v.clean,
            v.intervened,
            v.intervened - v.clean,
            metric
        );
    }
    if metrics.len() > show {
        outln!(
            "  ({} more prompts; all are in --json)",
            metrics.len() - show
        );
    }
    outln!(
        "{:>6}  {:>12.4}  {:>12.4}  {:>+10.4}  (means over {} prompts)",
        "mean",
        report.clean_mean,
        report.intervened_mean,
        report.delta_mean(),
        metrics.len()
    );
}

/// The JSON document (see [`InterveneArgs::json`]).
fn document(
    rows: &[DatasetRow],
    metrics: &[String],
    report: &InterventionReport,
    spec: &[hooklens::hooks::Intervention],
) -> serde_json::Value {
    let per_prompt: Vec<_> = (rows.iter().zip(metrics).zip(&report.per_prompt))
        .map(|((row, metric), v)| {
            json!({
                "line": v.line,
                "tokens": row.clean,
                "metric": metric,
                "clean": v.clean,
                "intervened": v.intervened,
                "delta": v.intervened - v.clean,
            })
        })
        .collect();
    json!({
        "prompts": rows.len(),
        "spec": spec,
        "metric": "each row's own: logit(target) - logit(against) with `against`, else log p(target), at its last token",
        "clean_mean": report.clean_mean,
        "intervened_mean": report.intervened_mean,
        "delta_mean": report.delta_mean(),
        "per_prompt": per_prompt,
    })
}
