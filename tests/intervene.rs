//! `intervene_dataset` and `hooklens intervene --dataset --spec`: every prompt's clean and
//! intervened metric equal that prompt run alone through the plain forward (with the
//! interventions as `(row, intervention)` pairs), the metric computed by hand from the
//! logits; the means are the means; bad specs are errors naming the problem.

mod common;

use common::{fixtures, hooklens, temp_dir};
use hooklens::hooks::Intervention;
use hooklens::sweep::{
    intervene_dataset, parse_dataset, parse_interventions, DatasetKind, DatasetRow, SweepOptions,
};
use hooklens::{Input, Model, ReturnType, RunOptions, TokenBatch};
use serde_json::Value;

const TOL: f64 = 1e-4;

/// Ids `(seed + 37 i) % vocab` of length `len`.
fn ids(seed: usize, len: usize, vocab: usize) -> Vec<u32> {
    (0..len).map(|i| ((seed + 37 * i) % vocab) as u32).collect()
}

/// Prompts of lengths 6, 9, 6, 4 (one without `against`).
fn prompts_file(vocab: usize) -> String {
    [
        (3, 6, 10, Some(20)),
        (5, 9, 11, None),
        (8, 6, 12, Some(13)),
        (13, 4, 14, Some(2)),
    ]
    .iter()
    .map(|&(seed, len, target, against)| {
        let against = against.map_or(String::new(), |a| format!(", \"against_id\": {a}"));
        format!(
            "{{\"tokens\": {:?}, \"target_id\": {target}{against}}}\n",
            ids(seed, len, vocab)
        )
    })
    .collect()
}

/// Two heads of layer 1 zeroed, layer 0's MLP output halved, and a scaled residual at
/// position 2 of the last layer.
fn spec_text(last_layer: usize) -> String {
    format!(
        r#"[
  {{"hook": "blocks.1.attn.hook_z", "heads": [0, 2], "op": {{"kind": "zero"}}}},
  {{"hook": "blocks.0.hook_mlp_out", "op": {{"kind": "scale", "factor": 0.5}}}},
  {{"hook": "blocks.{last_layer}.hook_resid_pre", "positions": [2], "op": {{"kind": "scale", "factor": -1.0}}}}
]"#
    )
}

/// The prompt alone through the plain forward: its logits at the last position.
fn last_logits(model: &Model, tokens: &[u32], ivs: &[Intervention]) -> Vec<f64> {
    let batch = TokenBatch::single(tokens.to_vec()).unwrap();
    let pairs: Vec<(usize, Intervention)> = ivs.iter().map(|iv| (0, iv.clone())).collect();
    let (out, _) = model
        .run_with_interventions(
            Input::Tokens(&batch),
            None,
            None,
            &pairs,
            &RunOptions::returning(ReturnType::Logits),
        )
        .unwrap();
    let logits = out.logits.unwrap().data;
    let vocab = model.config().d_vocab;
    let last = &logits[(tokens.len() - 1) * vocab..tokens.len() * vocab];
    last.iter().map(|&v| v as f64).collect()
}

/// logit(target) - logit(against), else log p(target), by hand.
fn hand_metric(row: &DatasetRow, logits: &[f64]) -> f64 {
    let t = row.target.unwrap() as usize;
    match row.against {
        Some(a) => logits[t] - logits[a as usize],
        None => {
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + logits.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            logits[t] - lse
        }
    }
}

/// Each row's (clean, intervened) by the per-prompt loop.
fn hand_loop(model: &Model, rows: &[DatasetRow], spec: &[Intervention]) -> Vec<(f64, f64)> {
    rows.iter()
        .map(|r| {
            let clean = hand_metric(r, &last_logits(model, &r.clean, &[]));
            let intervened = hand_metric(r, &last_logits(model, &r.clean, spec));
            (clean, intervened)
        })
        .collect()
}

fn check_library(model: &Model, max_rows: usize) {
    let cfg = model.config();
    let rows = parse_dataset(
        &prompts_file(cfg.d_vocab),
        DatasetKind::Prompts,
        model,
        false,
    )
    .unwrap();
    let spec = parse_interventions(&spec_text(cfg.n_layers - 1)).unwrap();
    let want = hand_loop(model, &rows, &spec);
    let opts = SweepOptions {
        max_rows,
        ..SweepOptions::default()
    };
    let report = intervene_dataset(model, &rows, &spec, false, &opts).unwrap();
    assert_eq!(report.per_prompt.len(), rows.len());
    for (i, (v, &(clean, intervened))) in report.per_prompt.iter().zip(&want).enumerate() {
        assert_eq!(v.line, i + 1);
        assert!(
            (v.clean - clean).abs() <= TOL,
            "row {i}: clean {} vs {clean}",
            v.clean
        );
        assert!(
            (v.intervened - intervened).abs() <= TOL,
            "row {i}: intervened {} vs {intervened}",
            v.intervened
        );
        assert!(
            (clean - intervened).abs() > 1e-3,
            "row {i}: the spec changes nothing"
        );
    }
    let n = want.len() as f64;
    let clean_mean = want.iter().map(|w| w.0).sum::<f64>() / n;
    let intervened_mean = want.iter().map(|w| w.1).sum::<f64>() / n;
    assert!((report.clean_mean - clean_mean).abs() <= TOL);
    assert!((report.intervened_mean - intervened_mean).abs() <= TOL);
    assert!((report.delta_mean() - (intervened_mean - clean_mean)).abs() <= TOL);
}

#[test]
fn intervened_values_equal_each_prompt_run_alone_gpt2() {
    let model = Model::load(&fixtures().join("gpt2_small4")).unwrap();
    check_library(&model, 4096);
    check_library(&model, 7); // many small passes
}

#[test]
fn intervened_values_equal_each_prompt_run_alone_llama() {
    let model = Model::load(&fixtures().join("llama_gqa")).unwrap();
    check_library(&model, 4096);
}

/// Writes the dataset and spec into a temp dir; returns (dir, dataset, spec) paths.
fn files(tag: &str, vocab: usize, spec: &str) -> (std::path::PathBuf, String, String) {
    let dir = temp_dir(tag);
    let data = dir.join("data.jsonl");
    std::fs::write(&data, prompts_file(vocab)).unwrap();
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec).unwrap();
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    (dir, s(data), s(spec_path))
}

#[test]
fn cli_intervene_json_equals_the_per_prompt_loop() {
    let dir_model = fixtures().join("gpt2_small4");
    let model = Model::load(&dir_model).unwrap();
    let cfg = model.config();
    let spec = spec_text(cfg.n_layers - 1);
    let (dir, data, spec_path) = files("cli-intervene", cfg.d_vocab, &spec);
    let json = dir.join("out.json");
    let args = [
        "--model",
        dir_model.to_str().unwrap(),
        "intervene",
        "--dataset",
        &data,
        "--spec",
        &spec_path,
        "--json",
        json.to_str().unwrap(),
    ];
    let (ok, stdout, stderr) = hooklens(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("mean"), "{stdout}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = parse_dataset(
        &prompts_file(cfg.d_vocab),
        DatasetKind::Prompts,
        &model,
        false,
    )
    .unwrap();
    let want = hand_loop(&model, &rows, &parse_interventions(&spec).unwrap());
    assert_eq!(doc["prompts"], 4);
    assert_eq!(doc["spec"].as_array().unwrap().len(), 3);
    let per_prompt = doc["per_prompt"].as_array().unwrap();
    for (p, &(clean, intervened)) in per_prompt.iter().zip(&want) {
        let get = |k: &str| p[k].as_f64().unwrap();
        assert!((get("clean") - clean).abs() <= TOL);
        assert!((get("intervened") - intervened).abs() <= TOL);
        assert!((get("delta") - (intervened - clean)).abs() <= TOL);
    }
    let n = want.len() as f64;
    let mean = |f: fn(&(f64, f64)) -> f64| want.iter().map(f).sum::<f64>() / n;
    let get = |k: &str| doc[k].as_f64().unwrap();
    assert!((get("clean_mean") - mean(|w| w.0)).abs() <= TOL);
    assert!((get("intervened_mean") - mean(|w| w.1)).abs() <= TOL);
    assert!((get("delta_mean") - mean(|w| w.1 - w.0)).abs() <= TOL);
}

/// The error of `intervene` with this spec text (None: the spec file is missing).
fn error_with(tag: &str, spec: Option<&str>) -> String {
    let dir_model = fixtures().join("gpt2_small4");
    let (dir, data, spec_path) = files(tag, 450, spec.unwrap_or("[]"));
    let spec_path = match spec {
        Some(_) => spec_path,
        None => dir.join("missing.json").to_str().unwrap().to_string(),
    };
    let args = [
        "--model",
        dir_model.to_str().unwrap(),
        "intervene",
        "--dataset",
        &data,
        "--spec",
        &spec_path,
    ];
    let (ok, _, stderr) = hooklens(&args);
    assert!(!ok, "{tag}: should fail");
    stderr
}

#[test]
fn bad_specs_are_clear_errors() {
    let missing = error_with("iv-missing", None);
    assert!(missing.contains("missing.json"), "{missing}");
    let not_json = error_with("iv-not-json", Some("[{\"hook\": "));
    assert!(not_json.contains("spec.json"), "{not_json}");
    assert!(
        not_json.contains("not a JSON list of interventions"),
        "{not_json}"
    );
    let bad_op = error_with(
        "iv-bad-op",
        Some(r#"[{"hook": "blocks.1.attn.hook_z", "op": {"kind": "explode"}}]"#),
    );
    assert!(bad_op.contains("explode"), "{bad_op}");
    let no_op = error_with("iv-no-op", Some(r#"[{"hook": "blocks.1.attn.hook_z"}]"#));
    assert!(no_op.contains("missing field `op`"), "{no_op}");
    let object = error_with(
        "iv-object",
        Some(r#"{"hook": "blocks.1.attn.hook_z", "op": {"kind": "zero"}}"#),
    );
    assert!(object.contains("not a JSON list"), "{object}");
    let empty = error_with("iv-empty", Some("[]"));
    assert!(empty.contains("empty"), "{empty}");
    let layer = error_with(
        "iv-layer",
        Some(
            r#"[{"hook": "blocks.0.hook_mlp_out", "op": {"kind": "zero"}}, {"hook": "blocks.40.attn.hook_z", "op": {"kind": "zero"}}]"#,
        ),
    );
    assert!(layer.contains("intervention 2"), "{layer}");
    assert!(layer.contains("blocks.40"), "{layer}");
    assert!(layer.contains("layer 40 is out of range"), "{layer}");
    let head = error_with(
        "iv-head",
        Some(r#"[{"hook": "blocks.1.attn.hook_z", "heads": [9], "op": {"kind": "zero"}}]"#),
    );
    assert!(head.contains("head 9"), "{head}");
    let pos = error_with(
        "iv-pos",
        Some(r#"[{"hook": "blocks.1.hook_resid_pre", "positions": [5], "op": {"kind": "zero"}}]"#),
    );
    // Line 4 has 4 tokens.
    assert!(
        pos.contains("line 4") && pos.contains("position 5"),
        "{pos}"
    );
}
