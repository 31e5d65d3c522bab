//! `hooklens run --prompts FILE`: one padded batch of every line. Each prompt's top tokens and
//! its cached activations at its real positions are those of `hooklens run --prompt LINE`
//! alone; the cache holds the padded tensors, int `tokens` and `attention_mask`, and the
//! prompts and model in its metadata.

mod common;

use common::{fixtures, hooklens, read_metadata, read_tensors, temp_dir};

const PROMPTS: [&str; 3] = ["Hello world, this is", "Hi", "The cat sat on"];

fn model_dir() -> String {
    fixtures().join("gpt2_tiny").to_str().unwrap().to_string()
}

/// Runs `args` and returns its JSON output (failing with its stderr otherwise).
fn run_json(args: &[&str], json: &std::path::Path) -> serde_json::Value {
    let (ok, _, stderr) = hooklens(args);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

#[test]
fn every_prompt_of_a_padded_batch_equals_its_run_alone() {
    let dir = temp_dir("prompts");
    let file = dir.join("prompts.txt");
    std::fs::write(
        &file,
        format!("{}\n\n{}\n{}\n", PROMPTS[0], PROMPTS[1], PROMPTS[2]),
    )
    .unwrap();
    let model = model_dir();
    for side in ["left", "right"] {
        let (cache, json) = (
            dir.join(format!("{side}.safetensors")),
            dir.join(format!("{side}.json")),
        );
        let args = [
            "--model",
            &model,
            "run",
            "--prompts",
            file.to_str().unwrap(),
            "--padding-side",
            side,
            "--top",
            "3",
            "--cache",
            cache.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ];
        let doc = run_json(&args, &json);
        let batch = read_tensors(&cache);
        let meta = read_metadata(&cache);
        let prompts: Vec<String> = serde_json::from_str(&meta["prompts"]).unwrap();
        assert_eq!(prompts, PROMPTS);
        assert!(meta["model"].ends_with("gpt2_tiny"), "{}", meta["model"]);
        let mask = &batch["attention_mask"];
        let seq = mask.shape[1];
        assert_eq!(mask.shape[0], 3);
        for (b, prompt) in PROMPTS.iter().enumerate() {
            let (one_cache, one_json) = (
                dir.join(format!("one{b}.safetensors")),
                dir.join(format!("one{b}.json")),
            );
            let one_args = [
                "--model",
                &model,
                "run",
                "--prompt",
                prompt,
                "--top",
                "3",
                "--cache",
                one_cache.to_str().unwrap(),
                "--json",
                one_json.to_str().unwrap(),
            ];
            let one = run_json(&one_args, &one_json);
            let entry = &doc["prompts"][b];
            assert_eq!(entry["tokens"], one["tokens"], "{side} prompt {b}");
            let ids = |v: &serde_json::Value| -> Vec<u64> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["token_id"].as_u64().unwrap())
                    .collect()
            };
            assert_eq!(
                ids(&entry["top"]),
                ids(&one["top"]),
                "{side} prompt {b}: top tokens"
            );
            let len = one["tokens"].as_array().unwrap().len();
            let real: Vec<usize> = (0..seq)
                .filter(|&p| mask.data[b * seq + p] == 1.0)
                .collect();
            assert_eq!(real.len(), len, "{side} prompt {b}: mask");
            let start = if side == "left" { seq - len } else { 0 };
            assert_eq!(real[0], start, "{side} prompt {b}: pads on the {side}");
            let tokens = &batch["tokens"].data[b * seq + start..][..len];
            let want: Vec<f32> = (one["tokens"].as_array().unwrap().iter())
                .map(|t| t.as_u64().unwrap() as f32)
                .collect();
            assert_eq!(tokens, &want[..]);
            let alone = read_tensors(&one_cache);
            for name in [
                "blocks.1.hook_resid_post",
                "blocks.0.attn.hook_z",
                "hook_pos_embed",
            ] {
                let (a, p) = (&alone[name], &batch[name]);
                let inner: usize = a.shape[2..].iter().product();
                let got = &p.data[(b * seq + start) * inner..][..len * inner];
                let d = got
                    .iter()
                    .zip(&a.data)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max);
                assert!(d <= 1e-4, "{side} prompt {b}: {name} differs by {d}");
            }
        }
    }
}

#[test]
fn an_empty_prompts_file_and_a_missing_one_are_errors() {
    let dir = temp_dir("prompts-bad");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let model = model_dir();
    let (ok, _, stderr) = hooklens(&[
        "--model",
        &model,
        "run",
        "--prompts",
        empty.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("has no prompts"), "{stderr}");
    let missing = dir.join("missing.txt");
    let (ok, _, stderr) = hooklens(&[
        "--model",
        &model,
        "run",
        "--prompts",
        missing.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("missing.txt"), "{stderr}");
    let (ok, _, stderr) = hooklens(&["--model", &model, "run", "--prompts", "x", "--prompt", "y"]);
    assert!(!ok && stderr.contains("cannot be used with"), "{stderr}");
}
