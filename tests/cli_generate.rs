//! `hooklens generate` end to end: greedy output equals HF's `generate(do_sample=False)`
//! (tests/fixtures/generate/refs.json), streaming, steering options and bad input.

mod common;

use common::{fixtures, hooklens, temp_dir};
use serde_json::Value;

fn refs() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("generate/refs.json")).unwrap())
        .unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// A safetensors file holding one f32 vector.
fn vector_file(path: &std::path::Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![values.len()], &bytes)
            .unwrap();
    safetensors::serialize_to_file([("v", view)], None, path).unwrap();
}

#[test]
fn greedy_json_equals_hf_and_text_streams_to_stdout() {
    let r = refs();
    let case = &r["random"][0];
    let model = fixtures().join(case["fixture"].as_str().unwrap());
    let dir = temp_dir("gen-cli");
    let json = dir.join("g.json");
    let prompt = ids(&case["prompt"]);
    let max_new = case["max_new"].to_string();
    let (ok, out, err) = hooklens(&[
        "--model",
        model.to_str().unwrap(),
        "generate",
        "--tokens",
        &list(&prompt),
        "--max-new",
        &max_new,
        "--ignore-eos",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(ids(&doc["new_tokens"]), ids(&case["new_tokens"]));
    let mut all = prompt.clone();
    all.extend(ids(&case["new_tokens"]));
    assert_eq!(ids(&doc["tokens"]), all);
    let text = doc["text"].as_str().unwrap();
    assert!(!text.is_empty());
    assert_eq!(
        out.trim_end_matches('\n'),
        text,
        "stdout is the streamed text"
    );
    assert!(err.contains("tokens/s"), "{err}");
}

#[test]
fn steering_options_work_and_a_zero_vector_changes_nothing() {
    let model = fixtures().join("gpt2_small4"); // d_model 64
    let m = model.to_str().unwrap();
    let dir = temp_dir("gen-steer");
    let (zero, big, wrong) = (
        dir.join("zero.safetensors"),
        dir.join("big.safetensors"),
        dir.join("wrong.safetensors"),
    );
    vector_file(&zero, &[0.0; 64]);
    vector_file(
        &big,
        &(0..64)
            .map(|i| if i % 2 == 0 { 3.0 } else { -3.0 })
            .collect::<Vec<_>>(),
    );
    vector_file(&wrong, &[1.0; 10]);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--model",
            m,
            "generate",
            "--tokens",
            "449,5,9",
            "--max-new",
            "12",
            "--ignore-eos",
        ];
        args.extend(extra);
        let (ok, out, err) = hooklens(&args);
        assert!(ok, "{extra:?}: {err}");
        out
    };
    let plain = run(&[]);
    let zero_spec = format!("1:{}:5", zero.display());
    assert_eq!(run(&["--steer", &zero_spec]), plain);
    let big_spec = format!("1:{}:2", big.display());
    assert_ne!(run(&["--steer", &big_spec]), plain);
    // The same prompt twice: a zero difference.
    assert_eq!(
        run(&[
            "--steer-prompts",
            "ab",
            "ab",
            "--layer",
            "1",
            "--scale",
            "3"
        ]),
        plain
    );
    assert_ne!(
        run(&[
            "--steer-prompts",
            "abc",
            "xyz",
            "--layer",
            "1",
            "--scale",
            "20"
        ]),
        plain
    );
    for (bad, needle) in [
        (format!("1:{}", big.display()), "LAYER:FILE"),
        (format!("9:{}:1", big.display()), "3 layers"),
        (format!("1:{}:1", wrong.display()), "d_model is 64"),
        ("1:/nonexistent.safetensors:1".to_string(), "nonexistent"),
    ] {
        let (ok, _, err) = hooklens(&[
            "--model",
            m,
            "generate",
            "--tokens",
            "1,2",
            "--max-new",
            "2",
            "--steer",
            &bad,
        ]);
        assert!(!ok && err.contains(needle), "{bad}: {err}");
    }
}

#[test]
fn seeded_sampling_repeats_and_bad_options_are_errors() {
    let model = fixtures().join("gpt2_small4");
    let m = model.to_str().unwrap();
    let sample = |seed: &str| {
        let (ok, out, err) = hooklens(&[
            "--model",
            m,
            "generate",
            "--tokens",
            "449,5,9",
            "--max-new",
            "20",
            "--ignore-eos",
            "--temperature",
            "1.0",
            "--top-k",
            "40",
            "--top-p",
            "0.9",
            "--seed",
            seed,
        ]);
        assert!(ok, "{err}");
        out
    };
    assert_eq!(sample("1"), sample("1"));
    assert_ne!(sample("1"), sample("2"));
    for bad in [
        ["--top-p", "1.5"],
        ["--temperature", "-1"],
        ["--top-k", "0"],
    ] {
        let mut args = vec![
            "--model",
            m,
            "generate",
            "--tokens",
            "1,2",
            "--max-new",
            "2",
        ];
        args.extend(bad);
        let (ok, _, err) = hooklens(&args);
        assert!(!ok && !err.contains("panicked"), "{bad:?}: {err}");
    }
    let (ok, _, err) = hooklens(&[
        "--model",
        m,
        "generate",
        "--tokens",
        "1,2",
        "--max-new",
        "60",
    ]);
    assert!(!ok && err.contains("context of 48"), "{err}");
}
