//! `--method mean` over a dataset: the mean of a hook over every real position of every
//! prompt (or per position, prompts of one length) equals the hand computation from each
//! prompt's own cache, and `ablate --dataset --method mean` equals the per-prompt loop that
//! sets each head's `hook_z` to that hand-computed mean in a plain forward.

mod common;

use std::sync::Arc;

use common::{fixtures, hooklens, temp_dir};
use hooklens::hooks::{HookKind, HookPoint, Intervention, NamesFilter, Op};
use hooklens::sweep::{dataset_mean_values, parse_dataset, DatasetKind, DatasetRow, MeanOver};
use hooklens::{Input, Model, ReturnType, RunOptions, Tensor, TokenBatch};
use serde_json::Value;

const TOL: f64 = 1e-4;

fn ids(seed: usize, len: usize, vocab: usize) -> Vec<u32> {
    (0..len).map(|i| ((seed + 37 * i) % vocab) as u32).collect()
}

/// One prompt per length, targets 10, 11, ... against 20, 21, ... (the second without).
fn prompts_file(vocab: usize, lens: &[usize]) -> String {
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            let against = if i == 1 {
                String::new()
            } else {
                format!(", \"against_id\": {}", 20 + i)
            };
            format!(
                "{{\"tokens\": {:?}, \"target_id\": {}{against}}}\n",
                ids(3 + 7 * i, len, vocab),
                10 + i
            )
        })
        .collect()
}

/// `kind` of every layer for one prompt alone. `[layer]` -> `[pos, ...]`
fn cache_alone(model: &Model, tokens: &[u32], kind: HookKind) -> Vec<Tensor> {
    let points: Vec<HookPoint> = (0..model.config().n_layers)
        .map(|l| HookPoint::layer(kind, l))
        .collect();
    let batch = TokenBatch::single(tokens.to_vec()).unwrap();
    let (_, cache) = model
        .run_with_cache(
            &batch,
            &NamesFilter::from(points.clone()),
            &RunOptions::returning(ReturnType::None),
        )
        .unwrap();
    points
        .iter()
        .map(|&p| {
            let t = cache.get(p).unwrap();
            Tensor::new(t.data.clone(), t.shape[1..].to_vec()).unwrap()
        })
        .collect()
}

/// The hand mean: `[layer][width]` pooled, or `[layer][pos * width]` per position.
fn hand_mean(model: &Model, rows: &[DatasetRow], kind: HookKind, per_pos: bool) -> Vec<Vec<f64>> {
    let caches: Vec<Vec<Tensor>> = rows
        .iter()
        .map(|r| cache_alone(model, &r.clean, kind))
        .collect();
    (0..model.config().n_layers)
        .map(|l| {
            let width = caches[0][l].data.len() / rows[0].clean.len();
            let len = if per_pos {
                rows[0].clean.len() * width
            } else {
                width
            };
            let mut sum = vec![0.0f64; len];
            let mut count = 0usize;
            for c in &caches {
                for (pos, row) in c[l].data.chunks_exact(width).enumerate() {
                    let off = if per_pos { pos * width } else { 0 };
                    for (j, &v) in row.iter().enumerate() {
                        sum[off + j] += v as f64;
                    }
                    count += 1;
                }
            }
            let n = if per_pos { rows.len() } else { count } as f64;
            sum.iter().map(|s| s / n).collect()
        })
        .collect()
}

fn rows_of(model: &Model, lens: &[usize]) -> Vec<DatasetRow> {
    let text = prompts_file(model.config().d_vocab, lens);
    parse_dataset(&text, DatasetKind::Prompts, model, false).unwrap()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= 1e-5, "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn dataset_means_equal_the_hand_computation() {
    for fixture in ["gpt2_small4", "llama_gqa"] {
        let model = Model::load(&fixtures().join(fixture)).unwrap();
        let rows = rows_of(&model, &[6, 9, 4, 7]);
        for kind in [HookKind::Z, HookKind::MlpOut] {
            let want = hand_mean(&model, &rows, kind, false);
            for max_rows in [4096, 10] {
                let got =
                    dataset_mean_values(&model, &rows, kind, MeanOver::AllPositions, max_rows)
                        .unwrap();
                for (l, t) in got.iter().enumerate() {
                    assert_eq!(t.shape[0], 1);
                    assert_close(&t.data, &want[l], &format!("{fixture} {kind:?} L{l}"));
                }
            }
        }
        let same = rows_of(&model, &[6, 6, 6]);
        let want = hand_mean(&model, &same, HookKind::Z, true);
        let got =
            dataset_mean_values(&model, &same, HookKind::Z, MeanOver::PerPosition, 4096).unwrap();
        for (l, t) in got.iter().enumerate() {
            assert_eq!(t.shape[0], 6);
            assert_close(&t.data, &want[l], &format!("{fixture} per-position L{l}"));
        }
        let e = dataset_mean_values(&model, &rows, HookKind::Z, MeanOver::PerPosition, 4096)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("one token length"),
            "{e}"
        );
    }
}

/// The metric of one prompt's plain forward with `ivs`, by hand.
fn metric_alone(model: &Model, row: &DatasetRow, ivs: &[Intervention]) -> f64 {
    let batch = TokenBatch::single(row.clean.clone()).unwrap();
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
    let v = model.config().d_vocab;
    let all = out.logits.unwrap().data;
    let p = row.clean.len();
    let l: Vec<f64> = all[(p - 1) * v..p * v].iter().map(|&x| x as f64).collect();
    let t = row.target.expect("a prompts dataset has targets") as usize;
    match row.against {
        Some(a) => l[t] - l[a as usize],
        None => {
            let max = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            l[t] - (max + l.iter().map(|x| (x - max).exp()).sum::<f64>().ln())
        }
    }
}

/// Each row's values, one per (layer, head), with the head's z set to the hand mean.
fn hand_ablation(model: &Model, rows: &[DatasetRow], per_pos: bool) -> Vec<Vec<f64>> {
    let cfg = model.config();
    let mean = hand_mean(model, rows, HookKind::Z, per_pos);
    rows.iter()
        .map(|r| {
            let p = r.clean.len();
            let mut values = Vec::new();
            for (l, m) in mean.iter().enumerate() {
                let row: Vec<f32> = m.iter().map(|&x| x as f32).collect();
                let data = if per_pos { row } else { row.repeat(p) };
                let t = Arc::new(Tensor::new(data, vec![p, cfg.n_heads, cfg.d_head]).unwrap());
                for h in 0..cfg.n_heads {
                    let iv = Intervention::new(
                        HookPoint::layer(HookKind::Z, l),
                        Op::Set {
                            values: Arc::clone(&t),
                        },
                    )
                    .at_heads(vec![h]);
                    values.push(metric_alone(model, r, &[iv]));
                }
            }
            values
        })
        .collect()
}

/// `ablate --dataset FILE --method mean [extra]`'s JSON, or its stderr when it fails.
fn ablate(tag: &str, text: &str, extra: &[&str]) -> Result<Value, String> {
    let model_dir = fixtures().join("gpt2_small4");
    let dir = temp_dir(tag);
    let data = dir.join("data.jsonl");
    std::fs::write(&data, text).unwrap();
    let json = dir.join("out.json");
    let mut args = vec![
        "--model",
        model_dir.to_str().unwrap(),
        "ablate",
        "--dataset",
        data.to_str().unwrap(),
        "--method",
        "mean",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend(extra);
    let (ok, _, stderr) = hooklens(&args);
    if !ok {
        return Err(stderr);
    }
    Ok(serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap())
}

fn check_against(doc: &Value, want: &[Vec<f64>]) {
    let per_prompt = doc["per_prompt"].as_array().unwrap();
    assert_eq!(per_prompt.len(), want.len());
    for (i, (p, w)) in per_prompt.iter().zip(want).enumerate() {
        let got: Vec<f64> = (p["values"].as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), w.len());
        for (e, (g, w)) in got.iter().zip(w).enumerate() {
            assert!((g - w).abs() <= TOL, "prompt {i} entry {e}: {g} vs {w}");
        }
    }
    let results = doc["results"].as_array().unwrap();
    for (e, r) in results.iter().enumerate() {
        let mean = want.iter().map(|w| w[e]).sum::<f64>() / want.len() as f64;
        assert!(
            (r["value"].as_f64().unwrap() - mean).abs() <= TOL,
            "entry {e}"
        );
    }
}

#[test]
fn ablate_dataset_mean_equals_the_hand_loop() {
    let model = Model::load(&fixtures().join("gpt2_small4")).unwrap();
    let vocab = model.config().d_vocab;
    let lens = [6, 9, 4];
    let doc = ablate("mean-all", &prompts_file(vocab, &lens), &[]).unwrap();
    let rows = rows_of(&model, &lens);
    check_against(&doc, &hand_ablation(&model, &rows, false));
    // Different from zero ablation (the mean is not zero).
    let same = [5, 5, 5];
    let doc = ablate(
        "mean-per-pos",
        &prompts_file(vocab, &same),
        &["--mean", "per-position", "--max-rows", "8"],
    )
    .unwrap();
    check_against(&doc, &hand_ablation(&model, &rows_of(&model, &same), true));
}

#[test]
fn dataset_mean_errors_are_clear() {
    let vocab = 450;
    let e = ablate(
        "mean-ragged",
        &prompts_file(vocab, &[6, 9]),
        &["--mean", "per-position"],
    )
    .unwrap_err();
    assert!(e.contains("data.jsonl") && e.contains("line 2"), "{e}");
    assert!(e.contains("one token length"), "{e}");
    let model_dir = fixtures().join("gpt2_small4");
    let (ok, _, e) = hooklens(&[
        "--model",
        model_dir.to_str().unwrap(),
        "ablate",
        "--tokens",
        "1,2,3",
        "--target-id",
        "4",
        "--method",
        "mean",
        "--mean",
        "all",
    ]);
    assert!(!ok && e.contains("--mean applies"), "{e}");
}
