//! HF `config.json` as transformers 4.x and 5.x write it: 5.x moves `rope_theta` into
//! `rope_parameters`, and a Llama checkpoint may carry biases the Llama path does not add.
//! Each variant either gives the HF reference logits of the same weights or is refused.

mod common;

use common::{copy_fixture, load_reference, max_abs_diff};
use hooklens::{HookLensError, Model, RunOptions, Tensor};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde_json::{json, Value};

/// The project's reference tolerance for f32 (as in `tests/golden.rs`).
const TOL: f32 = 1e-4;

/// A copy of the `llama_odd` fixture (rotary base 100000) whose config is edited by `edit`.
fn llama_odd_with(
    tag: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> std::path::PathBuf {
    let dir = copy_fixture("llama_odd", tag);
    let path = dir.join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(cfg.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    dir
}

/// The config as transformers 5.x saves it: the rotary settings in `rope_parameters`.
fn as_transformers_5(cfg: &mut serde_json::Map<String, Value>) {
    let theta = cfg.remove("rope_theta").unwrap();
    cfg.remove("rope_scaling");
    cfg.insert(
        "rope_parameters".into(),
        json!({"rope_theta": theta, "rope_type": "default"}),
    );
}

fn logits(dir: &std::path::Path) -> Tensor {
    let reference = load_reference(&common::fixtures().join("llama_odd"));
    let model = Model::load(dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
    let out = model
        .forward(&reference.tokens, &RunOptions::default())
        .unwrap();
    out.logits.unwrap()
}

fn hf_logits() -> Tensor {
    let reference = load_reference(&common::fixtures().join("llama_odd"));
    reference.tensor("hf_logits").clone()
}

#[test]
fn a_transformers_5_config_gives_the_hf_logits() {
    let dir = llama_odd_with("tf5", as_transformers_5);
    let diff = max_abs_diff(&logits(&dir), &hf_logits());
    assert!(diff <= TOL, "max |hooklens - HF| = {diff}");
}

#[test]
fn the_rotary_base_matters_so_the_test_above_can_fail() {
    // With neither spelling the base falls back to HF's default, 10000, not the fixture's
    // 100000: the logits move well beyond the tolerance.
    let dir = llama_odd_with("no-theta", |cfg| {
        cfg.remove("rope_theta");
    });
    let diff = max_abs_diff(&logits(&dir), &hf_logits());
    assert!(diff > 100.0 * TOL, "max |hooklens - HF| = {diff}");
}

#[test]
fn both_spellings_agreeing_are_accepted_and_disagreeing_refused() {
    let same = llama_odd_with("theta-same", |cfg| {
        cfg.insert("rope_parameters".into(), json!({"rope_theta": 100000.0}));
    });
    assert!(max_abs_diff(&logits(&same), &hf_logits()) <= TOL);
    let differ = llama_odd_with("theta-differ", |cfg| {
        cfg.insert("rope_parameters".into(), json!({"rope_theta": 500000.0}));
    });
    let err = Model::load(&differ)
        .err()
        .expect("two bases must be refused");
    assert!(matches!(err, HookLensError::Format { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("100000") && text.contains("500000"), "{text}");
}

#[test]
fn scaled_or_partial_rotary_parameters_are_refused() {
    let cases = [
        (
            json!({"rope_theta": 100000.0, "rope_type": "llama3", "factor": 8.0}),
            "llama3",
        ),
        (
            json!({"rope_theta": 100000.0, "type": "linear", "factor": 2.0}),
            "linear",
        ),
        (
            json!({"rope_theta": 100000.0, "partial_rotary_factor": 0.5}),
            "partial_rotary_factor",
        ),
    ];
    for (i, (params, named)) in cases.into_iter().enumerate() {
        let dir = llama_odd_with(&format!("rope-{i}"), |cfg| {
            cfg.insert("rope_parameters".into(), params);
        });
        let err = Model::load(&dir)
            .err()
            .expect("scaled rotary must be refused");
        assert!(matches!(err, HookLensError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains(named), "{err}");
    }
}

#[test]
fn llama_bias_options_are_refused() {
    for key in ["attention_bias", "mlp_bias"] {
        let dir = llama_odd_with(key, |cfg| {
            cfg.insert(key.into(), json!(true));
        });
        let err = Model::load(&dir).err().expect("biases must be refused");
        assert!(matches!(err, HookLensError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn an_output_or_mlp_bias_tensor_the_config_does_not_mention_is_refused() {
    for name in [
        "model.layers.1.self_attn.o_proj.bias",
        "model.layers.0.mlp.down_proj.bias",
    ] {
        let dir = copy_fixture("llama_odd", &format!("bias-{}", name.len()));
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let bias = vec![0u8; 60 * 4]; // [d_model] f32 zeros
        let mut tensors: Vec<(String, TensorView<'_>)> = st.tensors();
        tensors.push((
            name.into(),
            TensorView::new(Dtype::F32, vec![60], &bias).unwrap(),
        ));
        std::fs::write(&path, safetensors::serialize(tensors, None).unwrap()).unwrap();
        let err = Model::load(&dir)
            .err()
            .expect("a bias tensor must be refused");
        assert!(matches!(err, HookLensError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn gpt2_attention_scaling_variants_are_refused() {
    for (key, value) in [
        ("scale_attn_weights", false),
        ("scale_attn_by_inverse_layer_idx", true),
    ] {
        let dir = copy_fixture("gpt2_tiny", key);
        let path = dir.join("config.json");
        let mut cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg[key] = json!(value);
        std::fs::write(&path, cfg.to_string()).unwrap();
        let err = Model::load(&dir)
            .err()
            .expect("a scaling variant must be refused");
        assert!(matches!(err, HookLensError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains(key), "{err}");
    }
}
