//! Memory of a dataset sweep is bounded by `max_rows`, not by the number of prompts: a
//! generated 1,000-prompt file through `run_dataset` reports the same peak arena and peak
//! kept base-run bytes as its first 100 prompts, both under a bound computed from
//! `max_rows` alone; and chunking the base runs leaves every prompt's values unchanged
//! (equal to one full forward per variant on the prompts both runs share).

mod common;

use common::{fixtures, temp_dir};
use hooklens::sweep::{
    ablation_sweep, read_dataset, run_dataset, AblationMethod, AblationTarget, DatasetKind,
    DatasetReport, DatasetRow, Metric, SweepOptions, SweepSpec,
};
use hooklens::Model;

const TOL: f64 = 1e-4;
const MAX_ROWS: usize = 48;

/// `n` prompts of 4 to 8 tokens, written to a file in a temp dir and read back.
fn dataset(model: &Model, n: usize) -> Vec<DatasetRow> {
    let vocab = model.config().d_vocab;
    let text: String = (0..n)
        .map(|i| {
            let len = 4 + i % 5;
            let ids: Vec<usize> = (0..len).map(|j| (7 * i + 37 * j + 1) % vocab).collect();
            let against = if i % 3 == 0 {
                String::new()
            } else {
                format!(", \"against_id\": {}", (i + 9) % vocab)
            };
            format!(
                "{{\"tokens\": {ids:?}, \"target_id\": {}{against}}}\n",
                i % vocab
            )
        })
        .collect();
    let path = temp_dir(&format!("dataset-memory-{n}")).join("data.jsonl");
    std::fs::write(&path, text).unwrap();
    read_dataset(&path, DatasetKind::Prompts, model, false).unwrap()
}

fn sweep(model: &Model, rows: &[DatasetRow], naive: bool) -> DatasetReport {
    let specs: Vec<SweepSpec> = (rows.iter())
        .map(|r| {
            ablation_sweep(
                model,
                &r.clean,
                AblationTarget::Heads,
                &AblationMethod::Zero,
            )
            .unwrap()
        })
        .collect();
    let metrics: Vec<Metric> = rows.iter().map(|r| r.metric(false).unwrap()).collect();
    let opts = SweepOptions {
        max_rows: MAX_ROWS,
        ..SweepOptions::default()
    };
    run_dataset(model, &specs, &metrics, naive, &opts).unwrap()
}

/// Bytes the base runs of `rows` positions keep: logits, every layer's residual input and
/// the final residual, keys and values.
fn kept_bytes(model: &Model, rows: usize) -> usize {
    let c = model.config();
    let per_row =
        c.d_vocab + (c.n_layers + 1) * c.d_model + 2 * c.n_layers * c.n_kv_heads * c.d_head;
    rows * per_row * 4
}

#[test]
fn memory_does_not_grow_with_the_number_of_prompts() {
    let model = Model::load(&fixtures().join("gpt2_tiny")).unwrap();
    let large = dataset(&model, 1000);
    let small = &large[..100];
    let (a, b) = (sweep(&model, small, false), sweep(&model, &large, false));
    assert_eq!(b.per_prompt.len(), 1000);
    assert_eq!(a.stats.peak_arena_bytes, b.stats.peak_arena_bytes);
    assert_eq!(a.stats.peak_base_bytes, b.stats.peak_base_bytes);
    // One chunk's base runs hold at most MAX_ROWS positions (prompts are at most 8 long).
    assert!(b.stats.peak_base_bytes > 0);
    assert!(
        b.stats.peak_base_bytes <= kept_bytes(&model, MAX_ROWS),
        "{} kept bytes for a budget of {MAX_ROWS} rows",
        b.stats.peak_base_bytes
    );
    // Without chunking, 200 prompts of one length would keep 200 x length rows at once.
    assert!(b.stats.peak_base_bytes < kept_bytes(&model, 200 * 4));
    // The first 100 prompts' values do not depend on how many prompts ran with them.
    for (p, (x, y)) in a.per_prompt.iter().zip(&b.per_prompt).enumerate() {
        assert!((x.clean - y.clean).abs() <= TOL, "prompt {p}: clean");
        for (e, (u, v)) in x.results.iter().zip(&y.results).enumerate() {
            assert!((u.value - v.value).abs() <= TOL, "prompt {p} entry {e}");
        }
    }
}

#[test]
fn chunked_dataset_sweep_equals_the_naive_loop() {
    let model = Model::load(&fixtures().join("gpt2_tiny")).unwrap();
    let rows = dataset(&model, 40);
    let (batched, naive) = (sweep(&model, &rows, false), sweep(&model, &rows, true));
    assert!(batched.stats.passes > 5, "{} passes", batched.stats.passes);
    for (p, (x, y)) in batched.per_prompt.iter().zip(&naive.per_prompt).enumerate() {
        assert!((x.clean - y.clean).abs() <= TOL, "prompt {p}: clean");
        for (e, (u, v)) in x.results.iter().zip(&y.results).enumerate() {
            assert!((u.value - v.value).abs() <= TOL, "prompt {p} entry {e}");
        }
    }
    for (u, v) in batched.results.iter().zip(&naive.results) {
        assert!((u.value - v.value).abs() <= TOL);
    }
}
