//! Activation patching on the default model against HF transformers hooks
//! (tests/fixtures/smollm2/patch_resid_pre.json, from scripts/golden/make_smollm2_patch_refs.py):
//! Eiffel Tower -> Colosseum, metric logit(" Paris") - logit(" Rome").

mod gguf_common;

use gguf_common::smollm2_path;
use hooklens::sweep::{patching_sweep, Metric, PatchSite, SweepOptions};
use hooklens::Model;
use serde::Deserialize;

#[derive(Deserialize)]
struct PatchRef {
    clean_ids: Vec<u32>,
    corrupted_ids: Vec<u32>,
    target_id: u32,
    other_id: u32,
    clean_value: f64,
    corrupted_value: f64,
    values: Vec<Vec<f64>>,
}

/// Logit differences here are O(5); hooklens and HF agree on probabilities to ~1e-6 and on
/// logits to ~1e-4 on this model (tests/smollm2.rs), so 2e-3 leaves room for the 300
/// independently accumulated f32 runs without hiding a wrong patch (patch effects are O(1)).
const TOL: f64 = 2e-3;

fn argmax(row: &[f64]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap()
}

#[test]
fn resid_pre_patching_matches_hf_and_shows_subject_then_last_position() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/smollm2/patch_resid_pre.json"
    );
    let r: PatchRef = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let model = Model::load(&smollm2_path()).unwrap();
    let tk = model.tokenizer().unwrap();
    assert_eq!(
        model
            .to_tokens("The Eiffel Tower is in the city of", true)
            .unwrap()
            .row(0),
        &r.clean_ids[..]
    );
    assert_eq!(
        model
            .to_tokens("The Colosseum is in the city of", true)
            .unwrap()
            .row(0),
        &r.corrupted_ids[..]
    );
    assert_eq!(tk.to_single_token(" Paris").unwrap(), r.target_id);
    assert_eq!(tk.to_single_token(" Rome").unwrap(), r.other_id);

    let spec = patching_sweep(&model, &r.clean_ids, &r.corrupted_ids, PatchSite::ResidPre).unwrap();
    let metric = Metric::LogitDiff {
        target: r.target_id,
        other: r.other_id,
    };
    let report = spec
        .run(&model, &metric, false, &SweepOptions::default())
        .unwrap();
    assert!(
        (report.clean - r.clean_value).abs() < TOL,
        "clean {} vs HF {}",
        report.clean,
        r.clean_value
    );
    let corrupted = report.corrupted.unwrap();
    assert!((corrupted - r.corrupted_value).abs() < TOL);

    let n_layers = r.values.len();
    let p = r.clean_ids.len();
    let mut ours = vec![vec![f64::NAN; p]; n_layers];
    for row in &report.results {
        ours[row.layer][row.pos.unwrap()] = row.value;
    }
    let mut worst = 0.0f64;
    for (l, (a, b)) in ours.iter().zip(&r.values).enumerate() {
        for (t, (x, y)) in a.iter().zip(b).enumerate() {
            worst = worst.max((x - y).abs());
            assert!((x - y).abs() < TOL, "layer {l} pos {t}: {x} vs HF {y}");
        }
    }
    eprintln!("SmolLM2 resid_pre patching vs HF: max |diff| = {worst:.2e}");

    // The qualitative picture, read off HF's grid: early and middle layers carry the answer at
    // a subject token, late layers at the last position.
    let subject = 2..=4; // " E", "iffel", " Tower" vs " Col", "osse", "um"
    let last = p - 1;
    let hf_best: Vec<usize> = r.values.iter().map(|row| argmax(row)).collect();
    let switch = hf_best
        .iter()
        .position(|&t| t == last)
        .expect("HF grid has a last-position phase");
    assert!(
        switch >= n_layers / 2,
        "HF's switch to the last position comes at layer {switch}"
    );
    assert!(
        hf_best[..switch].iter().all(|t| subject.contains(t)),
        "{hf_best:?}"
    );
    assert!(hf_best[switch..].iter().all(|&t| t == last), "{hf_best:?}");
    // hooklens shows the same picture, layer by layer.
    let ours_best: Vec<usize> = ours.iter().map(|row| argmax(row)).collect();
    assert_eq!(ours_best, hf_best);
    // And the patch recovers most of the clean answer where it matters.
    let recovery = |v: f64| (v - corrupted) / (report.clean - corrupted);
    assert!(recovery(ours[switch / 2][hf_best[switch / 2]]) > 0.5);
    assert!(recovery(ours[n_layers - 1][last]) > 0.5);
}
