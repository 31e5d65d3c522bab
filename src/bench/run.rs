//! Running a [`BenchPlan`]: the rows in order, an estimate first, one progress event per row.

use std::time::Instant;

use super::cases::{run_pass_case, run_sweep_case, Case};
use super::{
    heap, measure_slot_costs, python, BenchPlan, BenchReport, BenchRow, Machine, Progress, Skipped,
};
use crate::copies::{counted, CopyStats};
use crate::error::{HookLensError, Result};
use crate::{Model, TokenBatch};

/// One row to run: a case at a shape.
#[derive(Clone, Copy, PartialEq)]
struct Job {
    case: Case,
    shape: (usize, usize),
}

/// What the timed runs of one row measured.
#[derive(Default)]
struct Measured {
    times_s: Vec<f64>,
    copies: Option<CopyStats>,
    peak_bytes: Option<u64>,
}

/// Runs every case of `plan` on `model`, reporting each row to `progress` as it finishes.
pub fn run_bench(
    model: &Model,
    plan: &BenchPlan,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<BenchReport> {
    check_plan(model, plan)?;
    let mut machine = Machine::this(model.device());
    let mut skipped = Vec::new();
    let python_missing = (plan.cases.contains(&Case::PythonZeroHead))
        .then(|| python::unavailable(model, &plan.python))
        .flatten();
    if let Some(reason) = python_missing.clone() {
        let skip = Skipped {
            case: Case::PythonZeroHead.name().into(),
            reason,
        };
        progress(Progress::Skipped(&skip));
        skipped.push(skip);
    }
    let per_slot = measure_slot_costs(model.config(), 5)?;
    let jobs = jobs_of(plan, python_missing.is_none());
    let seconds = estimate(model, plan, &jobs)?;
    progress(Progress::Estimate {
        rows: jobs.len(),
        seconds,
    });
    let mut rows: Vec<BenchRow> = Vec::with_capacity(jobs.len());
    for group in groups(&jobs) {
        let shape = format!("{}x{}", group.shape.0, group.shape.1);
        let rounds = if group.cases[0].is_sweep() {
            plan.sweep_reps
        } else {
            plan.reps
        };
        progress(Progress::Group {
            shape: &shape,
            cases: &group.cases,
            rounds,
        });
        let (measured, python_version) = measure_group(model, plan, &group, rounds)?;
        if python_version.is_some() {
            machine.versions.python = python_version;
        }
        let plain_rounds = (group.cases.iter().zip(&measured))
            .find(|(c, _)| **c == Case::Plain)
            .map(|(_, m)| m.times_s.clone());
        for (case, m) in group.cases.iter().zip(measured) {
            // The Python case times itself later, in its own process: not in the rounds.
            let rounds = plain_rounds
                .as_deref()
                .filter(|_| *case != Case::PythonZeroHead);
            let row = to_row(model, *case, group.shape, m, (rounds, &rows));
            progress(Progress::Done {
                index: rows.len(),
                rows: jobs.len(),
                row: &row,
            });
            rows.push(row);
        }
    }
    Ok(BenchReport {
        machine,
        model: model.source().display().to_string(),
        per_slot,
        rows,
        skipped,
    })
}

/// Refuses an empty plan and shapes the model cannot run.
fn check_plan(model: &Model, plan: &BenchPlan) -> Result<()> {
    let n_ctx = model.config().n_ctx;
    let too_long = (plan.shapes.iter().map(|s| s.1))
        .chain(std::iter::once(plan.sweep_tokens))
        .find(|&len| len > n_ctx);
    if let Some(len) = too_long {
        return Err(HookLensError::SequenceTooLong { len, n_ctx });
    }
    if plan.cases.is_empty() || plan.reps == 0 || plan.sweep_reps == 0 {
        return Err(HookLensError::input(
            "a benchmark needs at least one case and one timed run",
        ));
    }
    if plan.shapes.is_empty() && plan.cases.iter().any(|c| !c.is_sweep()) {
        return Err(HookLensError::input(
            "the pass cases need at least one shape",
        ));
    }
    if plan.sweep_tokens == 0 || plan.shapes.iter().any(|&(b, p)| b == 0 || p == 0) {
        return Err(HookLensError::input(
            "shapes need at least one sequence and one token",
        ));
    }
    Ok(())
}

/// The rows in running order: per shape, its pass cases (plain first); then the sweeps,
/// after a plain row at the sweep's prompt when the shapes have none (their ratio's base).
fn jobs_of(plan: &BenchPlan, python: bool) -> Vec<Job> {
    let wanted = |c: &Case| plan.cases.contains(c) && (python || *c != Case::PythonZeroHead);
    let mut jobs = Vec::new();
    for &shape in &plan.shapes {
        for case in Case::ALL.iter().filter(|c| wanted(c) && !c.is_sweep()) {
            jobs.push(Job { case: *case, shape });
        }
    }
    let sweep_shape = (1, plan.sweep_tokens);
    let sweeps: Vec<Case> = Case::ALL
        .into_iter()
        .filter(|c| wanted(c) && c.is_sweep())
        .collect();
    let plain_there = jobs.contains(&Job {
        case: Case::Plain,
        shape: sweep_shape,
    });
    if !sweeps.is_empty() && !plain_there {
        jobs.push(Job {
            case: Case::Plain,
            shape: sweep_shape,
        });
    }
    jobs.extend(sweeps.into_iter().map(|case| Job {
        case,
        shape: sweep_shape,
    }));
    jobs
}

/// The benchmarks' token ids for a (batch, tokens) shape: deterministic, spread over the
/// vocabulary, every row different (also used by the criterion benches).
pub fn tokens_for(model: &Model, (batch, seq): (usize, usize)) -> Result<TokenBatch> {
    let vocab = model.config().d_vocab;
    let rows: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..seq)
                .map(|i| ((b * 131 + i * 7919 + 17) % vocab) as u32)
                .collect()
        })
        .collect();
    TokenBatch::from_rows(&rows)
}

/// Estimated seconds for every job, from one plain pass per shape (which also warms up).
fn estimate(model: &Model, plan: &BenchPlan, jobs: &[Job]) -> Result<f64> {
    let mut plain_s: Vec<((usize, usize), f64)> = Vec::new();
    let mut total = 0.0;
    for job in jobs {
        let pass = match plain_s.iter().find(|(s, _)| *s == job.shape) {
            Some(&(_, t)) => t,
            None => {
                let tokens = tokens_for(model, job.shape)?;
                let started = Instant::now();
                run_pass_case(model, Case::Plain, &tokens)?;
                let t = started.elapsed().as_secs_f64();
                plain_s.push((job.shape, t));
                t
            }
        };
        total += job_estimate(model, plan, job.case, pass);
    }
    Ok(total)
}

/// A job's estimated seconds, given one plain pass of its shape: rough factors measured
/// on a 2-core CPU, enough for "about how long".
fn job_estimate(model: &Model, plan: &BenchPlan, case: Case, pass_s: f64) -> f64 {
    let heads = (model.config().n_layers * model.config().n_heads) as f64;
    let runs = (plan.reps + 1) as f64;
    match case {
        Case::Plain
        | Case::PlainLast
        | Case::BuiltinZeroHead
        | Case::ClosureZeroHead
        | Case::CCallbackZeroHead => runs * pass_s,
        Case::EmptySlots | Case::ReadAll => runs * pass_s * 1.3,
        Case::CacheAll => runs * pass_s * 1.6,
        Case::PythonZeroHead => runs * pass_s * 1.1 + 2.0,
        Case::SweepEngine => plan.sweep_reps as f64 * pass_s * heads * 0.15,
        Case::SweepNaive => plan.sweep_reps as f64 * pass_s * (heads + 1.0),
    }
}

/// The cases of one shape, timed together.
struct Group {
    shape: (usize, usize),
    cases: Vec<Case>,
}

/// Consecutive jobs of one shape and kind (pass cases, or sweeps) as groups.
fn groups(jobs: &[Job]) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for job in jobs {
        match out.last_mut() {
            Some(g) if g.shape == job.shape && g.cases[0].is_sweep() == job.case.is_sweep() => {
                g.cases.push(job.case)
            }
            _ => out.push(Group {
                shape: job.shape,
                cases: vec![job.case],
            }),
        }
    }
    out
}

/// One in-process case of a group: a run of it.
fn run_once(model: &Model, case: Case, tokens: &TokenBatch) -> Result<()> {
    if case.is_sweep() {
        run_sweep_case(model, case, tokens.row(0))
    } else {
        run_pass_case(model, case, tokens)
    }
}

/// Times a group: each in-process case warmed up once (its copies and heap peak measured
/// then, from freed pass buffers), then `rounds` rounds running each case once; the Python
/// case times itself in its own process. Also the Python version, when it ran.
fn measure_group(
    model: &Model,
    plan: &BenchPlan,
    group: &Group,
    rounds: usize,
) -> Result<(Vec<Measured>, Option<String>)> {
    let tokens = tokens_for(model, group.shape)?;
    let in_process = |c: &Case| *c != Case::PythonZeroHead;
    let mut measured = Vec::with_capacity(group.cases.len());
    for &case in &group.cases {
        measured.push(match case {
            Case::PythonZeroHead => Measured::default(),
            // Sweeps follow the pass cases: already warm, and too long to run twice.
            _ if case.is_sweep() => Measured::default(),
            _ => warm_up(model, || run_once(model, case, &tokens))?,
        });
    }
    for _ in 0..rounds {
        for (m, &case) in measured
            .iter_mut()
            .zip(&group.cases)
            .filter(|(_, c)| in_process(c))
        {
            // A case not warmed up (a sweep) has its memory measured on its first run.
            let fresh = m.copies.is_none();
            let start_bytes = fresh.then(|| fresh_start(model)).flatten();
            let started = Instant::now();
            let (result, copied) = counted(|| run_once(model, case, &tokens));
            m.times_s.push(started.elapsed().as_secs_f64());
            result?;
            if fresh {
                m.copies = Some(copied);
                m.peak_bytes = peak_above(start_bytes);
            }
        }
    }
    let mut python_version = None;
    for (m, &case) in measured.iter_mut().zip(&group.cases) {
        if case == Case::PythonZeroHead {
            let times = python::run(model, &plan.python, &tokens, rounds)?;
            m.times_s = times.times_s;
            python_version = Some(times.python);
        }
    }
    Ok((measured, python_version))
}

/// An untimed run from freed pass buffers: its copies, and the heap it held at its peak.
fn warm_up(model: &Model, run: impl FnOnce() -> Result<()>) -> Result<Measured> {
    let start_bytes = fresh_start(model);
    let (result, copies) = counted(run);
    result?;
    Ok(Measured {
        times_s: Vec::new(),
        copies: Some(copies),
        peak_bytes: peak_above(start_bytes),
    })
}

/// Frees the pass buffers and starts a heap peak: the heap bytes in use now, when counted.
fn fresh_start(model: &Model) -> Option<usize> {
    model.release_buffers();
    heap::reset_peak();
    heap::in_use()
}

/// The heap peak since [`fresh_start`] above its bytes then.
fn peak_above(start_bytes: Option<usize>) -> Option<u64> {
    let peak = heap::peak_since_reset().zip(start_bytes);
    peak.map(|(p, s)| p.saturating_sub(s) as u64)
}

/// The row of a measured job. Its ratio: the median over the rounds of its time over the
/// plain pass's in the same round, when plain ran in its rounds (`plain_rounds`, in round
/// order; drift between rounds cancels); else its median over the median of the plain row
/// of its shape among `earlier` rows.
fn to_row(
    model: &Model,
    case: Case,
    dims: (usize, usize),
    measured: Measured,
    (plain_rounds, earlier): (Option<&[f64]>, &[BenchRow]),
) -> BenchRow {
    let per_round = plain_rounds
        .filter(|p| p.len() == measured.times_s.len())
        .map(|p| {
            let mut r: Vec<f64> = (measured.times_s.iter().zip(p))
                .map(|(t, p)| t / p)
                .collect();
            r.sort_by(f64::total_cmp);
            median(&r)
        });
    let shape = format!("{}x{}", dims.0, dims.1);
    let mut times = measured.times_s;
    times.sort_by(f64::total_cmp);
    let median_ms = median(&times) * 1e3;
    let plain = earlier
        .iter()
        .find(|r| r.case == Case::Plain.name() && r.shape == shape);
    BenchRow {
        case: case.name().into(),
        device: model.device().name(),
        shape,
        median_ms,
        min_ms: times[0] * 1e3,
        max_ms: times[times.len() - 1] * 1e3,
        runs: times.len(),
        ratio: match case {
            Case::Plain => Some(1.0),
            _ => per_round.or(plain.map(|p| median_ms / p.median_ms)),
        },
        gflop: case.gflop(model, dims),
        bytes_copied: measured.copies.map(|c| c.total()),
        copies: measured.copies,
        peak_bytes: measured.peak_bytes,
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}
