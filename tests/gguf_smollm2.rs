//! The default model's GGUF (SmolLM2-135M-Instruct Q4_1) against references from the `gguf`
//! Python package and HF transformers (tests/fixtures/gguf/smollm2_*.json, written by
//! scripts/golden/make_gguf_refs.py). The model file must be present: see `smollm2_path`.

mod gguf_common;

use gguf_common::{f32_values, fixture_json, max_diffs, smollm2_path};
use hooklens::model::gguf::{tokenizer_from_gguf, GgmlType, GgufFile};

fn open() -> GgufFile {
    let path = smollm2_path();
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn header_and_tensor_table() {
    let file = open();
    let refs = fixture_json("smollm2_refs.json");
    assert_eq!(file.version() as u64, refs["version"].as_u64().unwrap());
    assert_eq!(
        file.data_start() as u64,
        refs["data_start"].as_u64().unwrap()
    );
    assert_eq!(
        file.tensors().len() as u64,
        refs["tensor_count"].as_u64().unwrap()
    );
    for (ty, count) in refs["tensor_type_counts"].as_object().unwrap() {
        let n = file
            .tensors()
            .iter()
            .filter(|t| t.ggml_type.to_string() == *ty)
            .count();
        assert_eq!(n as u64, count.as_u64().unwrap(), "{ty} tensors");
    }
    let embd = file.tensor_info("token_embd.weight").unwrap();
    assert_eq!(embd.ggml_type, GgmlType::Q8_0);
    assert_eq!(embd.dims, [576, 49152]);
    assert_eq!(embd.shape(), [49152, 576]);
    let q = file.tensor_info("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.ggml_type, GgmlType::Q4_1);
    assert_eq!(q.shape(), [576, 576]);
    assert_eq!(
        file.tensor_info("blk.0.attn_k.weight").unwrap().shape(),
        [192, 576]
    );
    assert!(
        file.tensor_info("output.weight").is_none(),
        "embeddings are tied"
    );
}

#[test]
fn model_metadata() {
    let file = open();
    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(file.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(file.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(file.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(file.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(file.get_u32("llama.feed_forward_length").unwrap(), 1536);
    assert_eq!(file.get_u32("llama.vocab_size").unwrap(), 49152);
    assert_eq!(file.get_u32("llama.context_length").unwrap(), 8192);
    assert_eq!(file.get_u32("llama.rope.dimension_count").unwrap(), 64);
    assert_eq!(file.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(
        file.get_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-5
    );
    assert_eq!(file.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(file.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(
        file.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        49152
    );
    assert_eq!(
        file.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        48900
    );
    assert!(!file.get_bool("tokenizer.ggml.add_bos_token").unwrap());

    // Every scalar the reference script recorded.
    let refs = fixture_json("smollm2_refs.json");
    for (key, expected) in refs["metadata"].as_object().unwrap() {
        let got = gguf_common::value_json(file.metadata(key).unwrap());
        let same = match (got.as_f64(), expected.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => got == *expected,
        };
        assert!(same, "{key}: got {got}, expected {expected}");
    }
}

#[test]
fn dequantised_slices_match_the_gguf_package() {
    let file = open();
    let refs = fixture_json("smollm2_refs.json");
    for slice in refs["slices"].as_array().unwrap() {
        let name = slice["tensor"].as_str().unwrap();
        let info = file.tensor_info(name).unwrap();
        assert_eq!(
            info.ggml_type.to_string(),
            slice["type"].as_str().unwrap(),
            "{name}"
        );
        let shape: Vec<usize> = serde_json::from_value(slice["shape"].clone()).unwrap();
        assert_eq!(info.shape(), shape, "{name}");
        let all = file.tensor_f32(name).unwrap();
        let row_len: usize = shape[1..].iter().product();
        let got = match (slice["rows"][0].as_u64(), slice["rows"][1].as_u64()) {
            (Some(start), Some(end)) => &all[start as usize * row_len..end as usize * row_len],
            _ => &all[..],
        };
        let expected = f32_values(&slice["values"]);
        let (abs, rel) = max_diffs(got, &expected);
        println!(
            "{name:<26} rows {:>13} {:<4} max abs diff {abs:e}",
            slice["rows"].to_string(),
            info.ggml_type
        );
        assert!(
            abs <= 1e-6 && rel <= 1e-6,
            "{name}: max abs diff {abs}, rel {rel}"
        );
    }
}

#[test]
fn whole_tensor_sums_match_the_gguf_package() {
    let file = open();
    let refs = fixture_json("smollm2_refs.json");
    for entry in refs["sums"].as_array().unwrap() {
        let name = entry["tensor"].as_str().unwrap();
        let values = file.tensor_f32(name).unwrap();
        let (mut sum, mut abs_sum, mut sq_sum) = (0f64, 0f64, 0f64);
        for &x in &values {
            let x = f64::from(x);
            sum += x;
            abs_sum += x.abs();
            sq_sum += x * x;
        }
        for (label, got) in [("sum", sum), ("abs_sum", abs_sum), ("sq_sum", sq_sum)] {
            let expected = entry[label].as_f64().unwrap();
            // Only the f64 summation order differs from numpy's.
            let tol = 1e-9 * entry["abs_sum"].as_f64().unwrap().max(1.0);
            assert!(
                (got - expected).abs() <= tol,
                "{name} {label}: {got} vs {expected}"
            );
        }
    }
}

#[test]
fn tokenizer_matches_hf_transformers() {
    let file = open();
    let tok = tokenizer_from_gguf(&file).unwrap();
    assert_eq!(tok.bos_id, Some(1));
    assert_eq!(tok.eos_id, Some(2));
    assert!(!tok.add_bos);
    assert_eq!(tok.pre.as_deref(), Some("smollm"));
    assert_eq!(tok.tokenizer.get_vocab_size(true), 49152);

    let refs = fixture_json("smollm2_tokenizer.json");
    // The references drop the id HF prepends; make sure it was the GGUF's BOS.
    assert_eq!(refs["hf_prepends_id"].as_u64(), Some(1));
    let cases = refs["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let got = tok.encode(text).unwrap();
        if got != expected {
            failures.push(format!(
                "{text:?}\n  hooklens {got:?}\n  HF       {expected:?}"
            ));
            continue;
        }
        let decoded = tok.decode(&got).unwrap();
        if decoded != case["decoded"].as_str().unwrap() {
            failures.push(format!(
                "{text:?}: decoded {decoded:?}, HF {}",
                case["decoded"]
            ));
        }
    }
    println!("{} tokenizer cases checked", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn special_tokens_are_single_ids() {
    let file = open();
    let tok = tokenizer_from_gguf(&file).unwrap();
    assert_eq!(tok.encode("<|im_start|>").unwrap(), [1]);
    assert_eq!(tok.encode("<|im_end|>").unwrap(), [2]);
    assert_eq!(tok.encode("<|endoftext|>").unwrap(), [0]);
    let ids = tok.encode("<|im_start|>user\nhi<|im_end|>").unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    assert_eq!(tok.encode("").unwrap(), Vec::<u32>::new());
}
