//! `hooklens bench` as a library: the engine's copy counter against sizes computed by hand,
//! every case's row, the plan's errors, and the JSON the command writes.

mod common;

use common::{fixtures, hooklens, temp_dir};
use hooklens::bench::{run_bench, BenchPlan, Case, Progress};
use hooklens::copies::counted;
use hooklens::{Hooks, Input, Model, NamesFilter, RunOptions, Tensor, TokenBatch};

fn tiny() -> Model {
    Model::load(&fixtures().join("gpt2_tiny")).unwrap()
}

fn tokens(batch: usize, seq: usize) -> TokenBatch {
    let rows: Vec<Vec<u32>> = (0..batch)
        .map(|b| (0..seq).map(|i| (3 + b * 5 + i * 7) as u32 % 50).collect())
        .collect();
    TokenBatch::from_rows(&rows).unwrap()
}

#[test]
fn a_plain_pass_and_read_only_hooks_copy_nothing_on_the_cpu() {
    let model = tiny();
    let toks = tokens(2, 5);
    let (out, plain) = counted(|| model.forward(&toks, &RunOptions::default()));
    out.unwrap();
    assert_eq!(plain.total(), 0, "{plain:?}");
    let mut hooks = Hooks::new();
    let seen = std::cell::Cell::new(0usize);
    for point in model.hook_points(false) {
        hooks.add(point, |act, _| {
            seen.set(seen.get() + act.data().len());
            Ok(())
        });
    }
    let (out, read) = counted(|| model.run_with_hooks(&toks, &mut hooks, &RunOptions::default()));
    out.unwrap();
    drop(hooks);
    assert!(seen.get() > 0);
    assert_eq!(read.total(), 0, "{read:?}");
}

#[test]
fn the_cache_counts_exactly_the_bytes_it_holds() {
    let model = tiny();
    let toks = tokens(3, 4);
    let (run, stats) =
        counted(|| model.run_with_cache(&toks, &NamesFilter::All, &RunOptions::default()));
    let (_, cache) = run.unwrap();
    // By hand: every cached tensor's values, 4 bytes each, as its shape says.
    let held: usize = cache
        .iter()
        .map(|(_, t)| 4 * t.shape.iter().product::<usize>())
        .sum();
    assert!(held > 0);
    assert_eq!(stats.cache, held as u64);
    assert_eq!(
        (stats.engine, stats.hook_views, stats.interventions),
        (0, 0, 0)
    );
}

#[test]
fn a_residual_input_is_one_copy_into_the_engine() {
    let model = tiny();
    let d = model.config().d_model;
    let resid = Tensor {
        data: (0..2 * 3 * d).map(|i| (i % 7) as f32 * 0.1).collect(),
        shape: vec![2, 3, d],
    };
    let opts = RunOptions {
        start_at_layer: Some(1i64),
        ..RunOptions::default()
    };
    let input = Input::Residual {
        resid: &resid,
        tokens: None,
    };
    let (out, stats) = counted(|| model.run(input, None, None, &opts));
    out.unwrap();
    assert_eq!(stats.engine, (2 * 3 * d * 4) as u64, "{stats:?}");
    assert_eq!(stats.total(), stats.engine);
}

fn plan(cases: Vec<Case>) -> BenchPlan {
    BenchPlan {
        shapes: vec![(2, 5), (1, 3)],
        cases,
        reps: 2,
        sweep_reps: 1,
        sweep_tokens: 4,
        python: "/nonexistent/python".into(),
    }
}

#[test]
fn every_case_gives_a_row_in_order_with_ratios_and_copies() {
    let model = tiny();
    let mut events = Vec::new();
    let report = run_bench(&model, &plan(Case::ALL.to_vec()), &mut |e| {
        events.push(match e {
            Progress::Estimate { .. } => "estimate".to_string(),
            Progress::Group { shape, .. } => format!("group {shape}"),
            Progress::Done { row, .. } => format!("done {} {}", row.case, row.shape),
            Progress::Skipped(s) => format!("skipped {}", s.case),
        })
    })
    .unwrap();
    let in_process: Vec<&str> = Case::ALL
        .iter()
        .filter(|c| !c.is_sweep() && **c != Case::PythonZeroHead)
        .map(|c| c.name())
        .collect();
    let mut want = Vec::new();
    for shape in ["2x5", "1x3"] {
        want.extend(
            in_process
                .iter()
                .map(|c| (c.to_string(), shape.to_string())),
        );
    }
    // The sweeps' prompt (1x4) is not a shape: a plain row there is their ratio's base.
    for case in ["plain", "sweep_engine", "sweep_naive"] {
        want.push((case.to_string(), "1x4".to_string()));
    }
    let got: Vec<(String, String)> = report
        .rows
        .iter()
        .map(|r| (r.case.clone(), r.shape.clone()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(events[0], "skipped python_zero_head");
    assert_eq!(events[1], "estimate");
    assert_eq!(events[2], "group 2x5");
    assert_eq!(
        events.iter().filter(|e| e.starts_with("done")).count(),
        want.len()
    );
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].reason.contains("/nonexistent/python"));
    for row in &report.rows {
        let runs = if row.case.starts_with("sweep") { 1 } else { 2 };
        assert_eq!(row.runs, runs, "{}", row.case);
        assert!(row.min_ms <= row.median_ms && row.median_ms <= row.max_ms);
        assert!(row.min_ms > 0.0);
        let ratio = row.ratio.unwrap();
        if row.case == "plain" {
            assert_eq!(ratio, 1.0);
        }
        // The FLOP count is given for the plain passes only; logits at the last position
        // skip most of the last block and the unembedding.
        let plain_only = row.case == "plain" || row.case == "plain_last";
        assert_eq!(row.gflop.is_some(), plain_only, "{}", row.case);
        if row.case == "plain_last" {
            let full = report
                .rows
                .iter()
                .find(|r| r.case == "plain" && r.shape == row.shape);
            assert!(row.gflop.unwrap() < full.unwrap().gflop.unwrap());
        }
        let copied = row.bytes_copied.unwrap();
        match row.case.as_str() {
            "cache_all" => assert!(copied > 0),
            "sweep_engine" => {}
            _ => assert_eq!(copied, 0, "{} copies on the CPU", row.case),
        }
        assert_eq!(row.device, "cpu");
    }
    // The cache row copies exactly what run_with_cache holds at that shape.
    let (_, cache) = model
        .run_with_cache(&tokens(2, 5), &NamesFilter::All, &RunOptions::default())
        .unwrap();
    let held: usize = cache.iter().map(|(_, t)| 4 * t.data.len()).sum();
    let cache_row = report.rows.iter().find(|r| r.case == "cache_all").unwrap();
    assert_eq!(cache_row.bytes_copied, Some(held as u64));
    assert!(["avx512", "avx2", "portable"].contains(&report.machine.isa.as_str()));
    assert!(report.per_slot.empty_ns > 0.0 && report.per_slot.c_callback_ns > 0.0);
}

#[test]
fn bad_plans_are_clear_errors() {
    let model = tiny();
    let n_ctx = model.config().n_ctx;
    let mut long = plan(vec![Case::Plain]);
    long.shapes = vec![(1, n_ctx + 1)];
    let err = run_bench(&model, &long, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains(&(n_ctx + 1).to_string()), "{err}");
    let none = plan(Vec::new());
    assert!(run_bench(&model, &none, &mut |_| {}).is_err());
    let err = Case::parse_list("plain,warp_drive")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("warp_drive") && err.contains("sweep_naive"),
        "{err}"
    );
    assert_eq!(Case::parse_list("all").unwrap(), Case::ALL.to_vec());
    assert_eq!(
        Case::parse_list("read_all, plain,read_all").unwrap(),
        vec![Case::ReadAll, Case::Plain]
    );
}

#[test]
fn the_command_writes_the_documented_json() {
    let dir = temp_dir("bench-json");
    let json = dir.join("bench.json");
    let model = fixtures().join("gpt2_tiny");
    let (ok, stdout, stderr) = hooklens(&[
        "--model",
        model.to_str().unwrap(),
        "bench",
        "--shapes",
        "1x4",
        "--cases",
        "plain,empty_slots,cache_all,python_zero_head,sweep_engine",
        "--reps",
        "2",
        "--sweep-tokens",
        "3",
        "--python",
        "/nonexistent/python",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("about") && stderr.contains("[1/5]"),
        "{stderr}"
    );
    assert!(
        stdout.contains("median ms") && stdout.contains("copied bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("python_zero_head      skipped"), "{stdout}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in ["cpu", "cores", "isa", "versions"] {
        assert!(!doc["machine"][key].is_null(), "machine.{key}");
    }
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        for key in [
            "case",
            "device",
            "shape",
            "median_ms",
            "min_ms",
            "max_ms",
            "ratio",
        ] {
            assert!(!row[key].is_null(), "{key} in {row}");
        }
        assert!(
            row["bytes_copied"].is_u64() && row["peak_bytes"].is_u64(),
            "{row}"
        );
    }
    assert_eq!(rows[4]["shape"], "1x3");
    assert_eq!(doc["skipped"][0]["case"], "python_zero_head");
}
