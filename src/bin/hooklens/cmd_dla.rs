//! `hooklens dla`: direct logit attribution at the last position.

use std::path::PathBuf;

use clap::Args;
use hooklens::analysis::{direct_logit_attribution, DlaEntry, DlaReport};
use hooklens::output::{check_writable, write_json};
use hooklens::report::heatmap::Heatmap;
use hooklens::{HookLensError, Model, Result};
use serde_json::json;

use crate::input::InputArgs;
use crate::target::{show_token, token_arg};
use crate::term::{errln, outln};

/// Options of `dla`.
#[derive(Args, Debug)]
pub struct DlaArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The token whose logit is attributed, as text (a single token, e.g. " Paris").
    #[arg(
        long,
        conflicts_with = "target_id",
        required_unless_present = "target_id"
    )]
    pub target: Option<String>,
    /// The target as an id.
    #[arg(long)]
    pub target_id: Option<u32>,
    /// Attribute the logit difference target - against instead (a single token).
    #[arg(long, conflicts_with = "against_id")]
    pub against: Option<String>,
    /// The second token as an id.
    #[arg(long)]
    pub against_id: Option<u32>,
    /// How many components to print, largest |value| first (at least 1).
    #[arg(long, default_value_t = 20, value_parser = crate::parse::positive_count)]
    pub top: usize,
    /// Write `{"results", "sum", "logit"|"logit_diff", ...}` to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a layer x (head, attention bias, MLP) heatmap (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub heatmap: Option<PathBuf>,
}

/// Checks the output paths before the model is loaded.
pub fn check_outputs(args: &DlaArgs) -> Result<()> {
    check_json_heatmap(&args.json, &args.heatmap)
}

/// Checks a JSON and a heatmap path (writable; the heatmap's extension known).
pub fn check_json_heatmap(json: &Option<PathBuf>, heatmap: &Option<PathBuf>) -> Result<()> {
    if let Some(path) = heatmap {
        Heatmap::format_of(path)?;
    }
    for path in [json, heatmap].into_iter().flatten() {
        check_writable(path)?;
    }
    Ok(())
}

/// Runs the command.
pub fn run(model: &Model, args: &DlaArgs) -> Result<()> {
    let tokens = args.input.token_batch(model)?;
    tokens.validate(model.config())?;
    let ids = tokens.row(0);
    let target = token_arg(model, &args.target, args.target_id)?
        .ok_or_else(|| HookLensError::input("give --target TEXT or --target-id ID"))?;
    let against = token_arg(model, &args.against, args.against_id)?;
    let report = direct_logit_attribution(model, ids, target, against)?;
    let what = match against {
        Some(a) => format!(
            "logit({}) - logit({})",
            show_token(model, target),
            show_token(model, a)
        ),
        None => format!("logit({})", show_token(model, target)),
    };
    print_table(&report, &what, args.top);
    if let Some(path) = &args.json {
        write_json(path, &json_doc(ids, target, against, &report))?;
        outln!("wrote {}", path.display());
    }
    if let Some(path) = &args.heatmap {
        heatmap(model, &report, &what)?.write(path)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

/// The check line and the largest components.
fn print_table(report: &DlaReport, what: &str, top: usize) {
    outln!("{what} at the last position = {:.5}", report.logit);
    outln!(
        "components sum to {:.5} (+ {:.5} from the final norm's bias and b_U = {:.5})",
        report.sum,
        report.constant,
        report.sum + report.constant
    );
    if report.check_error() > 1e-3 * report.logit.abs().max(1.0) {
        errln!(
            "warning: the components do not add up to the logit (off by {:.2e})",
            report.check_error()
        );
    }
    let mut order: Vec<&DlaEntry> = report.entries.iter().collect();
    order.sort_by(|a, b| b.value.abs().total_cmp(&a.value.abs()));
    outln!("top {} components by |value|:", top.min(order.len()));
    for e in order.into_iter().take(top) {
        outln!("  {:<14} {:>+10.5}", name(e), e.value);
    }
}

/// `L3H1`, `L3 attn_bias`, `L3 mlp`, `embed`.
fn name(e: &DlaEntry) -> String {
    match (e.layer, e.head) {
        (Some(l), Some(h)) => format!("L{l}H{h}"),
        (Some(l), None) => format!("L{l} {}", e.component),
        (None, _) => e.component.to_string(),
    }
}

/// The JSON document.
fn json_doc(ids: &[u32], target: u32, against: Option<u32>, r: &DlaReport) -> serde_json::Value {
    let mut doc = json!({
        "tokens": ids,
        "target": target,
        "results": r.entries,
        "sum": r.sum,
        "constant": r.constant,
    });
    match against {
        Some(a) => {
            doc["against"] = json!(a);
            doc["logit_diff"] = json!(r.logit);
        }
        None => doc["logit"] = json!(r.logit),
    }
    doc
}

/// Layer x (every head, attention bias, MLP).
fn heatmap(model: &Model, r: &DlaReport, what: &str) -> Result<Heatmap> {
    let cfg = model.config();
    let cols = cfg.n_heads + 2;
    let mut values = vec![f64::NAN; cfg.n_layers * cols];
    for e in &r.entries {
        let Some(l) = e.layer else { continue };
        let c = match (e.head, e.component) {
            (Some(h), _) => h,
            (None, "attn_bias") => cfg.n_heads,
            _ => cfg.n_heads + 1,
        };
        values[l * cols + c] = e.value as f64;
    }
    let mut x_ticks: Vec<String> = (0..cfg.n_heads).map(|h| h.to_string()).collect();
    x_ticks.extend(["bias".to_string(), "mlp".to_string()]);
    Heatmap::new(
        format!("direct logit attribution of {what}"),
        "head (then attention bias, MLP)",
        "layer",
        x_ticks,
        (0..cfg.n_layers).map(|l| l.to_string()).collect(),
        values,
        "contribution",
    )
}
