//! `hooklens logit-lens`: the top token (and the target's probability) read from the residual
//! stream before every layer through the final norm and the unembedding.

use std::path::PathBuf;

use clap::Args;
use hooklens::analysis::{logit_lens, LensRow};
use hooklens::output::write_json;
use hooklens::report::heatmap::Heatmap;
use hooklens::{Model, Result};
use serde_json::json;

use crate::input::InputArgs;
use crate::target::{show_token, token_arg};
use crate::term::outln;

/// Options of `logit-lens`.
#[derive(Args, Debug)]
pub struct LensArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// A token whose probability is reported at every layer, as text (a single token).
    #[arg(long, conflicts_with = "target_id")]
    pub target: Option<String>,
    /// The target as an id.
    #[arg(long)]
    pub target_id: Option<u32>,
    /// Every position, not just the last.
    #[arg(long)]
    pub all_positions: bool,
    /// Write `{"tokens", "target"?, "results": [{"layer", "label", "pos", "top_token",
    /// "top_prob", "target_prob"?}]}` to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a layer x position heatmap of the target's probability (the top token's without
    /// a target) (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub heatmap: Option<PathBuf>,
}

/// Checks the output paths before the model is loaded.
pub fn check_outputs(args: &LensArgs) -> Result<()> {
    crate::cmd_dla::check_json_heatmap(&args.json, &args.heatmap)
}

/// Runs the command.
pub fn run(model: &Model, args: &LensArgs) -> Result<()> {
    let tokens = args.input.token_batch(model)?;
    tokens.validate(model.config())?;
    let ids = tokens.row(0);
    let target = token_arg(model, &args.target, args.target_id)?;
    let rows = logit_lens(model, ids, target, args.all_positions)?;
    if let Some(t) = target {
        outln!("target: {}", show_token(model, t));
    }
    outln!(
        "{:<12} {:>4}  {:<24} {:>8}  {:>8}",
        "layer",
        "pos",
        "top token",
        "p(top)",
        "p(target)"
    );
    for r in &rows {
        let tp = r.target_prob.map_or(String::new(), |p| format!("{p:.4}"));
        let top = show_token(model, r.top_token);
        outln!(
            "{:<12} {:>4}  {:<24} {:>8.4}  {:>8}",
            r.label,
            r.pos,
            top,
            r.top_prob,
            tp
        );
    }
    if let Some(path) = &args.json {
        let mut doc = json!({"tokens": ids, "results": rows});
        if let Some(t) = target {
            doc["target"] = json!(t);
        }
        write_json(path, &doc)?;
        outln!("wrote {}", path.display());
    }
    if let Some(path) = &args.heatmap {
        heatmap(model, ids, &rows, target)?.write(path)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

/// Layer (accumulated residual) x position.
fn heatmap(model: &Model, ids: &[u32], rows: &[LensRow], target: Option<u32>) -> Result<Heatmap> {
    let mut positions: Vec<usize> = rows.iter().map(|r| r.pos).collect();
    positions.sort_unstable();
    positions.dedup();
    let mut labels: Vec<String> = Vec::new();
    for r in rows {
        if !labels.contains(&r.label) {
            labels.push(r.label.clone());
        }
    }
    let str_tokens = model.to_str_tokens(ids).ok();
    let x_ticks = (positions.iter())
        .map(|&p| {
            str_tokens
                .as_ref()
                .map_or(p.to_string(), |s| format!("{p}:{}", s[p]))
        })
        .collect();
    let cols = positions.len();
    let mut values = vec![f64::NAN; labels.len() * cols];
    for r in rows {
        let x = positions.binary_search(&r.pos).unwrap_or(0);
        values[r.layer * cols + x] = r.target_prob.unwrap_or(r.top_prob) as f64;
    }
    let (title, colour) = match target {
        Some(t) => (
            format!("logit lens: p({})", show_token(model, t)),
            "probability of the target",
        ),
        None => (
            "logit lens: top token".to_string(),
            "probability of the top token",
        ),
    };
    Heatmap::new(
        title,
        "position",
        "residual stream",
        x_ticks,
        labels,
        values,
        colour,
    )
}
