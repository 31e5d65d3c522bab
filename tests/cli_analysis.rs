//! `hooklens dla` and `hooklens logit-lens` end to end: values against the TL references of
//! `tests/fixtures/analysis/` (scripts/golden/make_analysis_refs.py) and HF's SmolLM2
//! probabilities (tests/fixtures/smollm2/reference.json).

mod common;
mod gguf_common;

use common::{fixtures, hooklens, load_reference_file, temp_dir};
use gguf_common::smollm2_path;
use serde_json::Value;

fn tokens_arg(row: &[u32]) -> String {
    row.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn values_of(doc: &Value, component: &str) -> Vec<f32> {
    (doc["results"].as_array().unwrap().iter())
        .filter(|r| r["component"] == component)
        .map(|r| r["value"].as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn dla_json_equals_tl_and_sums_to_the_logit_difference() {
    check_dla_json("none");
}

/// The same values from the weights TL's processing gives (`--process tl`).
#[test]
fn dla_json_on_processed_weights_equals_tl() {
    check_dla_json("tl");
}

/// `hooklens --process PROCESS dla` on gpt2_small4 against TL's processed model.
fn check_dla_json(process: &str) {
    let dir = temp_dir(&format!("dla-gpt2-{process}"));
    let r = load_reference_file(&fixtures().join("analysis/gpt2_small4.safetensors"));
    let model = fixtures().join("gpt2_small4");
    let (json, png) = (dir.join("dla.json"), dir.join("dla.svg"));
    let (ok, out, err) = hooklens(&[
        "--model",
        model.to_str().unwrap(),
        "--process",
        process,
        "dla",
        "--tokens",
        &tokens_arg(r.tokens.row(0)),
        "--target-id",
        r.meta("target"),
        "--against-id",
        r.meta("against"),
        "--json",
        json.to_str().unwrap(),
        "--heatmap",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(!err.contains("warning"), "{err}");
    let doc = read_json(&json);
    let results = doc["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        2 + 3 * (4 + 2),
        "embed, pos_embed, per layer 4 heads + bias + mlp"
    );
    for (component, key) in [
        ("head", "p.heads_attr"),
        ("mlp", "p.mlp_attr"),
        ("attn_bias", "p.attn_bias_attr"),
        ("embed", "p.embed_attr"),
        ("pos_embed", "p.pos_embed_attr"),
    ] {
        let got = values_of(&doc, component);
        let want = &r.tensor(key).data;
        assert_eq!(got.len(), want.len(), "{component}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{component}: {g} vs TL {w}");
        }
    }
    let logit_diff = doc["logit_diff"].as_f64().unwrap() as f32;
    assert!((logit_diff - r.tensor("p.logit_diff").data[0]).abs() < 1e-4);
    let sum = doc["sum"].as_f64().unwrap() as f32;
    let constant = doc["constant"].as_f64().unwrap() as f32;
    assert!(
        (sum + constant - logit_diff).abs() < 1e-4,
        "{sum} + {constant} vs {logit_diff}"
    );
    assert!(std::fs::read_to_string(&png).unwrap().contains("<svg"));
    assert!(results[0]["layer"].is_null() && results[0]["component"] == "embed");
}

#[test]
fn dla_on_smollm2_sums_to_the_logit_difference() {
    let dir = temp_dir("dla-smollm2");
    let json = dir.join("dla.json");
    let model = smollm2_path();
    let (ok, out, err) = hooklens(&[
        "--model",
        model.to_str().unwrap(),
        "dla",
        "--prompt",
        "The Eiffel Tower is in the city of",
        "--target",
        " Paris",
        "--against",
        " Rome",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    let doc = read_json(&json);
    assert_eq!(doc["results"].as_array().unwrap().len(), 1 + 30 * (9 + 2));
    let sum = doc["sum"].as_f64().unwrap();
    let diff = doc["logit_diff"].as_f64().unwrap();
    assert_eq!(doc["constant"].as_f64().unwrap(), 0.0, "RMSNorm, no b_U");
    assert!((sum - diff).abs() < 1e-4, "{sum} vs {diff}");
    assert!(diff > 0.5, "SmolLM2 prefers Paris over Rome here: {diff}");
    assert!(out.contains("top 20 components"), "{out}");
}

#[test]
fn logit_lens_final_layer_equals_hf_probabilities() {
    let refs: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("smollm2/reference.json")).unwrap(),
    )
    .unwrap();
    let prompt = &refs["prompts"][0];
    let top = &prompt["top"][0];
    let dir = temp_dir("lens-smollm2");
    let json = dir.join("lens.json");
    let model = smollm2_path();
    let ids: Vec<u32> = (prompt["ids"].as_array().unwrap().iter())
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let (ok, out, err) = hooklens(&[
        "--model",
        model.to_str().unwrap(),
        "logit-lens",
        "--tokens",
        &tokens_arg(&ids),
        "--target-id",
        &top["id"].to_string(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    let doc = read_json(&json);
    let rows = doc["results"].as_array().unwrap();
    assert_eq!(rows.len(), 31, "30 layers' inputs and final_post");
    let last = &rows[30];
    assert_eq!(last["label"], "final_post");
    assert_eq!(last["top_token"], top["id"]);
    let (got, want) = (
        last["target_prob"].as_f64().unwrap(),
        top["prob"].as_f64().unwrap(),
    );
    assert!((got - want).abs() < 1e-3, "{got} vs HF {want}");
}

#[test]
fn logit_lens_equals_tl_accumulated_resid_through_the_final_norm() {
    let r = load_reference_file(&fixtures().join("analysis/llama_gqa.safetensors"));
    let dir = temp_dir("lens-llama");
    let (json, svg) = (dir.join("lens.json"), dir.join("lens.svg"));
    let model = fixtures().join("llama_gqa");
    let target = r.meta("target");
    let (ok, out, err) = hooklens(&[
        "--model",
        model.to_str().unwrap(),
        "logit-lens",
        "--tokens",
        &tokens_arg(r.tokens.row(0)),
        "--target-id",
        target,
        "--all-positions",
        "--json",
        json.to_str().unwrap(),
        "--heatmap",
        svg.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    let doc = read_json(&json);
    let rows = doc["results"].as_array().unwrap();
    assert_eq!(rows.len(), 3 * 10, "2 layers + final_post, 10 positions");
    // TL: accumulated_resid(apply_ln=True, pos_slice=-1) (the final norm per component) @ W_U.
    let normed = r.tensor("acc_resid_ln_last"); // [5, batch, 48]: 0_pre, 0_mid, 1_pre, 1_mid, final
    let w_u = r.tensor("w.W_U"); // [48, 300]
    let t: usize = target.parse().unwrap();
    for (k, c) in [(0, 0), (1, 2), (2, 4)] {
        let x = &normed.data[(c * 2) * 48..][..48]; // batch row 0
        let logits: Vec<f32> = (0..300)
            .map(|v| (0..48).map(|i| x[i] * w_u.data[i * 300 + v]).sum())
            .collect();
        let max = logits.iter().copied().fold(f32::MIN, f32::max);
        let z: f32 = logits.iter().map(|l| (l - max).exp()).sum();
        let want = (logits[t] - max).exp() / z;
        let row = &rows[k * 10 + 9];
        assert_eq!(row["pos"], 9);
        let got = row["target_prob"].as_f64().unwrap() as f32;
        assert!((got - want).abs() < 1e-5, "layer {k}: {got} vs {want}");
    }
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn dla_and_lens_bad_inputs_are_errors() {
    let gpt2 = fixtures().join("gpt2_tiny");
    let (ok, _, err) = hooklens(&[
        "--model",
        gpt2.to_str().unwrap(),
        "--process",
        "fold",
        "dla",
        "--tokens",
        "1,2",
        "--target-id",
        "3",
    ]);
    assert!(!ok && err.contains("expected tl or none"), "{err}");
    let model = fixtures().join("gpt2_tiny");
    let m = model.to_str().unwrap();
    let (ok, _, err) = hooklens(&["--model", m, "dla", "--tokens", "1,2,3"]);
    assert!(!ok && err.contains("--target"), "{err}");
    let (ok, _, err) = hooklens(&["--model", m, "dla", "--tokens", "1,2", "--target-id", "450"]);
    assert!(!ok && err.contains("outside the vocabulary"), "{err}");
    let (ok, _, err) = hooklens(&[
        "--model",
        m,
        "dla",
        "--tokens",
        "1,2",
        "--target-id",
        "3",
        "--heatmap",
        "/tmp/x.bmp",
    ]);
    assert!(!ok && err.starts_with("error:"), "{err}");
    let (ok, _, err) = hooklens(&["--model", m, "logit-lens", "--tokens", "1,999"]);
    assert!(!ok && err.contains("999"), "{err}");
    let (ok, _, err) = hooklens(&[
        "--model",
        m,
        "logit-lens",
        "--tokens",
        "1,2",
        "--target-id",
        "999",
    ]);
    assert!(!ok && err.contains("999"), "{err}");
}
