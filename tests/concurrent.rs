//! One model, several threads: passes running at the same time on one `Arc<Model>` (each
//! takes its own arena from the model's pool) give exactly what the same passes give one
//! after another.

mod common;

use std::sync::Arc;

use common::fixtures;
use hooklens::{Model, NamesFilter, RunOptions, TokenBatch};

fn assert_send_sync<T: Send + Sync>() {}

/// A batch of `batch` sequences of `seq` arbitrary token ids, different per `seed`.
fn tokens(seed: usize, batch: usize, seq: usize, vocab: usize) -> TokenBatch {
    let rows: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..seq)
                .map(|t| ((seed * 7919 + b * 131 + t * 104_729) % vocab) as u32)
                .collect()
        })
        .collect();
    TokenBatch::from_rows(&rows).unwrap()
}

/// Logits and one cached activation of a pass (the cache exercises the watched kernels).
fn run(model: &Model, t: &TokenBatch) -> (Vec<f32>, Vec<f32>) {
    let filter = NamesFilter::regex(r"blocks\.1\.attn\.hook_pattern").unwrap();
    let (out, cache) = model
        .run_with_cache(t, &filter, &RunOptions::default())
        .unwrap();
    let pattern = cache
        .get("blocks.1.attn.hook_pattern")
        .unwrap()
        .data
        .clone();
    (out.logits.unwrap().data, pattern)
}

fn check(dir: &str) {
    let model = Arc::new(Model::load(&fixtures().join(dir)).unwrap());
    let vocab = model.config().d_vocab;
    // Different prompts and shapes per thread, so the arenas differ in size too.
    let shapes: Vec<TokenBatch> = (0..4)
        .map(|i| tokens(i, 1 + i % 2, 5 + 3 * i, vocab))
        .collect();
    let sequential: Vec<_> = shapes.iter().map(|t| run(&model, t)).collect();
    let handles: Vec<_> = shapes
        .into_iter()
        .map(|t| {
            let model = Arc::clone(&model);
            std::thread::spawn(move || (0..20).map(|_| run(&model, &t)).collect::<Vec<_>>())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        for got in h.join().unwrap() {
            assert_eq!(
                got, sequential[i],
                "{dir}: thread {i} differs from the sequential run"
            );
        }
    }
}

#[test]
fn four_threads_on_one_model_match_sequential_runs() {
    assert_send_sync::<Model>();
    check("gpt2_small4");
    check("llama_gqa");
}
