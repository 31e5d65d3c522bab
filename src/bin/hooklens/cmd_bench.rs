//! `hooklens bench`: forward-pass speed and the measured cost of hooks, published by the tool.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use hooklens::hooks::registry::{fires_per_pass, measure_empty_fire};
use hooklens::{HookKind, HookLensError, Hooks, Model, Result, RunOptions, TokenBatch};
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
        // A read-only hook at every slot: reads every activation once. (The per-head inputs,
        // hook_mlp_in and hook_unembed are left out: watching them changes how the pass runs,
        // as TL's flags do; hook_result is in, as before they existed.)
        let hooked = median_seconds(args.reps, || {
            let sum = std::cell::Cell::new(0.0f32);
            let mut hooks = Hooks::new();
            let every = model.hook_points(true).into_iter();
            for point in every.filter(|p| !p.kind.is_opt_in() || p.kind == HookKind::Result) {
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
            "results": rows,
        });
        hooklens::output::write_json(path, &doc)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}
