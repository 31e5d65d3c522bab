//! `head_z_diff` and `hooklens diff --dataset --hook z`: every (layer, head)'s mean over pairs
//! of |z(clean) - z(corrupted)| equals the hand computation from each prompt's own cache
//! (run alone, no padding), at the last position and averaged over all positions; the
//! ranking is descending; unequal lengths with `--positions all` are a clear error.

mod common;

use common::{fixtures, hooklens, temp_dir};
use hooklens::analysis::{head_z_diff, DiffPositions};
use hooklens::hooks::{HookKind, HookPoint, NamesFilter};
use hooklens::sweep::{parse_dataset, DatasetKind, DatasetRow};
use hooklens::{Model, ReturnType, RunOptions, TokenBatch};
use serde_json::Value;

const TOL: f64 = 1e-4;

fn ids(seed: usize, len: usize, vocab: usize) -> Vec<u32> {
    (0..len).map(|i| ((seed + 37 * i) % vocab) as u32).collect()
}

/// Pairs of lengths `lens` (clean, corrupted): the corrupted prompt changes one token, and
/// drops its last token when its length is one less. No target (`diff` needs none).
fn pairs_file(vocab: usize, lens: &[(usize, usize)]) -> String {
    lens.iter()
        .enumerate()
        .map(|(i, &(lc, lx))| {
            let clean = ids(3 + 5 * i, lc, vocab);
            let mut corrupted = clean.clone();
            corrupted[lc / 2] = (corrupted[lc / 2] + 101) % vocab as u32;
            corrupted.truncate(lx);
            format!("{{\"clean_tokens\": {clean:?}, \"corrupted_tokens\": {corrupted:?}}}\n")
        })
        .collect()
}

/// hook_z of every layer of one prompt run alone. `[layer][pos * n_heads * d_head]`
fn z_alone(model: &Model, tokens: &[u32]) -> Vec<Vec<f32>> {
    let n = model.config().n_layers;
    let names: Vec<HookPoint> = (0..n).map(|l| HookPoint::layer(HookKind::Z, l)).collect();
    let batch = TokenBatch::single(tokens.to_vec()).unwrap();
    let (_, cache) = model
        .run_with_cache(
            &batch,
            &NamesFilter::from(names.clone()),
            &RunOptions::returning(ReturnType::None),
        )
        .unwrap();
    names
        .iter()
        .map(|&p| cache.get(p).unwrap().data.clone())
        .collect()
}

/// The hand computation: `[layer * n_heads + head]` means over pairs.
fn hand(model: &Model, rows: &[DatasetRow], all: bool) -> Vec<f64> {
    let cfg = model.config();
    let (heads, dh) = (cfg.n_heads, cfg.d_head);
    let mut sums = vec![0.0f64; cfg.n_layers * heads];
    for r in rows {
        let corrupted = r.corrupted.as_ref().unwrap();
        let (za, zb) = (z_alone(model, &r.clean), z_alone(model, corrupted));
        for l in 0..cfg.n_layers {
            for h in 0..heads {
                let norm = |ta: usize, tb: usize| {
                    let a = &za[l][(ta * heads + h) * dh..][..dh];
                    let b = &zb[l][(tb * heads + h) * dh..][..dh];
                    let s: f64 = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
                        .sum();
                    s.sqrt()
                };
                sums[l * heads + h] += if all {
                    let p = r.clean.len();
                    (0..p).map(|t| norm(t, t)).sum::<f64>() / p as f64
                } else {
                    norm(r.clean.len() - 1, corrupted.len() - 1)
                };
            }
        }
    }
    sums.iter().map(|s| s / rows.len() as f64).collect()
}

fn check(model: &Model, lens: &[(usize, usize)], positions: DiffPositions, max_rows: usize) {
    let rows = parse_dataset(
        &pairs_file(model.config().d_vocab, lens),
        DatasetKind::Contrasts,
        model,
        false,
    )
    .unwrap();
    let want = hand(model, &rows, positions == DiffPositions::All);
    let got = head_z_diff(model, &rows, positions, max_rows, None).unwrap();
    assert_eq!(got.mean.len(), want.len());
    assert_eq!(got.per_pair.len(), rows.len());
    for (i, (g, w)) in got.mean.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= TOL, "{positions:?} cell {i}: {g} vs {w}");
    }
    assert!(want.iter().any(|&w| w > 1e-3), "the pairs do not differ");
    let ranked = got.ranked();
    assert_eq!(ranked.len(), want.len());
    assert!(ranked.windows(2).all(|w| w[0].2 >= w[1].2));
}

#[test]
fn last_position_norms_equal_the_hand_computation() {
    let gpt2 = Model::load(&fixtures().join("gpt2_small4")).unwrap();
    let lens = [(6, 6), (9, 8), (5, 5), (7, 6)];
    check(&gpt2, &lens, DiffPositions::Last, 4096);
    check(&gpt2, &lens, DiffPositions::Last, 20); // one pair per pass
    let llama = Model::load(&fixtures().join("llama_gqa")).unwrap();
    check(&llama, &lens, DiffPositions::Last, 4096);
}

#[test]
fn all_position_norms_equal_the_hand_computation() {
    let gpt2 = Model::load(&fixtures().join("gpt2_small4")).unwrap();
    let lens = [(6, 6), (9, 9), (5, 5)];
    check(&gpt2, &lens, DiffPositions::All, 4096);
    let llama = Model::load(&fixtures().join("llama_gqa")).unwrap();
    check(&llama, &lens, DiffPositions::All, 30);
}

#[test]
fn all_positions_need_pairs_of_one_length() {
    let model = Model::load(&fixtures().join("gpt2_small4")).unwrap();
    let text = pairs_file(model.config().d_vocab, &[(6, 6), (9, 8)]);
    let rows = parse_dataset(&text, DatasetKind::Contrasts, &model, false).unwrap();
    let e = head_z_diff(&model, &rows, DiffPositions::All, 4096, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 2") && e.contains("equal token length"),
        "{e}"
    );
}

#[test]
fn diff_pairs_need_no_target_where_patch_pairs_do() {
    let model = Model::load(&fixtures().join("gpt2_tiny")).unwrap();
    let text = pairs_file(model.config().d_vocab, &[(6, 6), (5, 5)]);
    let e = parse_dataset(&text, DatasetKind::Pairs, &model, false).unwrap_err();
    assert!(
        e.to_string().contains("line 1: missing field `target`"),
        "{e}"
    );
    let rows = parse_dataset(&text, DatasetKind::Contrasts, &model, false).unwrap();
    assert_eq!(rows.len(), 2);
    let e = rows[1].metric(false).unwrap_err();
    assert!(
        e.to_string().contains("line 2: missing field `target`"),
        "{e}"
    );
    let with_target = text.replace("]}", "], \"target_id\": 3}");
    let rows = parse_dataset(&with_target, DatasetKind::Contrasts, &model, false).unwrap();
    assert_eq!(rows[0].target, Some(3));
}

#[test]
fn cli_diff_writes_ranked_json_csv_and_heatmap() {
    let model_dir = fixtures().join("gpt2_small4");
    let model = Model::load(&model_dir).unwrap();
    let dir = temp_dir("cli-diff");
    let data = dir.join("pairs.jsonl");
    let text = pairs_file(model.config().d_vocab, &[(6, 6), (9, 8), (5, 5)]);
    std::fs::write(&data, &text).unwrap();
    let (json, csv, svg) = (dir.join("d.json"), dir.join("d.csv"), dir.join("d.svg"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let args = [
        "--model".to_string(),
        s(&model_dir),
        "diff".into(),
        "--dataset".into(),
        s(&data),
        "--hook".into(),
        "z".into(),
        "--json".into(),
        s(&json),
        "--csv".into(),
        s(&csv),
        "--heatmap".into(),
        s(&svg),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = hooklens(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rank"), "{stdout}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = parse_dataset(&text, DatasetKind::Contrasts, &model, false).unwrap();
    let want = hand(&model, &rows, false);
    let heads = model.config().n_heads;
    let ranked = doc["ranked"].as_array().unwrap();
    assert_eq!(ranked.len(), want.len());
    let mut last = f64::INFINITY;
    for r in ranked {
        let (l, h) = (
            r["layer"].as_u64().unwrap() as usize,
            r["head"].as_u64().unwrap() as usize,
        );
        let v = r["mean_norm"].as_f64().unwrap();
        assert!((v - want[l * heads + h]).abs() <= TOL, "L{l}H{h}");
        assert!(v <= last);
        last = v;
    }
    assert_eq!(doc["per_pair"].as_array().unwrap().len(), 3);
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_text.lines().count(), want.len() + 1);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    // Unequal lengths with --positions all: an error naming the file and the line.
    let mut all = args.clone();
    all.truncate(7);
    all.extend(["--positions", "all"]);
    let (ok, _, stderr) = hooklens(&all);
    assert!(!ok);
    assert!(
        stderr.contains("pairs.jsonl") && stderr.contains("line 2"),
        "{stderr}"
    );
}
