//! `hooklens ablate | patch | trace` end to end on a fixture model: outputs, agreement with the
//! naive loop, and errors.

mod common;

use common::{fixtures, hooklens, temp_dir};

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn ablate_writes_json_and_csv_equal_to_the_naive_run() {
    let model = fixtures().join("gpt2_small4");
    let m = model.to_str().unwrap();
    let dir = temp_dir("cli-ablate");
    let (fast_json, naive_json, csv) = (
        dir.join("fast.json"),
        dir.join("naive.json"),
        dir.join("out.csv"),
    );
    let base = [
        "--model",
        m,
        "ablate",
        "--prompt",
        "The quick brown fox",
        "--target-id",
        "7",
    ];
    let (ok, stdout, stderr) = hooklens(
        &[
            &base[..],
            &[
                "--json",
                fast_json.to_str().unwrap(),
                "--csv",
                csv.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("12 variants"), "{stdout}");
    assert!(stdout.contains("per layer"), "{stdout}");
    let (ok, _, stderr) = hooklens(
        &[
            &base[..],
            &["--naive", "--json", naive_json.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    let (fast, naive) = (json(&fast_json), json(&naive_json));
    assert_eq!(fast["metric"]["kind"], "log_prob");
    assert_eq!(fast["tokens"][0], 449, "BOS first");
    let (rf, rn) = (
        fast["results"].as_array().unwrap(),
        naive["results"].as_array().unwrap(),
    );
    assert_eq!(rf.len(), 3 * 4);
    for (a, b) in rf.iter().zip(rn) {
        assert_eq!(a["layer"], b["layer"]);
        assert_eq!(a["head"], b["head"]);
        let d = (a["value"].as_f64().unwrap() - b["value"].as_f64().unwrap()).abs();
        assert!(d < 1e-4, "{a} vs {b}");
        let delta = a["value"].as_f64().unwrap() - fast["clean"].as_f64().unwrap();
        assert!((a["delta"].as_f64().unwrap() - delta).abs() < 1e-9);
    }
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("layer,head,pos,value,delta,recovery")
    );
    assert_eq!(csv.lines().count(), 13);
}

#[test]
fn patch_and_trace_report_recovery() {
    let model = fixtures().join("llama_gqa");
    let m = model.to_str().unwrap();
    let dir = temp_dir("cli-patch");
    let out = dir.join("patch.json");
    let (ok, stdout, stderr) = hooklens(&[
        "--model",
        m,
        "patch",
        "--clean-tokens",
        "1,2,3,4,5,6",
        "--corrupted-tokens",
        "1,2,9,4,5,6",
        "--target-id",
        "7",
        "--against-id",
        "8",
        "--site",
        "resid-pre",
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let doc = json(&out);
    assert_eq!(doc["metric"]["kind"], "logit_diff");
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2 * 6);
    // Patching the whole difference (position 2 at layer 0) restores the clean run.
    let cell = results
        .iter()
        .find(|r| r["layer"] == 0 && r["pos"] == 2)
        .unwrap();
    assert!(
        (cell["recovery"].as_f64().unwrap() - 1.0).abs() < 1e-3,
        "{cell}"
    );
    // Positions before the corruption change nothing.
    let before = results
        .iter()
        .find(|r| r["layer"] == 0 && r["pos"] == 1)
        .unwrap();
    assert!(
        before["recovery"].as_f64().unwrap().abs() < 1e-3,
        "{before}"
    );

    let out = dir.join("trace.json");
    let (ok, stdout, stderr) = hooklens(&[
        "--model",
        m,
        "trace",
        "--tokens",
        "1,2,3,4,5,6",
        "--subject-positions",
        "1,2",
        "--target-id",
        "7",
        "--samples",
        "2",
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let doc = json(&out);
    assert_eq!(doc["results"].as_array().unwrap().len(), 2 * 6);
    assert!(doc["corrupted"].is_number());
}

#[test]
fn sweep_errors_are_clear() {
    let model = fixtures().join("gpt2_tiny");
    let m = model.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "ablate",
                "--prompt",
                "Hello world",
                "--target",
                "Hello world",
            ],
            "not a single token",
        ),
        (
            vec!["ablate", "--prompt", "Hello", "--target-id", "9999"],
            "outside the vocabulary",
        ),
        (
            vec![
                "ablate",
                "--prompt",
                "Hello",
                "--metric",
                "logit-diff",
                "--target-id",
                "3",
            ],
            "--against",
        ),
        (
            vec![
                "patch",
                "--clean",
                "Hello world",
                "--corrupted",
                "Hi",
                "--target-id",
                "3",
            ],
            "equal token length",
        ),
        (
            vec![
                "trace",
                "--prompt",
                "Hello world",
                "--subject",
                "zebra",
                "--target-id",
                "3",
            ],
            "does not appear",
        ),
        (
            vec![
                "ablate",
                "--prompt",
                "Hello",
                "--method",
                "resample",
                "--target-id",
                "3",
            ],
            "--resample-prompt",
        ),
    ];
    for (args, want) in cases {
        let full: Vec<&str> = ["--model", m]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let (ok, _, stderr) = hooklens(&full);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

/// Patches position 3 of a 7-token prompt of the GPT-2 fixture, writing a heatmap to `path`.
fn patch_heatmap(path: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let model = fixtures().join("gpt2_small4");
    let args = [
        "--model",
        model.to_str().unwrap(),
        "patch",
        "--clean-tokens",
        "449,1,2,3,4,5,6",
        "--corrupted-tokens",
        "449,1,2,9,4,5,6",
        "--target-id",
        "7",
        "--heatmap",
        path.to_str().unwrap(),
    ];
    hooklens(&[&args[..], extra].concat())
}

#[test]
fn heatmaps_are_written_as_png_and_svg() {
    let model = fixtures().join("gpt2_small4");
    let dir = temp_dir("cli-heatmap");
    let (png, svg) = (dir.join("grid.png"), dir.join("grid.svg"));
    for path in [&png, &svg] {
        let (ok, stdout, stderr) = patch_heatmap(path, &[]);
        assert!(ok, "{stdout}\n{stderr}");
    }
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") || text.contains("<svg"));
    // One cell per (layer, position): 3 layers x 7 tokens.
    assert_eq!(text.matches("class=\"cell\"").count(), 3 * 7);
    assert!(text.contains("position") && text.contains("layer"));
    let (ok, _, stderr) = hooklens(&[
        "--model",
        model.to_str().unwrap(),
        "ablate",
        "--prompt",
        "a",
        "--target-id",
        "7",
        "--heatmap",
        dir.join("x.bmp").to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains(".png"), "{stderr}");
}

#[test]
fn heatmap_titles_name_the_metric_and_z_by_pos_ticks_follow_layers() {
    let dir = temp_dir("heatmap-title");
    let svg = dir.join("z.svg");
    let (ok, _, stderr) = patch_heatmap(&svg, &["--site", "z-by-pos"]);
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc_title = text
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap();
    assert!(
        doc_title.contains("log p(") && doc_title.contains("(id 7)"),
        "{doc_title}"
    );
    for l in 0..3 {
        assert!(
            text.contains(&format!(">L{l}</text>")),
            "tick for layer {l}"
        );
    }
    assert!(!text.contains(">L0H1</text>") && !text.contains(">L1H0</text>"));
    assert_eq!(text.matches("class=\"cell\"").count(), 3 * 4 * 7);
}
