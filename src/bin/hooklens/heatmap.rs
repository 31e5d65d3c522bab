//! Turns a sweep report into a heatmap: layer x head, layer x position, or
//! (layer, head) x position.

use std::path::Path;

use hooklens::report::heatmap::Heatmap;
use hooklens::sweep::{ResultRow, SweepReport};
use hooklens::{Model, Result};

use crate::sweep_output::SweepContext;

/// Row label, row ticks, column label, column ticks, and each result's (row, column).
type Axes<'a> = (
    &'a str,
    Vec<String>,
    &'a str,
    Vec<String>,
    Box<dyn Fn(&ResultRow) -> (usize, usize)>,
);

/// Writes the report's grid to `path` (.png or .svg), titled with the sweep and its metric
/// (target token included); a (layer, head) x position grid gets one row tick per layer.
pub fn write_heatmap(
    model: &Model,
    report: &SweepReport,
    ctx: &SweepContext<'_>,
    path: &Path,
) -> Result<()> {
    let metric = ctx.metric;
    let colour_label = match report.corrupted {
        Some(_) => format!("recovery of {}", metric.name()),
        None => format!("change in {}", metric.name()),
    };
    let grid = Grid {
        rows: &report.results,
        tokens: ctx.tokens,
        title: ctx.title,
        colour_label: &colour_label,
    };
    write_grid(model, &grid, path)
}

/// Result rows to draw as a heatmap, with their titles.
pub struct Grid<'a> {
    /// The cells: each row's recovery, else delta, else value.
    pub rows: &'a [ResultRow],
    /// The prompt, for position ticks.
    pub tokens: &'a [u32],
    /// The title.
    pub title: &'a str,
    /// What the colours show.
    pub colour_label: &'a str,
}

/// Writes a grid of result rows (layer x head, layer x position, or (layer, head) x
/// position) to `path`.
pub fn write_grid(model: &Model, grid: &Grid<'_>, path: &Path) -> Result<()> {
    let (rows, tokens) = (grid.rows, grid.tokens);
    let n_layers = model.config().n_layers;
    let has_head = rows.iter().any(|r| r.head.is_some());
    let has_pos = rows.iter().any(|r| r.pos.is_some());
    let str_tokens = model.to_str_tokens(tokens).ok();
    let pos_ticks: Vec<String> = (0..tokens.len())
        .map(|p| match &str_tokens {
            Some(s) => format!("{p}:{}", s[p]),
            None => p.to_string(),
        })
        .collect();
    let value = |r: &ResultRow| r.recovery.or(r.delta).unwrap_or(r.value);
    let (y_label, y_ticks, x_label, x_ticks, cell): Axes<'_> = match (has_head, has_pos) {
        (true, true) => {
            let heads = model.config().n_heads;
            (
                "layer.head",
                (0..n_layers * heads)
                    .map(|i| format!("L{}H{}", i / heads, i % heads))
                    .collect(),
                "position",
                pos_ticks,
                Box::new(move |r| (r.layer * heads + r.head.unwrap_or(0), r.pos.unwrap_or(0))),
            )
        }
        (true, false) => (
            "layer",
            (0..n_layers).map(|l| l.to_string()).collect(),
            "head",
            (0..model.config().n_heads).map(|h| h.to_string()).collect(),
            Box::new(|r| (r.layer, r.head.unwrap_or(0))),
        ),
        (false, true) => (
            "layer",
            (0..n_layers).map(|l| l.to_string()).collect(),
            "position",
            pos_ticks,
            Box::new(|r| (r.layer, r.pos.unwrap_or(0))),
        ),
        (false, false) => (
            "layer",
            (0..n_layers).map(|l| l.to_string()).collect(),
            "",
            vec!["all".to_string()],
            Box::new(|r| (r.layer, 0)),
        ),
    };
    let cols = x_ticks.len();
    let mut values = vec![f64::NAN; y_ticks.len() * cols];
    for r in rows {
        let (y, x) = cell(r);
        values[y * cols + x] = value(r);
    }
    let group_ticks = if has_head && has_pos {
        let heads = model.config().n_heads;
        (0..n_layers)
            .map(|l| (l * heads, format!("L{l}")))
            .collect()
    } else {
        Vec::new()
    };
    let heatmap = Heatmap::new(
        grid.title.to_string(),
        x_label.to_string(),
        y_label.to_string(),
        x_ticks,
        y_ticks,
        values,
        grid.colour_label.to_string(),
    )?
    .with_y_group_ticks(group_ticks)?;
    heatmap.write(path)
}
