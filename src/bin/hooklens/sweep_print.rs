//! A sweep's report on the terminal: the metric, the clean (and corrupted) values, the
//! engine's work, the top entries and a per-layer summary.

use hooklens::sweep::{Metric, ResultRow, SweepReport};
use hooklens::Model;

use crate::cmd_sweep::OutputArgs;
use crate::target::describe_metric;
use crate::term::{out, outln};

/// The value a row is ranked by: recovery, else delta, else the value.
pub fn score(row: &ResultRow) -> f64 {
    row.recovery.or(row.delta).unwrap_or(row.value)
}

/// Prints the report (a closed stdout ends the printing quietly).
pub fn print_report(
    model: &Model,
    report: &SweepReport,
    metric: &Metric,
    tokens: &[u32],
    label: &str,
    out: &OutputArgs,
) {
    let stats = &report.outcome.stats;
    outln!("{label}: metric {} ", describe_metric(model, metric));
    out!("clean {:.4}", report.clean);
    if let Some(c) = report.corrupted {
        out!("  corrupted {c:.4}");
    }
    outln!();
    outln!(
        "{} variants in {:.3} s ({} engine, {} passes, {:.2} GFLOP, {:.1} GFLOP/s, peak arena {:.1} MiB)",
        stats.variants,
        stats.seconds,
        if out.naive { "naive" } else { "batched" },
        stats.passes,
        stats.flops / 1e9,
        stats.flops / 1e9 / stats.seconds.max(1e-9),
        stats.peak_arena_bytes as f64 / (1 << 20) as f64
    );
    let column = if report.corrupted.is_some() {
        "recovery"
    } else {
        "delta"
    };
    print_top(model, report, tokens, column, out.show);
    print_per_layer(model, report, column);
}

fn print_top(model: &Model, report: &SweepReport, tokens: &[u32], column: &str, show: usize) {
    let mut rows: Vec<&ResultRow> = report.results.iter().collect();
    rows.sort_by(|a, b| score(b).abs().total_cmp(&score(a).abs()));
    outln!("top {} by |{column}|:", show.min(rows.len()));
    let tokenizer = model.tokenizer().ok();
    for r in rows.iter().take(show) {
        let mut place = format!("L{:<3}", r.layer);
        if let Some(h) = r.head {
            place.push_str(&format!(" H{h:<3}"));
        }
        if let Some(p) = r.pos {
            let tok = match (tokenizer, tokens.get(p)) {
                (Some(tk), Some(&id)) => format!(" {}", tk.show_token(id)),
                _ => String::new(),
            };
            place.push_str(&format!(" pos {p:<3}{tok}"));
        }
        outln!(
            "  {place:<32} value {:>10.4}  {column} {:>9.4}",
            r.value,
            score(r)
        );
    }
}

fn print_per_layer(model: &Model, report: &SweepReport, column: &str) {
    outln!("per layer (max |{column}|, mean {column}):");
    for l in 0..model.config().n_layers {
        let cells: Vec<f64> = report
            .results
            .iter()
            .filter(|r| r.layer == l)
            .map(score)
            .collect();
        if cells.is_empty() {
            continue;
        }
        let max = cells
            .iter()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { *v } else { m });
        let mean = cells.iter().sum::<f64>() / cells.len() as f64;
        outln!("  layer {l:>2}: {max:>9.4} {mean:>9.4}");
    }
}
