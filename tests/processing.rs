//! TL's weight processing (`LoadOptions::tl()`) against TransformerLens 2.18's processed model
//! (`HookedTransformer.from_pretrained`'s processing on the same random weights:
//! `scripts/golden/make_processed_refs.py`, `tests/fixtures/processed/`): every hook value,
//! the logits and the processed weights under TL names.

mod common;

use common::{fixtures, load_reference_file, max_abs_diff, Reference};
use hooklens::analysis::direct_logit_attribution;
use hooklens::model::weight_cache::WeightCache;
use hooklens::{Device, LoadOptions, Model, NamesFilter, RunOptions};

/// TL and hooklens both compute in f32; the processed model's values are ~1 in size.
const TOL: f32 = 1e-4;

fn load(dir: &str, options: LoadOptions) -> Model {
    Model::load_with_options(
        &fixtures().join(dir),
        Device::Cpu,
        WeightCache::Off,
        options,
    )
    .unwrap()
}

fn refs(name: &str) -> Reference {
    load_reference_file(&fixtures().join(format!("processed/{name}.safetensors")))
}

/// Every hook in the reference and the logits equal the processed model's.
fn check_hooks(name: &str, model: &Model) {
    let r = refs(name);
    let hooks: Vec<&String> = (r.tensors.keys())
        .filter(|k| !k.starts_with("w.") && *k != "logits")
        .collect();
    // Every hook of the reference, the opt-in attn.hook_result included.
    let filter = NamesFilter::from(hooks.iter().map(|k| k.as_str()).collect::<Vec<_>>());
    let (out, cache) = model
        .run_with_cache(&r.tokens, &filter, &RunOptions::default())
        .unwrap();
    let mut checked = 0;
    for key in hooks {
        let want = r.tensor(key);
        let got = cache.get(key.as_str()).unwrap();
        let d = max_abs_diff(got, want);
        assert!(d <= TOL, "{name} {key}: max |diff| {d}");
        checked += 1;
    }
    assert!(checked >= 38, "{name}: only {checked} hooks checked");
    let d = max_abs_diff(out.logits.as_ref().unwrap(), r.tensor("logits"));
    assert!(d <= TOL, "{name} logits: max |diff| {d}");
}

#[test]
fn processed_gpt2_hooks_equal_tl() {
    check_hooks("gpt2_tiny", &load("gpt2_tiny", LoadOptions::tl()));
}

#[test]
fn processed_llama_hooks_equal_tl() {
    check_hooks("llama_gqa", &load("llama_gqa", LoadOptions::tl()));
}

#[test]
fn processed_llama_gguf_hooks_equal_tl() {
    let path = fixtures().join("llama_gqa/model.gguf");
    let model =
        Model::load_with_options(&path, Device::Cpu, WeightCache::Off, LoadOptions::tl()).unwrap();
    check_hooks("llama_gqa", &model);
}

#[test]
fn processed_weights_in_tl_names_equal_tl() {
    for name in ["gpt2_tiny", "llama_gqa"] {
        let (model, r) = (load(name, LoadOptions::tl()), refs(name));
        let mut checked = 0;
        for (key, want) in &r.tensors {
            let Some(w) = key.strip_prefix("w.") else {
                continue;
            };
            let got = model.tl_weight(w).unwrap();
            let d = max_abs_diff(&got, want);
            assert!(d <= 1e-5, "{name} {w}: max |diff| {d}");
            checked += 1;
        }
        assert!(checked >= 16, "{name}: only {checked} weights");
    }
}

#[test]
fn processing_changes_the_weights_but_not_the_log_probs() {
    for name in ["gpt2_tiny", "llama_gqa"] {
        let r = refs(name);
        let plain = load(name, LoadOptions::default());
        let tl = load(name, LoadOptions::tl());
        let w_u = |m: &Model| m.tl_weight("W_U").unwrap();
        assert!(max_abs_diff(&w_u(&plain), &w_u(&tl)) > 1e-3, "{name}");
        let logits = |m: &Model| {
            let out = m.forward(&r.tokens, &RunOptions::default()).unwrap();
            out.logits.unwrap()
        };
        let (a, b) = (logits(&plain), logits(&tl));
        let v = plain.config().d_vocab;
        for (ra, rb) in a.data.chunks_exact(v).zip(b.data.chunks_exact(v)) {
            let (la, lb) = (log_softmax(ra), log_softmax(rb));
            let d = la
                .iter()
                .zip(&lb)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(d <= TOL, "{name}: log-probs differ by {d}");
        }
    }
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = row
        .iter()
        .map(|&x| ((x - max) as f64).exp())
        .sum::<f64>()
        .ln() as f32
        + max;
    row.iter().map(|&x| x - lse).collect()
}

#[test]
fn each_step_alone_keeps_the_log_probs() {
    let r = refs("gpt2_tiny");
    let plain = load("gpt2_tiny", LoadOptions::default());
    let base = plain.forward(&r.tokens, &RunOptions::default()).unwrap();
    let base = base.logits.unwrap();
    let steps = [
        LoadOptions {
            fold_ln: true,
            ..LoadOptions::default()
        },
        LoadOptions {
            center_writing_weights: true,
            ..LoadOptions::default()
        },
        LoadOptions {
            fold_value_biases: true,
            ..LoadOptions::default()
        },
    ];
    for opts in steps {
        let m = load("gpt2_tiny", opts);
        let out = m.forward(&r.tokens, &RunOptions::default()).unwrap();
        // Without center_unembed the logits themselves are unchanged.
        let d = max_abs_diff(out.logits.as_ref().unwrap(), &base);
        assert!(d <= TOL, "{opts:?}: logits differ by {d}");
    }
}

/// `hooklens dla` on a model loaded with `LoadOptions::tl()` equals TL's `logit_attrs` on TL's
/// processed model (the same references `tests/analysis.rs` checks the unprocessed load on).
#[test]
fn dla_on_the_processed_model_equals_tl() {
    for name in ["gpt2_tiny", "gpt2_small4", "llama_gqa", "llama_odd"] {
        let r = load_reference_file(&fixtures().join(format!("analysis/{name}.safetensors")));
        let model = load(name, LoadOptions::tl());
        let id = |key: &str| -> u32 { r.meta(key).parse().unwrap() };
        let (t, a) = (id("target"), id("against"));
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
                assert!((g - w).abs() < TOL, "{name} {what}: {g} vs {w}");
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
            report.check_error() < TOL,
            "{name}: {}",
            report.check_error()
        );
    }
}

#[test]
fn unknown_process_names_are_an_error() {
    assert_eq!(LoadOptions::parse("tl").unwrap(), LoadOptions::tl());
    assert_eq!(LoadOptions::parse("none").unwrap(), LoadOptions::default());
    let err = LoadOptions::parse("fold").unwrap_err().to_string();
    assert!(err.contains("expected tl or none"), "{err}");
}

/// Through the packed-weight cache: the processed weights are written to their own file and
/// read back equal; an unprocessed load of the same checkpoint never gets them.
#[test]
fn processed_weights_through_the_weight_cache_equal_tl() {
    let dir = common::temp_dir("processing-weight-cache");
    let policy = WeightCache::On(dir.clone());
    let path = fixtures().join("gpt2_tiny");
    let load_cached =
        |options| Model::load_with_options(&path, Device::Cpu, policy.clone(), options).unwrap();
    let written = load_cached(LoadOptions::tl());
    let read = load_cached(LoadOptions::tl());
    let plain = load_cached(LoadOptions::default());
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files, 2,
        "one cache file each for processed and unprocessed weights"
    );
    check_hooks("gpt2_tiny", &written);
    check_hooks("gpt2_tiny", &read);
    let w_u = |m: &Model| m.tl_weight("W_U").unwrap();
    let unprocessed = load("gpt2_tiny", LoadOptions::default());
    assert_eq!(w_u(&plain), w_u(&unprocessed));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Processing runs on the CPU; a device load with it is a typed error before any device work.
#[test]
fn processing_on_a_device_is_unsupported() {
    let path = fixtures().join("gpt2_tiny");
    let err = Model::load_with_options(&path, Device::Cuda(0), WeightCache::Off, LoadOptions::tl())
        .err()
        .unwrap();
    assert!(
        matches!(err, hooklens::HookLensError::Unsupported { .. }),
        "{err}"
    );
}
