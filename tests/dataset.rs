//! Dataset sweeps: a JSON Lines file of prompts (or clean / corrupted pairs), each with its
//! own target, run as one batched sweep. The means and every prompt's values equal the naive
//! loop (each prompt's sweep alone, one full forward per variant) within 1e-4; bad lines are
//! errors naming the line and the field.

mod common;

use common::fixtures;
use hooklens::sweep::{
    ablation_sweep, parse_dataset, patching_sweep, run_dataset, AblationMethod, AblationTarget,
    DatasetKind, DatasetRow, PatchSite, SweepOptions,
};
use hooklens::Model;

const TOL: f64 = 1e-4;

fn model() -> Model {
    Model::load(&fixtures().join("gpt2_small4")).unwrap()
}

fn tiny() -> Model {
    Model::load(&fixtures().join("gpt2_tiny")).unwrap()
}

/// Ids `(seed + 37 i) % vocab` of length `len`.
fn ids(seed: usize, len: usize, vocab: usize) -> Vec<u32> {
    (0..len).map(|i| ((seed + 37 * i) % vocab) as u32).collect()
}

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

fn pairs_file(vocab: usize, lens: &[usize]) -> String {
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            let clean = ids(3 + i, len, vocab);
            let mut corrupted = clean.clone();
            corrupted[len / 2] = (corrupted[len / 2] + 101) % vocab as u32;
            format!(
                "{{\"clean_tokens\": {clean:?}, \"corrupted_tokens\": {corrupted:?}, \"target_id\": {}, \"against_id\": {}}}\n",
                10 + i,
                40 + i
            )
        })
        .collect()
}

#[test]
fn dataset_ablation_equals_the_naive_per_prompt_loop() {
    let model = model();
    let rows = parse_dataset(
        &prompts_file(model.config().d_vocab),
        DatasetKind::Prompts,
        &model,
        true,
    )
    .unwrap();
    assert_eq!(rows.len(), 4);
    let specs: Vec<_> = (rows.iter())
        .map(|r| {
            ablation_sweep(
                &model,
                &r.clean,
                AblationTarget::Heads,
                &AblationMethod::Zero,
            )
            .unwrap()
        })
        .collect();
    let metrics: Vec<_> = rows.iter().map(|r| r.metric(false).unwrap()).collect();
    let opts = SweepOptions {
        max_rows: 64,
        ..SweepOptions::default()
    };
    let batched = run_dataset(&model, &specs, &metrics, false, &opts).unwrap();
    // The naive loop: each prompt's sweep alone, one full forward per variant.
    let alone: Vec<_> = (specs.iter().zip(&metrics))
        .map(|(s, m)| s.run(&model, m, true, &SweepOptions::default()).unwrap())
        .collect();
    let n = alone.len() as f64;
    let clean = alone.iter().map(|r| r.clean).sum::<f64>() / n;
    assert!((batched.clean - clean).abs() <= TOL);
    let cfg = model.config();
    assert_eq!(batched.results.len(), cfg.n_layers * cfg.n_heads);
    for (e, row) in batched.results.iter().enumerate() {
        let value = alone.iter().map(|r| r.results[e].value).sum::<f64>() / n;
        assert!(
            (row.value - value).abs() <= TOL,
            "entry {e}: {} vs {value}",
            row.value
        );
        assert!(
            (row.delta.unwrap() - (value - clean)).abs() <= TOL,
            "entry {e}: delta"
        );
        for (p, r) in alone.iter().enumerate() {
            let got = batched.per_prompt[p].results[e].value;
            assert!(
                (got - r.results[e].value).abs() <= TOL,
                "prompt {p} entry {e}"
            );
        }
    }
    // One batched sweep per length (6, 9, 6, 4 tokens): fewer passes than the prompts'
    // batched sweeps one after another.
    let one_by_one: usize = (specs.iter().zip(&metrics))
        .map(|(s, m)| s.run(&model, m, false, &opts).unwrap().outcome.stats.passes)
        .sum();
    assert!(
        batched.stats.passes < one_by_one,
        "{} vs {one_by_one}",
        batched.stats.passes
    );
    assert_eq!(batched.stats.variants, 4 * cfg.n_layers * cfg.n_heads);
    // Some head matters: the means are not all the clean value.
    assert!(batched
        .results
        .iter()
        .any(|r| r.delta.unwrap().abs() > 1e-3));
}

#[test]
fn dataset_patching_recovery_comes_from_the_dataset_means() {
    let model = model();
    let text = pairs_file(model.config().d_vocab, &[7, 7, 5]);
    let rows = parse_dataset(&text, DatasetKind::Pairs, &model, true).unwrap();
    let spec_of = |r: &DatasetRow, site| {
        patching_sweep(&model, &r.clean, r.corrupted.as_ref().unwrap(), site)
    };
    let specs: Vec<_> = rows
        .iter()
        .map(|r| spec_of(r, PatchSite::Z).unwrap())
        .collect();
    let metrics: Vec<_> = rows.iter().map(|r| r.metric(false).unwrap()).collect();
    let batched = run_dataset(&model, &specs, &metrics, false, &SweepOptions::default()).unwrap();
    let alone: Vec<_> = (specs.iter().zip(&metrics))
        .map(|(s, m)| s.run(&model, m, true, &SweepOptions::default()).unwrap())
        .collect();
    let n = alone.len() as f64;
    let clean = alone.iter().map(|r| r.clean).sum::<f64>() / n;
    let corrupted = alone.iter().map(|r| r.corrupted.unwrap()).sum::<f64>() / n;
    assert!((batched.corrupted.unwrap() - corrupted).abs() <= TOL);
    for (e, row) in batched.results.iter().enumerate() {
        let value = alone.iter().map(|r| r.results[e].value).sum::<f64>() / n;
        let recovery = (value - corrupted) / (clean - corrupted);
        assert!((row.recovery.unwrap() - recovery).abs() <= TOL, "entry {e}");
    }
    // A per-position site over pairs of different lengths is an error.
    let by_pos: Vec<_> = rows
        .iter()
        .map(|r| spec_of(r, PatchSite::ResidPre).unwrap())
        .collect();
    let err = run_dataset(&model, &by_pos, &metrics, false, &SweepOptions::default()).unwrap_err();
    assert!(err.to_string().contains("equal token length"), "{err}");
}

/// The error of parsing `line` as the only line of a dataset.
fn error_of(model: &Model, kind: DatasetKind, text: &str) -> String {
    parse_dataset(text, kind, model, false)
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_dataset_lines_name_the_line_and_the_field() {
    let model = tiny();
    let p = DatasetKind::Prompts;
    let ok = r#"{"prompt": "The cat sat on the", "target": " mat"}"#;
    let rows = parse_dataset(&format!("{ok}\n\n{ok}\n"), p, &model, false).unwrap();
    assert_eq!((rows[0].target, rows[1].line), (Some(425), 3));
    assert_eq!(rows[0].clean, vec![297, 277, 291, 263, 291, 296, 258]);
    let cases = [
        ("", "no lines"),
        ("\n  \n", "no lines"),
        (
            &format!("{ok}\n{{\"prompt\": \"x\", \"target\": "),
            "line 2: not JSON",
        ),
        ("[1, 2]", "line 1: expected a JSON object"),
        (
            r#"{"prompt": "a", "target": " mat", "answer": "x"}"#,
            "line 1: unknown field `answer`",
        ),
        (
            r#"{"prompt": "a", "target": " Paris"}"#,
            "line 1: field `target`:",
        ),
        (r#"{"prompt": "a"}"#, "line 1: missing field `target`"),
        (r#"{"target": " mat"}"#, "line 1: missing field `prompt`"),
        (
            r#"{"prompt": "a", "tokens": [1], "target": " mat"}"#,
            "give `prompt` or `tokens`, not both",
        ),
        (
            r#"{"tokens": [1, -2], "target_id": 3}"#,
            "field `tokens`: `-2` is not a token id",
        ),
        (
            r#"{"tokens": [1, 9999], "target_id": 3}"#,
            "token id 9999 is outside the vocabulary",
        ),
        (r#"{"tokens": [], "target_id": 3}"#, "no tokens"),
        (
            r#"{"tokens": [1], "target_id": 450}"#,
            "field `target`: token id 450 is outside",
        ),
        (
            r#"{"prompt": 5, "target": " mat"}"#,
            "field `prompt`: expected a string",
        ),
    ];
    for (text, want) in cases {
        let err = error_of(&model, p, text);
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let err = error_of(
        &model,
        DatasetKind::Pairs,
        r#"{"clean": "a b", "target": " mat"}"#,
    );
    assert!(err.contains("line 1: missing field `corrupted`"), "{err}");
    let err = error_of(
        &model,
        p,
        r#"{"prompt": "a", "target": " mat", "subject": 3}"#,
    );
    assert!(err.contains("field `subject`: expected a string"), "{err}");
    let err = error_of(&model, DatasetKind::Pairs, ok);
    assert!(err.contains("unknown field `prompt`"), "{err}");
}
