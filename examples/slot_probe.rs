//! Which watched slots cost what: a do-nothing hook at every point of one kind (in every
//! layer), and at every default point (`ALL`, `hooklens bench`'s `empty_slots`), against a
//! plain pass, in interleaved rounds; the median process CPU time per pass of each.
//!
//! ```text
//! cargo run --release --example slot_probe -- MODEL BATCH SEQ ROUNDS
//! ```
//!
//! `PROBE_ALL_ONLY=1` times `ALL` alone; `PROBE_ONLY=KIND` (or `plain`) runs that pass
//! `ROUNDS` times and prints nothing, for `perf record`. `HOOKLENS_THREADS` and
//! `HOOKLENS_KERNEL` apply as everywhere.

#[path = "common/pass_input.rs"]
mod pass_input;

use hooklens::hooks::point::hook_points;
use hooklens::{HookPoint, Hooks, Model, RunOptions, TokenBatch};
use pass_input::{arbitrary_tokens, number_arg};

/// CPU time of the whole process (every engine thread) in seconds.
fn process_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The kinds of the default points, in firing order, then `ALL`.
fn kinds(points: &[HookPoint]) -> Vec<String> {
    if std::env::var("PROBE_ALL_ONLY").is_ok() {
        return vec!["ALL".into()];
    }
    let mut kinds: Vec<String> = Vec::new();
    for p in points {
        let k = format!("{:?}", p.kind);
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    kinds.push("ALL".into());
    kinds
}

/// CPU seconds of one pass with a do-nothing hook at the points of `kind` (none: plain).
fn timed_pass(model: &Model, tokens: &TokenBatch, kind: Option<&str>) -> hooklens::Result<f64> {
    let opts = RunOptions::default();
    let start = process_cpu_seconds();
    match kind {
        None => drop(std::hint::black_box(model.forward(tokens, &opts)?)),
        Some(kind) => {
            let mut hooks = Hooks::new();
            for p in hook_points(model.config(), false) {
                if kind == "ALL" || format!("{:?}", p.kind) == kind {
                    hooks.add(p, |_, _| Ok(()));
                }
            }
            drop(std::hint::black_box(
                model.run_with_hooks(tokens, &mut hooks, &opts)?,
            ));
        }
    }
    Ok(process_cpu_seconds() - start)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> hooklens::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: slot_probe MODEL BATCH SEQ ROUNDS";
    let [path, batch, seq, rounds] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let number = |s: &str| number_arg(usage, s);
    let (batch, seq, rounds) = (number(batch), number(seq), number(rounds).max(1));
    let model = Model::load(std::path::Path::new(path))?;
    let tokens = arbitrary_tokens(batch, seq, model.config().d_vocab)?;
    timed_pass(&model, &tokens, None)?; // warm-up
    if let Ok(only) = std::env::var("PROBE_ONLY") {
        let kind = (only != "plain").then_some(only.as_str());
        for _ in 0..rounds {
            timed_pass(&model, &tokens, kind)?;
        }
        return Ok(());
    }
    let kinds = kinds(&hook_points(model.config(), false));
    let (mut plain, mut watched) = (Vec::new(), vec![Vec::new(); kinds.len()]);
    for _ in 0..rounds {
        for (kind, times) in kinds.iter().zip(&mut watched) {
            plain.push(timed_pass(&model, &tokens, None)?);
            times.push(timed_pass(&model, &tokens, Some(kind))?);
        }
    }
    let plain = median(plain);
    println!(
        "plain {:.3} ms of CPU per pass ({batch}x{seq})",
        plain * 1e3
    );
    for (kind, times) in kinds.iter().zip(watched) {
        let m = median(times);
        println!(
            "{kind:>20} {:+6.2} % ({:.3} ms)",
            (m / plain - 1.0) * 100.0,
            m * 1e3
        );
    }
    Ok(())
}
