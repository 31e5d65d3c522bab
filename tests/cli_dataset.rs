//! `hooklens ablate | patch --dataset FILE.jsonl`: every prompt's values in the JSON equal the
//! same sweep run on that prompt alone (`--tokens`), the reported values are the means over
//! the prompts, and bad datasets are errors naming the file, the line and the field.

mod common;

use common::{fixtures, hooklens, temp_dir};
use serde_json::Value;

const TOL: f64 = 1e-4;

fn model_dir() -> String {
    fixtures().join("gpt2_small4").to_str().unwrap().to_string()
}

/// `(seed + 37 i) % 1000` for `len` ids (the fixture's vocabulary is larger).
fn ids(seed: usize, len: usize) -> Vec<u32> {
    (0..len).map(|i| ((seed + 37 * i) % 1000) as u32).collect()
}

fn list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Runs `args` plus `--json FILE` and returns the document.
fn json_of(args: &[&str], path: &std::path::Path) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", path.to_str().unwrap()]);
    let (ok, _, stderr) = hooklens(&all);
    assert!(ok, "{all:?}: {stderr}");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn values(doc: &Value) -> Vec<f64> {
    let results = doc["results"].as_array().unwrap();
    results
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect()
}

/// Every prompt's values equal its own sweep's, and the results are their means.
fn check_means(doc: &Value, alone: &[Value]) {
    let per_prompt = doc["per_prompt"].as_array().unwrap();
    assert_eq!(per_prompt.len(), alone.len());
    let n = alone.len() as f64;
    let means = values(doc);
    for (e, mean) in means.iter().enumerate() {
        let want = alone.iter().map(|a| values(a)[e]).sum::<f64>() / n;
        assert!((mean - want).abs() <= TOL, "entry {e}: {mean} vs {want}");
    }
    for (p, (row, a)) in per_prompt.iter().zip(alone).enumerate() {
        let got: Vec<f64> = (row["values"].as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap())
            .collect();
        let d = got
            .iter()
            .zip(values(a))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(d <= TOL, "prompt {p}: differs from its own sweep by {d}");
        let clean = (row["clean"].as_f64().unwrap() - a["clean"].as_f64().unwrap()).abs();
        assert!(clean <= TOL, "prompt {p}: clean");
    }
    let clean = alone
        .iter()
        .map(|a| a["clean"].as_f64().unwrap())
        .sum::<f64>()
        / n;
    assert!((doc["clean"].as_f64().unwrap() - clean).abs() <= TOL);
}

#[test]
fn ablate_over_a_dataset_equals_each_prompt_alone() {
    let dir = temp_dir("cli-dataset-ablate");
    let model = model_dir();
    let prompts = [
        (ids(3, 7), 10, Some(20)),
        (ids(5, 5), 11, None),
        (ids(8, 7), 12, Some(13)),
    ];
    let mut text = String::new();
    for (t, target, against) in &prompts {
        let against = against.map_or(String::new(), |a| format!(", \"against_id\": {a}"));
        text.push_str(&format!(
            "{{\"tokens\": {t:?}, \"target_id\": {target}{against}}}\n"
        ));
    }
    let file = dir.join("prompts.jsonl");
    std::fs::write(&file, text).unwrap();
    let base = ["--model", model.as_str(), "ablate"];
    let doc = json_of(
        &[
            &base[..],
            &["--dataset", file.to_str().unwrap(), "--max-rows", "50"],
        ]
        .concat(),
        &dir.join("all.json"),
    );
    assert_eq!(doc["prompts"], 3);
    let alone: Vec<Value> = (prompts.iter().enumerate())
        .map(|(i, (t, target, against))| {
            let (tokens, target) = (list(t), target.to_string());
            let mut args = vec!["--tokens", tokens.as_str(), "--target-id", target.as_str()];
            let against = against.map(|a| a.to_string());
            if let Some(a) = &against {
                args.extend(["--against-id", a.as_str()]);
            }
            json_of(
                &[&base[..], &args].concat(),
                &dir.join(format!("one{i}.json")),
            )
        })
        .collect();
    check_means(&doc, &alone);
}

#[test]
fn patch_over_pairs_recovers_from_the_means_and_checks_lengths() {
    let dir = temp_dir("cli-dataset-patch");
    let model = model_dir();
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = [(3, 7), (4, 6)]
        .iter()
        .map(|&(seed, len)| {
            let clean = ids(seed, len);
            let mut corrupted = clean.clone();
            corrupted[2] = (corrupted[2] + 101) % 1000;
            (clean, corrupted)
        })
        .collect();
    let text: String = (pairs.iter())
        .map(|(c, k)| format!("{{\"clean_tokens\": {c:?}, \"corrupted_tokens\": {k:?}, \"target_id\": 10, \"against_id\": 20}}\n"))
        .collect();
    let file = dir.join("pairs.jsonl");
    std::fs::write(&file, text).unwrap();
    let base = ["--model", model.as_str(), "patch", "--site", "z"];
    let doc = json_of(
        &[&base[..], &["--dataset", file.to_str().unwrap()]].concat(),
        &dir.join("all.json"),
    );
    let alone: Vec<Value> = (pairs.iter().enumerate())
        .map(|(i, (c, k))| {
            let (c, k) = (list(c), list(k));
            let args = [
                "--clean-tokens",
                &c,
                "--corrupted-tokens",
                &k,
                "--target-id",
                "10",
                "--against-id",
                "20",
            ];
            json_of(
                &[&base[..], &args].concat(),
                &dir.join(format!("one{i}.json")),
            )
        })
        .collect();
    check_means(&doc, &alone);
    let mean = |key: &str| alone.iter().map(|a| a[key].as_f64().unwrap()).sum::<f64>() / 2.0;
    let (clean, corrupted) = (mean("clean"), mean("corrupted"));
    for (r, v) in doc["results"].as_array().unwrap().iter().zip(values(&doc)) {
        let want = (v - corrupted) / (clean - corrupted);
        assert!((r["recovery"].as_f64().unwrap() - want).abs() <= TOL);
    }
    // A per-position site needs pairs of one length; no file is written.
    let out = dir.join("by_pos.json");
    let args = [
        &base[..4],
        &[
            "resid-pre",
            "--dataset",
            file.to_str().unwrap(),
            "--json",
            out.to_str().unwrap(),
        ],
    ]
    .concat();
    let (ok, _, stderr) = hooklens(&args);
    assert!(!ok && stderr.contains("equal token length"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn trace_over_a_dataset_equals_each_prompt_alone() {
    let dir = temp_dir("cli-dataset-trace");
    let model = model_dir();
    let file = dir.join("trace.jsonl");
    let lines = [
        r#"{"prompt": "The cat sat on the", "subject": "cat", "target": " mat"}"#,
        r#"{"prompt": "The cat sat on the", "subject": "cat", "target_id": 10, "against_id": 20}"#,
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let base = ["--model", model.as_str(), "trace", "--samples", "2"];
    let doc = json_of(
        &[&base[..], &["--dataset", file.to_str().unwrap()]].concat(),
        &dir.join("all.json"),
    );
    let one = ["--prompt", "The cat sat on the", "--subject", "cat"];
    let first = json_of(
        &[&base[..], &one, &["--target", " mat"]].concat(),
        &dir.join("one0.json"),
    );
    let second = [
        &base[..],
        &one,
        &["--target-id", "10", "--against-id", "20"],
    ]
    .concat();
    let second = json_of(&second, &dir.join("one1.json"));
    check_means(&doc, &[first, second]);
    // Without a subject the line is named.
    std::fs::write(
        &file,
        r#"{"prompt": "The cat sat on the", "target": " mat"}"#,
    )
    .unwrap();
    let (ok, _, stderr) = hooklens(&[&base[..], &["--dataset", file.to_str().unwrap()]].concat());
    assert!(
        !ok && stderr.contains("line 1: missing field `subject`"),
        "{stderr}"
    );
}

#[test]
fn bad_datasets_are_errors_naming_file_line_and_field() {
    let dir = temp_dir("cli-dataset-bad");
    let model = model_dir();
    let file = dir.join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"tokens\": [1, 2], \"target_id\": 3}\n{\"tokens\": [1], \"target\": 3}\n",
    )
    .unwrap();
    let (ok, _, stderr) = hooklens(&[
        "--model",
        &model,
        "ablate",
        "--dataset",
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.jsonl: line 2: field `target`: expected a string"),
        "{stderr}"
    );
    let (ok, _, stderr) = hooklens(&[
        "--model",
        &model,
        "ablate",
        "--dataset",
        "x.jsonl",
        "--prompt",
        "hi",
    ]);
    assert!(!ok && stderr.contains("cannot be used with"), "{stderr}");
    let (ok, _, stderr) = hooklens(&[
        "--model",
        &model,
        "ablate",
        "--dataset",
        dir.join("none.jsonl").to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("none.jsonl"), "{stderr}");
}
