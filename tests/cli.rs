//! The command line end to end: `hooks`, `run --cache/--json`, and its errors.

mod common;

use common::{fixtures, hooklens, load_reference, max_abs_diff, temp_dir};
use hooklens::Tensor;
use safetensors::SafeTensors;

#[test]
fn hooks_lists_tl_names_in_order_with_shapes() {
    let dir = fixtures().join("llama_gqa");
    let (ok, stdout, _) = hooklens(&["--model", dir.to_str().unwrap(), "hooks"]);
    assert!(ok);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0].split_whitespace().next(), Some("hook_embed"));
    let k_line = lines
        .iter()
        .find(|l| l.starts_with("blocks.0.attn.hook_k "))
        .unwrap();
    assert!(k_line.contains(" [batch, pos, 2, 8]"), "{k_line}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("blocks.1.attn.hook_rot_q ")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("blocks.1.mlp.hook_pre_linear ")));
    assert!(!lines.iter().any(|l| l.starts_with("hook_pos_embed")));
    assert_eq!(
        lines.last().unwrap().split_whitespace().next(),
        Some("hook_unembed")
    );
}

#[test]
fn run_cache_matches_tl_and_json_has_top_tokens() {
    let dir = fixtures().join("gpt2_small4");
    let reference = load_reference(&dir);
    let ids: Vec<String> = reference.tokens.row(0).iter().map(u32::to_string).collect();
    let out_dir = temp_dir("cli-cache");
    let cache = out_dir.join("acts.safetensors");
    let json = out_dir.join("top.json");
    let (ok, stdout, stderr) = hooklens(&[
        "--model",
        dir.to_str().unwrap(),
        "run",
        "--tokens",
        &ids.join(","),
        "--top",
        "4",
        "--cache",
        cache.to_str().unwrap(),
        "--names",
        r"attn\.hook_(z|pattern|result)$|resid_post",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");

    let bytes = std::fs::read(&cache).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    // The cache format's int32 tokens and mask, then 3 layers x (z, pattern, result, resid_post).
    for int in ["attention_mask", "tokens"] {
        assert_eq!(st.tensor(int).unwrap().shape(), [1, ids.len()], "{int}");
    }
    names.retain(|n| n != "tokens" && n != "attention_mask");
    assert_eq!(names.len(), 12, "{names:?}");
    for name in names {
        let view = st.tensor(&name).unwrap();
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let ours = Tensor::new(data, view.shape().to_vec()).unwrap();
        let d = max_abs_diff(&ours, reference.tensor(&name));
        assert!(d <= 1e-4, "{name}: {d}");
    }

    // The JSON top tokens are the argmax of TL's last-position logits, with softmax probs.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let logits = reference.tensor("logits");
    let vocab = logits.shape[2];
    let last = &logits.data[logits.data.len() - vocab..];
    let mut order: Vec<usize> = (0..vocab).collect();
    order.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
    let max = last[order[0]] as f64;
    let z: f64 = last.iter().map(|&v| (v as f64 - max).exp()).sum();
    let top = doc["top"].as_array().unwrap();
    assert_eq!(top.len(), 4);
    for (entry, &id) in top.iter().zip(&order) {
        assert_eq!(entry["token_id"].as_u64().unwrap() as usize, id);
        let p = ((last[id] as f64 - max).exp() / z) as f32;
        assert!((entry["prob"].as_f64().unwrap() as f32 - p).abs() < 1e-5);
        assert!(entry["token"].is_string());
    }
    assert_eq!(
        doc["tokens"].as_array().unwrap().len(),
        reference.tokens.seq()
    );
}

#[test]
fn run_prompt_prepends_bos_unless_told_not_to() {
    let dir = fixtures().join("gpt2_tiny");
    let d = dir.to_str().unwrap();
    let (ok, with_bos, _) =
        hooklens(&["--model", d, "run", "--prompt", "Hello world", "--top", "1"]);
    assert!(ok);
    assert!(
        with_bos.contains("tokens (8): [449, 39, 301, 75, 78, 261, 275, 332]"),
        "{with_bos}"
    );
    let (ok, without, _) = hooklens(&[
        "--model",
        d,
        "run",
        "--prompt",
        "Hello world",
        "--no-bos",
        "--top",
        "1",
    ]);
    assert!(ok);
    assert!(without.contains("tokens (7): [39, 301"), "{without}");
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let dir = fixtures().join("gpt2_tiny");
    let d = dir.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", d, "run", "--tokens", "1,2,999"],
            "outside the vocabulary",
        ),
        (
            vec!["--model", d, "run", "--tokens", "1,x"],
            "not a token id",
        ),
        (
            vec!["--model", "/nonexistent/model", "hooks"],
            "no such file",
        ),
        (
            vec![
                "--model",
                d,
                "run",
                "--tokens",
                "1",
                "--cache",
                "/tmp/x.st",
                "--names",
                "(",
            ],
            "bad names regex",
        ),
    ];
    for (args, want) in cases {
        let (ok, _, stderr) = hooklens(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let long: Vec<String> = (0..40).map(|i| (i % 400).to_string()).collect();
    let (ok, _, stderr) = hooklens(&["--model", d, "run", "--tokens", &long.join(",")]);
    assert!(
        !ok && stderr.contains("longer than the model's context of 32"),
        "{stderr}"
    );
}
