//! The same input gives the same bits whatever the thread count: every kernel splits its
//! work so that no value's arithmetic depends on where a thread's share begins. (A kernel
//! called while other passes hold threads gets fewer of them, so without this a result
//! would depend on what else the process was running.) One test in its own binary: it sets
//! the process-wide thread count.

mod common;

use common::fixtures;
use hooklens::{set_num_threads, Model, NamesFilter, RunOptions, TokenBatch};

/// Every cached hook value, the logits, and a plain pass's logits, in firing order, for `threads` threads.
fn everything(model: &Model, toks: &TokenBatch, threads: usize) -> Vec<(String, Vec<u32>)> {
    set_num_threads(threads);
    let (out, cache) = model
        .run_with_cache(toks, &NamesFilter::All, &RunOptions::default())
        .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let mut all: Vec<(String, Vec<u32>)> = cache
        .iter()
        .map(|(name, t)| (name.name(), bits(&t.data)))
        .collect();
    all.push(("logits".into(), bits(&out.logits.unwrap().data)));
    // A plain pass: the fused attention kernel instead of scores, pattern and values.
    let plain = model.forward(toks, &RunOptions::default()).unwrap();
    all.push(("plain logits".into(), bits(&plain.logits.unwrap().data)));
    all
}

#[test]
fn every_hook_value_and_the_logits_have_the_same_bits_for_1_2_and_5_threads() {
    // Batches large enough that every kernel splits its work (4 x 45 and 4 x 61 rows).
    for (name, seq) in [("gpt2_small4", 45), ("llama_gqa", 61)] {
        let model = Model::load(&fixtures().join(name)).unwrap();
        let vocab = model.config().d_vocab;
        let rows: Vec<Vec<u32>> = (0..4)
            .map(|b| {
                (0..seq)
                    .map(|i| ((7 + 13 * b + 31 * i) % vocab) as u32)
                    .collect()
            })
            .collect();
        let toks = TokenBatch::from_rows(&rows).unwrap();
        let one = everything(&model, &toks, 1);
        assert!(one.len() > 20, "{name}: {} values", one.len());
        for threads in [2, 5] {
            let many = everything(&model, &toks, threads);
            assert_eq!(many.len(), one.len(), "{name}");
            for ((hook, a), (_, b)) in one.iter().zip(&many) {
                let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
                assert_eq!(differing, 0, "{name} {hook}, {threads} threads vs 1");
            }
        }
    }
    set_num_threads(0);
}
