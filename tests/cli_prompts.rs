//! `hooklens run --prompts FILE`: one padded batch of every line. Each prompt's top tokens and
//! its cached activations at its real positions are those of `hooklens run --prompt LINE`
//! alone; the cache holds the padded tensors, int `tokens` and `attention_mask`, and the
//! prompts and model in its metadata.

mod common;

use common::{fixtures, hooklens, read_metadata, read_tensors, temp_dir};
use serde_json::json;

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

/// One row of a `run --json` output: its tokens and its top (id, logit) pairs.
type JsonRow = (Vec<u64>, Vec<(u64, f64)>);

/// The `[batch]` rows of a JSON output under `key`.
fn rows_of(doc: &serde_json::Value, key: &str) -> Vec<JsonRow> {
    let ids = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect()
    };
    (doc[key].as_array().unwrap().iter())
        .map(|row| {
            let top = (row["top"].as_array().unwrap().iter())
                .map(|t| {
                    (
                        t["token_id"].as_u64().unwrap(),
                        t["logit"].as_f64().unwrap(),
                    )
                })
                .collect();
            (ids(&row["tokens"]), top)
        })
        .collect()
}

#[test]
fn a_tokens_file_is_one_padded_batch_equal_to_each_row_alone_and_to_the_prompts() {
    let dir = temp_dir("tokens-file");
    let model = model_dir();
    let prompts = dir.join("prompts.txt");
    std::fs::write(&prompts, PROMPTS.join("\n")).unwrap();
    let from_prompts = dir.join("prompts.json");
    let args = [
        "--model",
        &model,
        "run",
        "--prompts",
        prompts.to_str().unwrap(),
    ];
    let json_arg = ["--top", "4", "--json", from_prompts.to_str().unwrap()];
    let by_prompt = rows_of(
        &run_json(&[&args[..], &json_arg].concat(), &from_prompts),
        "prompts",
    );
    // The same rows as token ids, a blank line and spaces in between.
    let lines: Vec<String> = (by_prompt.iter())
        .map(|(ids, _)| {
            ids.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let file = dir.join("tokens.txt");
    std::fs::write(
        &file,
        format!("{}\n\n{}\n{}\n", lines[0], lines[1], lines[2]),
    )
    .unwrap();
    for side in ["right", "left"] {
        let json = dir.join(format!("tokens-{side}.json"));
        let args = [
            "--model",
            &model,
            "run",
            "--tokens-file",
            file.to_str().unwrap(),
            "--padding-side",
            side,
            "--top",
            "4",
            "--json",
            json.to_str().unwrap(),
        ];
        let cache = dir.join(format!("tokens-{side}.safetensors"));
        let cache_arg = ["--cache", cache.to_str().unwrap()];
        let doc = run_json(&[&args[..], &cache_arg].concat(), &json);
        assert_eq!(doc["padding_side"], side);
        let meta = read_metadata(&cache);
        assert_eq!(meta["prompts"], "[]", "ids given directly: no prompt texts");
        let mask = &read_tensors(&cache)["attention_mask"];
        let real: Vec<usize> = (0..3)
            .map(|b| {
                mask.data[b * mask.shape[1]..][..mask.shape[1]]
                    .iter()
                    .filter(|&&m| m == 1.0)
                    .count()
            })
            .collect();
        let lens: Vec<usize> = by_prompt.iter().map(|(ids, _)| ids.len()).collect();
        assert_eq!(real, lens, "{side}: the mask marks each row's real tokens");
        let rows = rows_of(&doc, "rows");
        assert_eq!(rows.len(), 3);
        for (b, line) in lines.iter().enumerate() {
            let one_json = dir.join(format!("alone{b}.json"));
            let one = [
                "--model",
                &model,
                "run",
                "--tokens",
                line,
                "--top",
                "4",
                "--json",
                one_json.to_str().unwrap(),
            ];
            let one = run_json(&one, &one_json);
            let alone_ids: Vec<u64> = (one["tokens"].as_array().unwrap().iter())
                .map(|t| t.as_u64().unwrap())
                .collect();
            assert_eq!(rows[b].0, alone_ids, "{side} row {b}: tokens");
            for (label, want) in [
                ("alone", &rows_of(&json!({"r": [one]}), "r")[0].1),
                ("prompt", &by_prompt[b].1),
            ] {
                let got = &rows[b].1;
                assert_eq!(got.len(), want.len());
                for ((gi, gl), (wi, wl)) in got.iter().zip(want) {
                    assert_eq!(gi, wi, "{side} row {b}: top ids against {label}");
                    assert!(
                        (gl - wl).abs() <= 1e-4,
                        "{side} row {b}: logit {gl} vs {wl} ({label})"
                    );
                }
            }
        }
    }
}

#[test]
fn a_bad_tokens_file_names_the_line_and_flag_misuse_is_refused() {
    let dir = temp_dir("tokens-file-bad");
    let model = model_dir();
    let run = |content: &str, extra: &[&str]| {
        let file = dir.join("t.txt");
        std::fs::write(&file, content).unwrap();
        let args = [
            &[
                "--model",
                &model,
                "run",
                "--tokens-file",
                file.to_str().unwrap(),
            ][..],
            extra,
        ]
        .concat();
        let (ok, _, stderr) = hooklens(&args);
        assert!(!ok, "{content:?} {extra:?} was accepted");
        stderr
    };
    let e = run("1,2\n\n3,x\n", &[]);
    assert!(
        e.contains("line 3") && e.contains("`x` is not a token id"),
        "{e}"
    );
    let e = run("1,2\n , \n", &[]);
    assert!(e.contains("line 2: no token ids"), "{e}");
    let e = run("\n \n", &[]);
    assert!(e.contains("has no token lists"), "{e}");
    let e = run("1,2\n3,100000\n", &[]);
    assert!(
        e.contains("100000") && e.contains("outside the vocabulary"),
        "{e}"
    );
    for extra in [
        &["--tokens", "1"][..],
        &["--prompt", "hi"],
        &["--no-bos"],
        &["--prompts", "p.txt"],
    ] {
        let e = run("1,2\n", extra);
        assert!(e.contains("cannot be used with"), "{extra:?}: {e}");
    }
    let (ok, _, e) = hooklens(&[
        "--model",
        &model,
        "run",
        "--tokens",
        "1,2",
        "--padding-side",
        "left",
    ]);
    assert!(!ok && e.contains("--tokens-file"), "{e}");
}
