//! The datasets under `examples/datasets/` are valid for the default model (SmolLM2): every
//! line parses, every target is one token, the two prompts of each pair have the same token
//! length (so every patching site accepts them), and on the IOI prompts the model prefers the
//! indirect object (the logit difference the README's example measures is positive on
//! average).

mod gguf_common;

use std::path::Path;

use gguf_common::smollm2_path;
use hooklens::sweep::{read_dataset, DatasetKind};
use hooklens::{LogitPositions, Model, PaddingSide, RunOptions, TokenBatch};

fn dataset(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/datasets")
        .join(name)
}

#[test]
fn example_datasets_parse_for_the_default_model() {
    let model = Model::load(&smollm2_path()).unwrap();
    for (name, kind, n) in [
        ("capitals.jsonl", DatasetKind::Prompts, 10),
        ("ioi_prompts.jsonl", DatasetKind::Prompts, 8),
        ("ioi_pairs.jsonl", DatasetKind::Pairs, 8),
        ("sycophancy_pairs.jsonl", DatasetKind::Pairs, 6),
    ] {
        let rows = read_dataset(&dataset(name), kind, &model, true).unwrap();
        assert_eq!(rows.len(), n, "{name}");
        for r in &rows {
            assert!(r.against.is_some(), "{name}: line {}", r.line);
            if let Some(c) = &r.corrupted {
                assert_eq!(c.len(), r.clean.len(), "{name}: line {}", r.line);
            }
        }
    }
    // The IOI prompts as one padded batch: logit(indirect object) - logit(subject) at each
    // prompt's last real token, positive on average.
    let rows = read_dataset(
        &dataset("ioi_prompts.jsonl"),
        DatasetKind::Prompts,
        &model,
        true,
    )
    .unwrap();
    let seqs: Vec<Vec<u32>> = rows.iter().map(|r| r.clean.clone()).collect();
    let batch = TokenBatch::padded(&seqs, PaddingSide::Left, model.pad_id()).unwrap();
    let opts = RunOptions {
        logits_at: LogitPositions::Last,
        ..RunOptions::default()
    };
    let logits = model.forward(&batch, &opts).unwrap().logits.unwrap();
    let vocab = logits.shape[2];
    let mean: f32 = (rows.iter().enumerate())
        .map(|(b, r)| {
            let l = &logits.data[b * vocab..][..vocab];
            l[r.target.unwrap() as usize] - l[r.against.unwrap() as usize]
        })
        .sum::<f32>()
        / rows.len() as f32;
    assert!(mean > 0.0, "mean IOI logit difference {mean}");
}
