//! `hooklens bench`: what every kind of intervention costs, timed, counted and published.

use std::path::PathBuf;

use clap::Args;
use hooklens::bench::{run_bench, BenchPlan, BenchReport, BenchRow, Case, Progress};
use hooklens::{HookLensError, Model, Result};

use crate::term::{errln, outln};

/// `bench` options.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Shapes of the pass cases, as BATCHxTOKENS (comma-separated).
    #[arg(long, default_value = "1x16,2x64")]
    pub shapes: String,
    /// Cases (comma-separated, or `all`): plain, plain_last (logits at each sequence's last
    /// position only), empty_slots, read_all, cache_all,
    /// builtin_zero_head, closure_zero_head, c_callback_zero_head, python_zero_head,
    /// sweep_engine, sweep_naive.
    #[arg(long, default_value = "all")]
    pub cases: String,
    /// Timed runs per pass case, after one warm-up (median, min and max are reported).
    #[arg(long, default_value_t = 3, value_parser = crate::parse::positive_count)]
    pub reps: usize,
    /// Timed runs per sweep (the every-head zero-ablation sweep, batched and naive).
    #[arg(long, default_value_t = 1, value_parser = crate::parse::positive_count)]
    pub sweep_reps: usize,
    /// Tokens of the sweeps' prompt.
    #[arg(long, default_value_t = 16, value_parser = crate::parse::positive_count)]
    pub sweep_tokens: usize,
    /// The Python interpreter for python_zero_head (skipped, with the reason, when it cannot
    /// import the hooklens package).
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Write the machine and every row as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

fn parse_shapes(text: &str) -> Result<Vec<(usize, usize)>> {
    text.split(',')
        .map(|s| {
            let (b, p) = s.trim().split_once('x').ok_or_else(|| {
                HookLensError::input(format!("--shapes: `{s}` is not BATCHxTOKENS (e.g. 8x128)"))
            })?;
            let parse = |v: &str| {
                v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                    HookLensError::input(format!("--shapes: `{v}` is not a positive number"))
                })
            };
            Ok((parse(b)?, parse(p)?))
        })
        .collect()
}

/// Runs the command.
pub fn run(model: &Model, args: &BenchArgs) -> Result<()> {
    let plan = BenchPlan {
        shapes: parse_shapes(&args.shapes)?,
        cases: Case::parse_list(&args.cases)?,
        reps: args.reps,
        sweep_reps: args.sweep_reps,
        sweep_tokens: args.sweep_tokens,
        python: args.python.clone(),
    };
    let report = run_bench(model, &plan, &mut show_progress)?;
    print_report(&report);
    if let Some(path) = &args.json {
        let doc = serde_json::to_value(&report)
            .map_err(|e| HookLensError::input(format!("the report as JSON: {e}")))?;
        hooklens::output::write_json(path, &doc)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

/// One line on stderr per event.
fn show_progress(event: Progress<'_>) {
    match event {
        Progress::Estimate { rows, seconds } => {
            errln!("bench: {rows} rows, about {seconds:.0} s")
        }
        Progress::Group {
            shape,
            cases,
            rounds,
        } => errln!(
            "bench: {shape}: {} cases, a warm-up each, then {rounds} interleaved timed rounds",
            cases.len()
        ),
        Progress::Done { index, rows, row } => errln!(
            "[{}/{rows}] {} {}: {:.2} ms median",
            index + 1,
            row.case,
            row.shape,
            row.median_ms
        ),
        Progress::Skipped(skip) => errln!("bench: {} skipped: {}", skip.case, skip.reason),
    }
}

/// The machine, the per-slot costs and the table.
fn print_report(report: &BenchReport) {
    let m = &report.machine;
    outln!(
        "{} | {} cores, {} threads | kernel path {} | device {} | hooklens {}",
        m.cpu,
        m.cores,
        m.threads,
        m.isa,
        m.gpu.as_deref().unwrap_or("cpu"),
        m.versions.hooklens
    );
    outln!("model {}", report.model);
    let s = &report.per_slot;
    outln!(
        "one hook slot, per fire: empty {:.1} ns | Rust closure {:.1} ns | C callback {:.1} ns \
         ({:.2}x the closure)",
        s.empty_ns,
        s.rust_closure_ns,
        s.c_callback_ns,
        s.c_callback_ns / s.rust_closure_ns
    );
    outln!(
        "{:<21} {:>7} {:>11} {:>11} {:>11} {:>8} {:>9} {:>13} {:>11}",
        "case",
        "shape",
        "median ms",
        "min ms",
        "max ms",
        "ratio",
        "GFLOP/s",
        "copied bytes",
        "peak MiB"
    );
    for row in &report.rows {
        outln!("{}", table_line(row));
    }
    for skip in &report.skipped {
        outln!("{:<21} skipped: {}", skip.case, skip.reason);
    }
}

fn table_line(row: &BenchRow) -> String {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    format!(
        "{:<21} {:>7} {:>11.2} {:>11.2} {:>11.2} {:>8} {:>9} {:>13} {:>11}",
        row.case,
        row.shape,
        row.median_ms,
        row.min_ms,
        row.max_ms,
        or_dash(row.ratio.map(|r| format!("{r:.3}x"))),
        or_dash(
            row.gflop
                .map(|g| format!("{:.1}", g / (row.median_ms / 1e3)))
        ),
        or_dash(row.bytes_copied.map(|b| b.to_string())),
        or_dash(
            row.peak_bytes
                .map(|b| format!("{:.1}", b as f64 / 1048576.0))
        ),
    )
}
