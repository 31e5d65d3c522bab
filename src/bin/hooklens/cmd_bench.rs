//! `hooklens bench`: forward-pass speed and the measured cost of hooks, published by the tool.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use hooklens::ffi::CHook;
use hooklens::hooks::registry::{fires_per_pass, measure_empty_fire};
use hooklens::{HookKind, HookLensError, HookPoint, Hooks, Model, Result, RunOptions, TokenBatch};
use serde_json::json;

use crate::term::outln;

/// `bench` options.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Shapes to time, as BATCHxSEQ (comma-separated).
    #[arg(long, default_value = "1x16,8x128,144x16")]
    pub shapes: String,
    /// Timed repetitions per measurement, at least 1 (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = crate::parse::positive_count)]
    pub reps: usize,
    /// Write the measurements as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

fn parse_shapes(text: &str) -> Result<Vec<(usize, usize)>> {
    text.split(',')
        .map(|s| {
            let (b, p) = s.trim().split_once('x').ok_or_else(|| {
                HookLensError::input(format!("--shapes: `{s}` is not BATCHxSEQ (e.g. 8x128)"))
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

/// Median wall time of `reps` runs of `f` after one warm-up.
fn median_seconds(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// A C-ABI hook callback that does nothing: what the C path costs beyond the call itself.
unsafe extern "C" fn c_noop(
    _name: *const std::os::raw::c_char,
    _data: *mut f32,
    _shape: *const i64,
    _ndim: std::os::raw::c_int,
    _user: *mut std::os::raw::c_void,
) -> std::os::raw::c_int {
    0
}

/// The hook points the hooked timings watch: every default slot plus `hook_result` (the
/// per-head inputs, hook_mlp_in and hook_unembed are left out: watching them changes how the
/// pass runs, as TL's flags do; hook_result is in, as before they existed).
fn watched_points(model: &Model) -> Vec<HookPoint> {
    let every = model.hook_points(true).into_iter();
    every
        .filter(|p| !p.kind.is_opt_in() || p.kind == HookKind::Result)
        .collect()
}

/// One pass with a do-nothing hook at every watched point: a Rust closure, or the C ABI's
/// callback path (`hl_run_with_hook`'s trampoline) calling a C function. Its seconds.
fn noop_hooks_pass(
    model: &Model,
    tokens: &TokenBatch,
    points: &[HookPoint],
    c_abi: bool,
) -> Result<f64> {
    // SAFETY: c_noop ignores its arguments and returns 0, so any user pointer will do.
    let c_hook = unsafe { CHook::new(c_noop, std::ptr::null_mut()) };
    let mut hooks = Hooks::new();
    if c_abi {
        c_hook.register(points, &mut hooks);
    } else {
        for point in points {
            hooks.add(*point, |_, _| Ok(()));
        }
    }
    let started = Instant::now();
    black_box(model.run_with_hooks(tokens, &mut hooks, &RunOptions::default())?);
    Ok(started.elapsed().as_secs_f64())
}

/// What a C callback costs per hook slot beyond a Rust closure, in seconds: one-token passes
/// with a do-nothing hook at every watched slot, the two kinds alternated, the fastest of
/// each taken (the least disturbed by other work), the difference divided by the slots.
/// One thread: hooks fire on the calling thread, and no wait for workers blurs the figure.
fn c_callback_cost(model: &Model, reps: usize) -> Result<f64> {
    let points = watched_points(model);
    let tokens = TokenBatch::single(vec![0])?;
    let threads = hooklens::backend::cpu::threads::num_threads();
    hooklens::set_num_threads(1);
    let (mut rust, mut c) = (f64::INFINITY, f64::INFINITY);
    let mut timed = || -> Result<()> {
        for _ in 0..reps.max(1) * 10 {
            rust = rust.min(noop_hooks_pass(model, &tokens, &points, false)?);
            c = c.min(noop_hooks_pass(model, &tokens, &points, true)?);
        }
        Ok(())
    };
    let result = timed();
    hooklens::set_num_threads(threads);
    result.map(|()| (c - rust) / points.len() as f64)
}

/// Runs the command.
pub fn run(model: &Model, args: &BenchArgs) -> Result<()> {
    let cfg = model.config();
    let opts = RunOptions::default();
    let mut rows = Vec::new();
    let fire_s = measure_empty_fire(cfg, 200_000)?;
    let fires = fires_per_pass(cfg);
    outln!(
        "empty hook slot: {:.2} ns per fire, {fires} fires per pass = {:.2} µs per pass",
        fire_s * 1e9,
        fire_s * fires as f64 * 1e6
    );
    let c_callback_s = c_callback_cost(model, args.reps)?;
    outln!(
        "C callback (hl_run_with_hook, a C function doing nothing): {:+.0} ns per hooked slot \
         over a Rust closure",
        c_callback_s * 1e9
    );
    outln!(
        "{:>9} {:>12} {:>12} {:>14} {:>14}",
        "shape",
        "forward ms",
        "tokens/s",
        "read-all hooks",
        "(ratio)"
    );
    for (batch, seq) in parse_shapes(&args.shapes)? {
        if seq > cfg.n_ctx {
            return Err(HookLensError::SequenceTooLong {
                len: seq,
                n_ctx: cfg.n_ctx,
            });
        }
        let ids: Vec<Vec<u32>> = (0..batch)
            .map(|b| {
                (0..seq)
                    .map(|i| ((b * 131 + i * 7919 + 17) % cfg.d_vocab) as u32)
                    .collect()
            })
            .collect();
        let tokens = TokenBatch::from_rows(&ids)?;
        let plain = median_seconds(args.reps, || {
            black_box(model.forward(&tokens, &opts)?);
            Ok(())
        })?;
        // A read-only hook at every watched slot: reads every activation once.
        let hooked = median_seconds(args.reps, || {
            let sum = std::cell::Cell::new(0.0f32);
            let mut hooks = Hooks::new();
            for point in watched_points(model) {
                hooks.add(point, |act, _| {
                    sum.set(sum.get() + act.data().iter().sum::<f32>());
                    Ok(())
                });
            }
            black_box(model.run_with_hooks(&tokens, &mut hooks, &opts)?);
            drop(hooks);
            black_box(sum.get());
            Ok(())
        })?;
        let tps = (batch * seq) as f64 / plain;
        let empty_ratio = fire_s * fires as f64 / plain;
        outln!(
            "{:>9} {:>12.2} {:>12.0} {:>14.2} {:>13.3}x   empty slots {:.5}% of the pass",
            format!("{batch}x{seq}"),
            plain * 1e3,
            tps,
            hooked * 1e3,
            hooked / plain,
            empty_ratio * 100.0
        );
        rows.push(json!({
            "batch": batch, "seq": seq, "forward_s": plain, "tokens_per_s": tps,
            "read_all_hooks_s": hooked, "read_all_hooks_ratio": hooked / plain,
            "empty_slots_fraction": empty_ratio,
        }));
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "model": model.source().display().to_string(),
            "threads": hooklens::backend::cpu::threads::num_threads(),
            "reps": args.reps,
            "empty_fire_ns": fire_s * 1e9,
            "fires_per_pass": fires,
            "c_callback_extra_ns_per_slot": c_callback_s * 1e9,
            "results": rows,
        });
        hooklens::output::write_json(path, &doc)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}
