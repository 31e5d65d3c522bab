//! Weights under TL names and cache analysis against TransformerLens 2.x on the random-weight
//! fixtures (`scripts/golden/make_analysis_refs.py`, `tests/fixtures/analysis/`).

mod common;
mod gguf_common;

use common::{fixtures, load_reference_file, max_abs_diff, Reference};
use hooklens::analysis::{direct_logit_attribution, CacheAnalysis, PosSlice, ResidStack};
use hooklens::{Model, NamesFilter, RunOptions, Tensor};

const FIXTURES: [&str; 4] = ["gpt2_tiny", "gpt2_small4", "llama_gqa", "llama_odd"];

fn load(name: &str) -> (Model, Reference) {
    let model = Model::load(&fixtures().join(name)).unwrap();
    let refs = load_reference_file(&fixtures().join(format!("analysis/{name}.safetensors")));
    (model, refs)
}

fn labels(r: &Reference, key: &str) -> Vec<String> {
    serde_json::from_str(r.meta(key)).unwrap()
}

fn assert_close(name: &str, what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let d = max_abs_diff(got, want);
    assert!(d <= tol, "{name} {what}: max |diff| {d} > {tol}");
}

#[test]
fn weights_in_tl_names_equal_tl() {
    for name in FIXTURES {
        let (model, r) = load(name);
        let mut checked = 0;
        for (key, want) in &r.tensors {
            let Some(w) = key.strip_prefix("w.") else {
                continue;
            };
            let got = model.tl_weight(w).unwrap();
            assert_close(name, w, &got, want, 1e-6);
            checked += 1;
        }
        assert!(
            checked >= 16,
            "{name}: only {checked} weights in the reference"
        );
    }
}

#[test]
fn gqa_weights_expand_per_key_value_head() {
    let (model, _) = load("llama_gqa");
    let per_kv = model.tl_weight("blocks.1.attn._W_K").unwrap(); // [2, 48, 8]
    let expanded = model.tl_weight("blocks.1.attn.W_K").unwrap(); // [6, 48, 8]
    assert_eq!(per_kv.shape, [2, 48, 8]);
    assert_eq!(expanded.shape, [6, 48, 8]);
    let per = 48 * 8;
    for h in 0..6 {
        let kv = h / 3;
        assert_eq!(
            expanded.data[h * per..][..per],
            per_kv.data[kv * per..][..per]
        );
    }
}

#[test]
fn ov_circuit_is_w_v_times_w_o() {
    let (model, _) = load("gpt2_tiny");
    let (v, o) = (
        model.tl_weight("blocks.0.attn.W_V").unwrap(), // [3, 36, 12]
        model.tl_weight("blocks.0.attn.W_O").unwrap(), // [3, 12, 36]
    );
    let ov = model.tl_weight("blocks.0.attn.OV").unwrap(); // [3, 36, 36]
    assert_eq!(ov.shape, [3, 36, 36]);
    let (h, i, j) = (2, 5, 7);
    let want: f32 = (0..12)
        .map(|t| v.data[(h * 36 + i) * 12 + t] * o.data[(h * 12 + t) * 36 + j])
        .sum();
    assert!((ov.data[(h * 36 + i) * 36 + j] - want).abs() < 1e-5);
}

#[test]
fn bad_weight_names_are_errors() {
    let (gpt2, _) = load("gpt2_tiny");
    let (llama, _) = load("llama_gqa");
    for bad in [
        "W_X",
        "blocks.2.attn.W_Q",
        "blocks.x.attn.W_Q",
        "blocks.0.attn.W_Z",
        "",
    ] {
        let e = gpt2.tl_weight(bad).unwrap_err().to_string();
        assert!(e.contains("unknown weight"), "{bad}: {e}");
    }
    assert!(gpt2.tl_weight("W_gate").is_err());
    assert!(llama
        .tl_weight("W_pos")
        .unwrap_err()
        .to_string()
        .contains("rotary"));
    assert!(llama
        .tl_weight("ln_final.b")
        .unwrap_err()
        .to_string()
        .contains("RMSNorm"));
    assert!(llama.unembed_direction(300).is_err());
}

fn analysis_of(model: &Model, r: &Reference, check: impl Fn(&CacheAnalysis<'_>)) {
    let (_, cache) = model
        .run_with_cache(&r.tokens, &NamesFilter::All, &RunOptions::default())
        .unwrap();
    check(&CacheAnalysis::new(model, &cache));
}

fn check_stack(name: &str, what: &str, got: &ResidStack, r: &Reference, key: &str) {
    assert_close(name, what, &got.tensor, r.tensor(key), 1e-4);
}

#[test]
fn cache_stacks_equal_tl() {
    for name in FIXTURES {
        let (model, r) = load(name);
        analysis_of(&model, &r, |a| {
            let acc = a
                .accumulated_resid(None, true, false, PosSlice::All)
                .unwrap();
            assert_eq!(acc.labels, labels(&r, "acc_labels"), "{name}");
            check_stack(name, "accumulated_resid", &acc, &r, "acc_resid");
            let dec = a.decompose_resid(None, false, PosSlice::All).unwrap();
            assert_eq!(dec.labels, labels(&r, "decomp_labels"), "{name}");
            check_stack(name, "decompose_resid", &dec, &r, "decomp");
            let heads = a.stack_head_results(None, false, PosSlice::All).unwrap();
            assert_eq!(heads.labels, labels(&r, "head_labels"), "{name}");
            check_stack(name, "stack_head_results", &heads, &r, "heads");
            let ln = a
                .accumulated_resid(None, true, true, PosSlice::At(-1))
                .unwrap();
            check_stack(
                name,
                "accumulated_resid(apply_ln)",
                &ln,
                &r,
                "acc_resid_ln_last",
            );
            let dec_ln = a.decompose_resid(None, true, PosSlice::At(-1)).unwrap();
            check_stack(
                name,
                "decompose_resid(apply_ln)",
                &dec_ln,
                &r,
                "decomp_ln_last",
            );
        });
    }
}

#[test]
fn components_sum_to_the_final_residual() {
    for name in FIXTURES {
        let (model, r) = load(name);
        analysis_of(&model, &r, |a| {
            let dec = a.decompose_resid(None, false, PosSlice::All).unwrap();
            let acc = a
                .accumulated_resid(None, false, false, PosSlice::All)
                .unwrap();
            let n = acc.labels.len();
            let final_post = &acc.tensor.data[(n - 1) * acc.tensor.data.len() / n..];
            let width = final_post.len();
            for (i, &want) in final_post.iter().enumerate() {
                let sum: f32 = (0..dec.labels.len())
                    .map(|c| dec.tensor.data[c * width + i])
                    .sum();
                assert!((sum - want).abs() < 1e-4, "{name}: {sum} vs {want}");
            }
        });
    }
}

#[test]
fn analysis_errors_are_typed() {
    let (model, r) = load("gpt2_tiny");
    analysis_of(&model, &r, |a| {
        assert!(a
            .accumulated_resid(Some(3), false, false, PosSlice::All)
            .is_err());
        assert!(a.decompose_resid(None, false, PosSlice::At(9)).is_err());
        assert!(a.decompose_resid(None, false, PosSlice::At(-10)).is_err());
        let mid = a
            .accumulated_resid(Some(1), false, false, PosSlice::All)
            .unwrap();
        assert!(a.logit_attrs(&mid, 1, None).is_err());
    });
    let (_, cache) = model
        .run_with_cache(
            &r.tokens,
            &NamesFilter::regex("hook_embed").unwrap(),
            &RunOptions::default(),
        )
        .unwrap();
    let a = CacheAnalysis::new(&model, &cache);
    let e = a
        .accumulated_resid(None, false, false, PosSlice::All)
        .unwrap_err();
    assert!(e.to_string().contains("not cached"), "{e}");
}

fn meta_id(r: &Reference, key: &str) -> u32 {
    r.meta(key).parse().unwrap()
}

#[test]
fn dla_equals_tl_on_the_processed_model() {
    for name in FIXTURES {
        let (model, r) = load(name);
        let (t, a) = (meta_id(&r, "target"), meta_id(&r, "against"));
        let report = direct_logit_attribution(&model, r.tokens.row(0), t, Some(a)).unwrap();
        let of = |component: &str| -> Vec<f32> {
            (report.entries.iter().filter(|e| e.component == component))
                .map(|e| e.value)
                .collect()
        };
        let near = |what: &str, got: Vec<f32>, key: &str| {
            let want = &r.tensor(key).data;
            assert_eq!(got.len(), want.len(), "{name} {what}");
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-4, "{name} {what}: {g} vs {w}");
            }
        };
        near("heads", of("head"), "p.heads_attr");
        near("embed", of("embed"), "p.embed_attr");
        near("attn_bias", of("attn_bias"), "p.attn_bias_attr");
        near("mlp", of("mlp"), "p.mlp_attr");
        if name.starts_with("gpt2") {
            near("pos_embed", of("pos_embed"), "p.pos_embed_attr");
        }
        near("logit_diff", vec![report.logit], "p.logit_diff");
        near("constant", vec![report.constant], "p.const");
        assert!(
            report.check_error() < 1e-4,
            "{name}: {}",
            report.check_error()
        );
    }
}

#[test]
fn smollm2_decomposition_sums_to_the_final_residual() {
    let model = Model::load(&gguf_common::smollm2_path()).unwrap();
    let tokens = model
        .to_tokens("The Eiffel Tower is in the city of", true)
        .unwrap();
    let (_, cache) = model
        .run_with_cache(&tokens, &NamesFilter::All, &RunOptions::default())
        .unwrap();
    let a = CacheAnalysis::new(&model, &cache);
    let dec = a.decompose_resid(None, false, PosSlice::All).unwrap();
    assert_eq!(dec.labels.len(), 1 + 2 * 30);
    let final_post = cache.get("blocks.29.hook_resid_post").unwrap();
    let width = final_post.numel();
    let mut worst = 0.0f32;
    for (i, &want) in final_post.data.iter().enumerate() {
        let sum: f32 = (0..dec.labels.len())
            .map(|c| dec.tensor.data[c * width + i])
            .sum();
        worst = worst.max((sum - want).abs() / want.abs().max(1.0));
    }
    assert!(worst < 1e-4, "relative error {worst}");
    // Heads plus biases are the attention outputs.
    let heads = a.stack_head_results(None, false, PosSlice::At(-1)).unwrap();
    let attn = cache.get("blocks.12.hook_attn_out").unwrap(); // [1, 10, 576]
    let last = &attn.data[9 * 576..];
    for (j, &want) in last.iter().enumerate() {
        let sum: f32 = (0..9)
            .map(|h| heads.tensor.data[(12 * 9 + h) * 576 + j])
            .sum();
        assert!((sum - want).abs() < 1e-4, "{sum} vs {want}");
    }
}
