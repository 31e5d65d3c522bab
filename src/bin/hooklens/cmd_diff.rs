//! `hooklens diff --dataset PAIRS.jsonl --hook z`: for every (layer, head), the mean over
//! pairs of the L2 norm of the difference of the two prompts' `hook_z`, ranked, with JSON,
//! CSV and heatmap files.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hooklens::analysis::{head_z_diff, DiffPositions, HeadDiff};
use hooklens::output::{check_writable, write_atomic, write_json};
use hooklens::report::heatmap::Heatmap;
use hooklens::sweep::{read_dataset, DatasetKind, DatasetRow, ResultRow};
use hooklens::{Model, Result};
use serde_json::json;

use crate::heatmap::{write_grid, Grid};
use crate::parse::positive_count;
use crate::progress::progress_bar;
use crate::sweep_output::csv_text;
use crate::term::{errln, outln};

/// `diff` options.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// A JSON Lines dataset of pairs, one `{"clean" | "clean_tokens", "corrupted" |
    /// "corrupted_tokens"}` per line (a `target` / `against`, as in `patch --dataset`, may
    /// be there and is not used), e.g. honest and sycophantic versions of one question.
    #[arg(long, value_name = "PAIRS.jsonl")]
    pub dataset: PathBuf,
    /// The activation compared, per (layer, head): z (attn.hook_z, each head's output before
    /// W_O).
    #[arg(long, value_enum, default_value_t = DiffHook::Z)]
    pub hook: DiffHook,
    /// last: each prompt's last real position (a pair may differ in length); all: the norm
    /// at every position, averaged (the two prompts of each pair of equal token length).
    #[arg(long, value_enum, default_value_t = Positions::Last)]
    pub positions: Positions,
    /// Do not prepend BOS to the dataset's texts.
    #[arg(long)]
    pub no_bos: bool,
    /// Write `{"hook", "positions", "prompts", "n_layers", "n_heads", "ranked": [{"layer",
    /// "head", "mean_norm"}], "per_pair": [{"line", "norms": [layer-major]}]}`.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write `layer,head,pos,value,delta,recovery` (value: the mean norm), ranked.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write a layer x head heatmap of the mean norms, .png or .svg.
    #[arg(long, value_name = "FILE")]
    pub heatmap: Option<PathBuf>,
    /// How many heads the terminal table lists.
    #[arg(long, default_value_t = 20)]
    pub show: usize,
    /// Most padded rows (sequences x positions) per forward pass, at least 1 (bounds memory).
    #[arg(long, default_value_t = 4096, value_parser = positive_count)]
    pub max_rows: usize,
}

/// Activations `diff` compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffHook {
    /// attn.hook_z per (layer, head).
    Z,
}

/// `--positions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Positions {
    /// Each prompt's last real position.
    Last,
    /// Every position, averaged.
    All,
}

/// Checks every output path before the model is loaded.
pub fn check_outputs(args: &DiffArgs) -> Result<()> {
    if let Some(path) = &args.heatmap {
        Heatmap::format_of(path)?;
    }
    for path in [&args.json, &args.csv, &args.heatmap].into_iter().flatten() {
        check_writable(path)?;
    }
    Ok(())
}

/// Runs `diff`.
pub fn run(model: &Model, args: &DiffArgs) -> Result<()> {
    let rows = read_dataset(&args.dataset, DatasetKind::Contrasts, model, !args.no_bos)?;
    let positions = match args.positions {
        Positions::Last => DiffPositions::Last,
        Positions::All => DiffPositions::All,
    };
    let label = format!(
        "|z(clean) - z(corrupted)| over {} pairs of {}",
        rows.len(),
        args.dataset.display()
    );
    let bar = progress_bar(&label);
    let diff = head_z_diff(model, &rows, positions, args.max_rows, Some(&bar))
        .map_err(|e| hooklens::HookLensError::input(format!("{}: {e}", args.dataset.display())))?;
    print_table(&diff, &label, args);
    write_files(model, &rows, &diff, args)
}

/// The ranked table.
fn print_table(diff: &HeadDiff, label: &str, args: &DiffArgs) {
    let at = match args.positions {
        Positions::Last => "at the last position",
        Positions::All => "averaged over positions",
    };
    outln!("{label} ({at}), mean over pairs, largest first:");
    outln!(
        "{:>5}  {:>5}  {:>5}  {:>12}",
        "rank",
        "layer",
        "head",
        "mean |dz|"
    );
    for (rank, (l, h, v)) in diff.ranked().into_iter().take(args.show).enumerate() {
        outln!("{:>5}  {l:>5}  {h:>5}  {v:>12.6}", rank + 1);
    }
}

/// The ranked rows as sweep result rows (value: the mean norm).
fn result_rows(diff: &HeadDiff) -> Vec<ResultRow> {
    (diff.ranked().into_iter())
        .map(|(layer, head, value)| ResultRow {
            layer,
            head: Some(head),
            pos: None,
            value,
            delta: None,
            recovery: None,
        })
        .collect()
}

/// Writes every requested file; a failure is reported and the others still written.
fn write_files(model: &Model, rows: &[DatasetRow], diff: &HeadDiff, args: &DiffArgs) -> Result<()> {
    let results = result_rows(diff);
    let mut first_error = None;
    let mut attempt = |path: &std::path::Path, written: Result<()>| match written {
        Ok(()) => outln!("wrote {}", path.display()),
        Err(e) => {
            errln!("error: {e}");
            first_error.get_or_insert(e);
        }
    };
    if let Some(path) = &args.json {
        attempt(path, write_json(path, &document(rows, diff, args)));
    }
    if let Some(path) = &args.csv {
        attempt(path, write_atomic(path, csv_text(&results).as_bytes()));
    }
    if let Some(path) = &args.heatmap {
        let grid = Grid {
            rows: &results,
            tokens: &rows[0].clean,
            title: "mean |z(clean) - z(corrupted)| per head",
            colour_label: "mean L2 norm of the difference",
        };
        attempt(path, write_grid(model, &grid, path));
    }
    first_error.map_or(Ok(()), Err)
}

/// The JSON document (see [`DiffArgs::json`]).
fn document(rows: &[DatasetRow], diff: &HeadDiff, args: &DiffArgs) -> serde_json::Value {
    let ranked: Vec<_> = (diff.ranked().into_iter())
        .map(|(layer, head, v)| json!({"layer": layer, "head": head, "mean_norm": v}))
        .collect();
    let per_pair: Vec<_> = (rows.iter().zip(&diff.per_pair))
        .map(|(r, norms)| json!({"line": r.line, "norms": norms}))
        .collect();
    json!({
        "hook": "z",
        "positions": match args.positions {
            Positions::Last => "last",
            Positions::All => "all",
        },
        "prompts": rows.len(),
        "n_layers": diff.n_layers,
        "n_heads": diff.n_heads,
        "ranked": ranked,
        "per_pair": per_pair,
    })
}
