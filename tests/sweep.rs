//! The sweep engine equals the naive loop (one full forward per variant) on GPT-2- and
//! Llama-shaped random models, for every sweep kind, metric and chunking; and built-in
//! interventions equal TransformerLens runs with the same edits.

mod common;

use std::sync::Arc;

use common::{fixtures, load_reference, max_abs_diff};
use hooklens::hooks::{Intervention, Op};
use hooklens::sweep::{
    ablation_sweep, patching_sweep, trace_sweep, AblationMethod, AblationTarget, Metric, PatchSite,
    SweepOptions, SweepSpec, TraceKind, TraceSettings,
};
use hooklens::{Input, Model, RunOptions, Tensor};

const TOL: f64 = 1e-4;

fn model(name: &str) -> Model {
    Model::load(&fixtures().join(name)).unwrap()
}

/// A deterministic token sequence of the fixture's vocabulary.
fn tokens(seed: u32, len: usize, vocab: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|i| (i * 37 + seed * 101 + 11) % vocab)
        .collect()
}

/// Runs a spec both ways (and with a tiny row budget) and checks they agree.
fn check_equal(model: &Model, spec: &SweepSpec, metric: &Metric, label: &str) {
    let naive = spec
        .run(model, metric, true, &SweepOptions::default())
        .unwrap();
    for max_rows in [4096, 7] {
        let opts = SweepOptions {
            max_rows,
            ..SweepOptions::default()
        };
        let fast = spec.run(model, metric, false, &opts).unwrap();
        assert_eq!(fast.results.len(), naive.results.len());
        assert!(
            (fast.clean - naive.clean).abs() <= TOL,
            "{label}: clean differs"
        );
        let mut worst = 0.0f64;
        for (a, b) in fast.outcome.values.iter().zip(&naive.outcome.values) {
            worst = worst.max((a - b).abs());
        }
        assert!(
            worst <= TOL,
            "{label} (max_rows {max_rows}): engine vs naive differ by {worst}"
        );
        // The sweep did something: not every variant equals the base.
        let moved = naive
            .outcome
            .values
            .iter()
            .filter(|v| (*v - naive.clean).abs() > 1e-3)
            .count();
        assert!(moved > 0, "{label}: no variant changed the metric");
        if max_rows == 7 {
            assert!(
                fast.outcome.stats.passes > 2,
                "{label}: a small budget must split the batch"
            );
        }
    }
}

fn metrics(vocab: u32) -> Vec<Metric> {
    vec![
        Metric::LogProb { target: 5 % vocab },
        Metric::Prob { target: 17 % vocab },
        Metric::LogitDiff {
            target: 3,
            other: 40,
        },
        Metric::Loss,
        Metric::KlToClean,
    ]
}

#[test]
fn ablation_sweeps_equal_the_naive_loop() {
    for name in ["gpt2_small4", "llama_gqa", "llama_odd"] {
        let m = model(name);
        let vocab = m.config().d_vocab as u32;
        let prompt = tokens(1, 9, vocab);
        let methods = [
            AblationMethod::Zero,
            AblationMethod::Mean { references: vec![] },
            AblationMethod::Mean {
                references: vec![tokens(2, 9, vocab), tokens(3, 9, vocab)],
            },
            AblationMethod::Resample {
                source: tokens(4, 9, vocab),
            },
        ];
        for method in &methods {
            for target in [
                AblationTarget::Heads,
                AblationTarget::AttnLayers,
                AblationTarget::MlpLayers,
            ] {
                let spec = ablation_sweep(&m, &prompt, target, method).unwrap();
                let metric = Metric::LogProb { target: 7 };
                check_equal(&m, &spec, &metric, &format!("{name} {target:?} {method:?}"));
            }
        }
        let spec =
            ablation_sweep(&m, &prompt, AblationTarget::Heads, &AblationMethod::Zero).unwrap();
        for metric in metrics(vocab) {
            check_equal(&m, &spec, &metric, &format!("{name} heads {metric:?}"));
        }
    }
}

#[test]
fn patching_sweeps_equal_the_naive_loop() {
    for name in ["gpt2_small4", "llama_gqa", "llama_odd"] {
        let m = model(name);
        let vocab = m.config().d_vocab as u32;
        let clean = tokens(5, 8, vocab);
        let mut corrupted = clean.clone();
        corrupted[2] = (corrupted[2] + 13) % vocab;
        corrupted[5] = (corrupted[5] + 29) % vocab;
        for site in [
            PatchSite::ResidPre,
            PatchSite::ResidMid,
            PatchSite::AttnOut,
            PatchSite::MlpOut,
            PatchSite::Z,
            PatchSite::ZByPos,
        ] {
            let spec = patching_sweep(&m, &clean, &corrupted, site).unwrap();
            for metric in [
                Metric::LogitDiff {
                    target: 3,
                    other: 9,
                },
                Metric::KlToClean,
                Metric::Loss,
            ] {
                check_equal(&m, &spec, &metric, &format!("{name} {site:?} {metric:?}"));
            }
            // Patching every position of resid_pre at layer 0 restores the clean run exactly.
            if site == PatchSite::ResidPre {
                let report = spec
                    .run(
                        &m,
                        &Metric::LogitDiff {
                            target: 3,
                            other: 9,
                        },
                        false,
                        &SweepOptions::default(),
                    )
                    .unwrap();
                let at_pos2 = report
                    .results
                    .iter()
                    .find(|r| r.layer == 0 && r.pos == Some(2))
                    .unwrap();
                assert!(at_pos2.recovery.is_some());
            }
        }
    }
}

#[test]
fn causal_tracing_equals_the_naive_loop() {
    for name in ["gpt2_small4", "llama_gqa"] {
        let m = model(name);
        let vocab = m.config().d_vocab as u32;
        let prompt = tokens(6, 7, vocab);
        for kind in [TraceKind::Resid, TraceKind::Mlp, TraceKind::Attn] {
            let settings = TraceSettings {
                kind,
                window: 2,
                samples: 3,
                ..TraceSettings::default()
            };
            let spec = trace_sweep(&m, &prompt, &[1, 2], &settings).unwrap();
            assert_eq!(spec.bases.len(), 4);
            check_equal(
                &m,
                &spec,
                &Metric::LogProb { target: 9 },
                &format!("{name} trace {kind:?}"),
            );
            check_equal(
                &m,
                &spec,
                &Metric::KlToClean,
                &format!("{name} trace {kind:?} kl"),
            );
        }
    }
}

/// Built-in interventions reproduce TL runs with the same edits (independent references).
#[test]
fn interventions_match_transformer_lens() {
    for name in ["gpt2_tiny", "gpt2_small4", "llama_gqa", "llama_odd"] {
        let dir = fixtures().join(name);
        let m = Model::load(&dir).unwrap();
        let r = load_reference(&dir);
        let batch = r.tokens.batch();
        let layer = r.meta("zero_head_layer");
        let head: usize = r.meta("zero_head_head").parse().unwrap();
        let zero: Vec<(usize, Intervention)> = (0..batch)
            .map(|b| {
                (
                    b,
                    Intervention::new(format!("blocks.{layer}.attn.hook_z"), Op::Zero)
                        .at_heads(vec![head]),
                )
            })
            .collect();
        let (out, _) = m
            .run_with_interventions(
                Input::Tokens(&r.tokens),
                None,
                None,
                &zero,
                &RunOptions::default(),
            )
            .unwrap();
        let d = max_abs_diff(&out.logits.unwrap(), r.tensor("zero_head_logits"));
        assert!(d <= 1e-4, "{name}: zero-head intervention vs TL: {d}");

        let pos: usize = r.meta("patch_resid_pos").parse().unwrap();
        let delta: f32 = r.meta("patch_resid_delta").parse().unwrap();
        let add: Vec<(usize, Intervention)> = (0..batch)
            .map(|b| {
                let iv = Intervention::new(
                    "blocks.1.hook_resid_pre",
                    Op::Add {
                        vector: vec![delta; m.config().d_model],
                    },
                );
                (b, iv.at_positions(vec![pos]))
            })
            .collect();
        let (out, _) = m
            .run_with_interventions(
                Input::Tokens(&r.tokens),
                None,
                None,
                &add,
                &RunOptions::default(),
            )
            .unwrap();
        let d = max_abs_diff(&out.logits.unwrap(), r.tensor("patch_resid_logits"));
        assert!(d <= 1e-4, "{name}: add-vector intervention vs TL: {d}");

        // Setting resid_pre of block 1 to TL's own value changes nothing.
        let tl = r.tensor("blocks.1.hook_resid_pre");
        let per = tl.data.len() / batch;
        let set: Vec<(usize, Intervention)> = (0..batch)
            .map(|b| {
                let values = Tensor::new(
                    tl.data[b * per..(b + 1) * per].to_vec(),
                    tl.shape[1..].to_vec(),
                )
                .unwrap();
                (
                    b,
                    Intervention::new(
                        "resid_pre1",
                        Op::Set {
                            values: Arc::new(values),
                        },
                    ),
                )
            })
            .collect();
        let (out, _) = m
            .run_with_interventions(
                Input::Tokens(&r.tokens),
                None,
                None,
                &set,
                &RunOptions::default(),
            )
            .unwrap();
        let d = max_abs_diff(&out.logits.unwrap(), r.tensor("logits"));
        assert!(d <= 1e-4, "{name}: set-to-TL-value intervention: {d}");
    }
}

#[test]
fn interventions_serialize_and_reject_bad_shapes() {
    let iv = Intervention::new("blocks.0.attn.hook_z", Op::Scale { factor: 0.5 })
        .at_heads(vec![1])
        .at_positions(vec![0, 2]);
    let json = serde_json::to_string(&iv).unwrap();
    assert!(json.contains("\"kind\":\"scale\""), "{json}");
    let back: Intervention = serde_json::from_str(&json).unwrap();
    assert_eq!(back, iv);

    let m = model("gpt2_tiny");
    let t = hooklens::TokenBatch::single(vec![1, 2, 3]).unwrap();
    let run = |iv: Intervention| {
        m.run_with_interventions(
            Input::Tokens(&t),
            None,
            None,
            &[(0, iv)],
            &RunOptions::default(),
        )
        .err()
        .map(|e| e.to_string())
    };
    assert!(run(Intervention::new("hook_resid_pre", Op::Zero))
        .unwrap()
        .contains("unknown hook"));
    assert!(
        run(Intervention::new("blocks.0.hook_resid_pre", Op::Zero).at_heads(vec![0]))
            .unwrap()
            .contains("no head axis")
    );
    assert!(run(Intervention::new("z0", Op::Zero).at_heads(vec![3]))
        .unwrap()
        .contains("out of range"));
    assert!(run(Intervention::new("z0", Op::Zero).at_positions(vec![3]))
        .unwrap()
        .contains("outside"));
    assert!(run(Intervention::new(
        "blocks.0.hook_resid_pre",
        Op::Add {
            vector: vec![1.0; 5]
        }
    ))
    .unwrap()
    .contains("36"));
    let wrong = Tensor::new(vec![0.0; 36], vec![1, 36]).unwrap();
    assert!(run(Intervention::new(
        "blocks.0.hook_resid_pre",
        Op::Set {
            values: Arc::new(wrong)
        }
    ))
    .unwrap()
    .contains("shape"));
    let m2 = m.run_with_interventions(
        Input::Tokens(&t),
        None,
        None,
        &[(1, Intervention::new("z0", Op::Zero))],
        &RunOptions::default(),
    );
    assert!(m2.is_err());
}
