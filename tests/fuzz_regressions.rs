//! Inputs the fuzzers (fuzz/, docs/robustness.md) found to crash hooklens, each now a typed
//! error. The raw inputs are also replayed by the fuzz crate's tests (fuzz/regressions/).

mod common;

use common::fixtures;
use hooklens::hooks::Intervention;
use hooklens::{HookLensError, Input, Model, RunOptions, Tensor, TokenBatch};

/// AFL++ (intervention target): a `set` intervention whose `values.data` is shorter than its
/// `values.shape` parsed, then panicked inside the pass on an out-of-bounds read. Now the
/// tensor is checked when deserialized.
#[test]
fn set_values_that_do_not_fill_their_shape_are_rejected_when_parsed() {
    let raw = std::fs::read(
        fixtures().join("../../fuzz/regressions/intervention/crash-set-values-short-of-shape.json"),
    )
    .unwrap();
    let err = serde_json::from_slice::<Intervention>(&raw).unwrap_err();
    assert!(
        err.to_string()
            .contains("190 values do not fill shape [4, 6, 8]"),
        "{err}"
    );

    // The same intervention, well formed, runs.
    let mut doc: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    doc["op"]["values"]["data"] = serde_json::json!(vec![0.0f32; 192]);
    let iv: Intervention = serde_json::from_value(doc).unwrap();
    let model = Model::load(&fixtures().join("llama_gqa")).unwrap();
    let tokens = TokenBatch::single(vec![1, 2, 3, 4]).unwrap();
    let run = model.run_with_interventions(
        Input::Tokens(&tokens),
        None,
        None,
        &[(0, iv)],
        &RunOptions::default(),
    );
    assert!(run.is_ok(), "{:?}", run.err());
}

#[test]
fn tensor_shapes_whose_size_overflows_are_rejected() {
    let err = Tensor::new(vec![0.0; 4], vec![usize::MAX, 3]).unwrap_err();
    assert!(matches!(err, HookLensError::Input { .. }), "{err:?}");
    let json = format!("{{\"data\": [], \"shape\": [{}, 2, 0]}}", usize::MAX);
    // A zero axis makes the product 0 only after the overflowing step: still rejected.
    assert!(serde_json::from_str::<Tensor>(&json).is_err());
}
