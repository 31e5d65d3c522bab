//! A sweep's files (`--json`, `--csv`, `--heatmap`): checked before the sweep runs, written
//! atomically after it, each one even when another fails.

use hooklens::output::{check_writable, write_atomic, write_json};
use hooklens::report::heatmap::Heatmap;
use hooklens::sweep::{
    report_document, Metric, ResultRow, SweepContext as DocumentContext, SweepReport,
};
use hooklens::{Model, Result};

use crate::cmd_sweep::OutputArgs;
use crate::term::{errln, outln};

/// What the files describe besides the report.
pub struct SweepContext<'a> {
    /// The metric measured.
    pub metric: &'a Metric,
    /// The clean tokens.
    pub tokens: &'a [u32],
    /// The corrupted tokens of a patching sweep.
    pub corrupted_tokens: Option<&'a [u32]>,
    /// The sweep's title, for the heatmap.
    pub title: &'a str,
}

/// Checks every output path before any work: the directory exists and is writable, and the
/// heatmap's extension is one it can be written as.
pub fn check(out: &OutputArgs) -> Result<()> {
    if let Some(path) = &out.heatmap {
        Heatmap::format_of(path)?;
    }
    for path in [&out.json, &out.csv, &out.heatmap].into_iter().flatten() {
        check_writable(path)?;
    }
    Ok(())
}

/// Writes every requested file. A failure is reported and the other files are still
/// written; the first error is returned.
pub fn write_all(
    model: &Model,
    report: &SweepReport,
    ctx: &SweepContext<'_>,
    out: &OutputArgs,
) -> Result<()> {
    let mut first_error = None;
    let mut attempt = |path: &std::path::Path, written: Result<()>| match written {
        Ok(()) => outln!("wrote {}", path.display()),
        Err(e) => {
            errln!("error: {e}");
            first_error.get_or_insert(e);
        }
    };
    if let Some(path) = &out.json {
        attempt(path, write_report_json(model, report, ctx, out.naive, path));
    }
    if let Some(path) = &out.csv {
        attempt(
            path,
            write_atomic(path, csv_text(&report.results).as_bytes()),
        );
    }
    if let Some(path) = &out.heatmap {
        attempt(
            path,
            crate::heatmap::write_heatmap(model, report, ctx, path),
        );
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn write_report_json(
    model: &Model,
    report: &SweepReport,
    ctx: &SweepContext<'_>,
    naive: bool,
    path: &std::path::Path,
) -> Result<()> {
    let doc_ctx = DocumentContext {
        metric: ctx.metric,
        tokens: ctx.tokens,
        corrupted_tokens: ctx.corrupted_tokens,
        naive,
    };
    write_json(path, &report_document(model, report, &doc_ctx))
}

/// The results as CSV: `layer,head,pos,value,delta,recovery`, one line per row.
pub fn csv_text(results: &[ResultRow]) -> String {
    let mut text = String::from("layer,head,pos,value,delta,recovery\n");
    let opt = |v: Option<usize>| v.map_or(String::new(), |x| x.to_string());
    let optf = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for r in results {
        text.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.layer,
            opt(r.head),
            opt(r.pos),
            r.value,
            optf(r.delta),
            optf(r.recovery)
        ));
    }
    text
}
