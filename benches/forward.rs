//! Forward-pass throughput and the cost of hooks, on random weights of GPT-2-small and
//! SmolLM2-135M shape (no files needed):
//!
//! ```text
//! HOOKLENS_THREADS=2 cargo bench --bench forward
//! ```
//!
//! Groups (throughput in tokens):
//! - `forward/{model}/{B}x{T}`: a plain pass, all logits, at (1, 16), (8, 128) and (144, 16);
//! - `hooks/{model}/1x16/{plain,empty,read_all}`: the same pass through `forward`, through
//!   `run_with_hooks` with a hook whose selector matches no point (every slot is checked and
//!   found empty), and with a read-only hook at every slot, opt-in ones included (it adds up
//!   each activation, 16 lanes at a time).
//!
//! The side-by-side comparison with HF transformers and TransformerLens is
//! `scripts/bench/forward.py` (it uses `hooklens bench`, which reports the same quantities).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use hooklens::backend::cpu::activation::sum_of;
use hooklens::model::random::random_weights;
use hooklens::{HookSelector, Hooks, Model, ModelConfig, RunOptions, TokenBatch};

/// Shapes of the CPU-kernels issue: (batch, tokens).
const SHAPES: [(usize, usize); 3] = [(1, 16), (8, 128), (144, 16)];

fn model(name: &str, cfg: ModelConfig) -> Model {
    let weights = random_weights(&cfg, 0);
    Model::from_parts(cfg, weights, None, format!("random:{name}").into())
        .expect("random weights fit their configuration")
}

fn tokens(model: &Model, batch: usize, seq: usize) -> TokenBatch {
    hooklens::bench::tokens_for(model, (batch, seq)).expect("ids inside the vocabulary")
}

fn bench_model(c: &mut Criterion, name: &str, model: &Model) {
    let opts = RunOptions::default();
    let mut group = c.benchmark_group(format!("forward/{name}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    for (batch, seq) in SHAPES {
        let input = tokens(model, batch, seq);
        group.measurement_time(Duration::from_secs(if batch * seq > 100 { 20 } else { 3 }));
        group.throughput(Throughput::Elements((batch * seq) as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{batch}x{seq}")), |b| {
            b.iter(|| black_box(model.forward(&input, &opts).expect("forward")))
        });
    }
    group.finish();

    let input = tokens(model, 1, 16);
    let mut group = c.benchmark_group(format!("hooks/{name}/1x16"));
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(16));
    group.bench_function("plain", |b| {
        b.iter(|| black_box(model.forward(&input, &opts).expect("forward")))
    });
    group.bench_function("empty", |b| {
        b.iter(|| {
            // A selector that matches no point: the pass checks every slot and finds it
            // empty, so this measures the slots alone against `plain`.
            let mut hooks = Hooks::new();
            hooks.add(HookSelector::predicate(|_| false), |_, _| Ok(()));
            black_box(
                model
                    .run_with_hooks(&input, &mut hooks, &opts)
                    .expect("forward"),
            )
        })
    });
    group.bench_function("read_all", |b| {
        b.iter(|| {
            let mut total = 0.0f32;
            let mut hooks = Hooks::new();
            hooks.add(HookSelector::predicate(|_| true), |act, _| {
                total += sum_of(act.data());
                Ok(())
            });
            black_box(
                model
                    .run_with_hooks(&input, &mut hooks, &opts)
                    .expect("forward"),
            );
            drop(hooks);
            black_box(total)
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_model(
        &mut c,
        "gpt2-small",
        &model("gpt2-small", ModelConfig::gpt2_small()),
    );
    bench_model(
        &mut c,
        "smollm2-135m",
        &model("smollm2-135m", ModelConfig::smollm2_135m()),
    );
    c.final_summary();
}
