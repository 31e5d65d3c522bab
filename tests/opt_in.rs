//! TL's opt-in hook points (`hook_attn_in`, `hook_q_input` / `hook_k_input` / `hook_v_input`,
//! `hook_mlp_in`) against TransformerLens 2.18 with `use_attn_in` / `use_split_qkv_input` /
//! `use_hook_mlp_in`, and edits at them against TL's runs with the same edits
//! (`scripts/golden/make_opt_in_refs.py` writes `tests/fixtures/opt_in/`).

mod common;

use common::{fixtures, load_reference_file, logits_with_interventions, max_abs_diff, Reference};
use hooklens::hooks::{Intervention, Op};
use hooklens::{HookLensError, Hooks, Input, Model, NamesFilter, RunOptions, Tensor};

const TOL: f32 = 1e-4;

/// The fixture's model and its opt-in references.
fn load(name: &str) -> (Model, Reference) {
    let model = Model::load(&fixtures().join(name)).unwrap();
    let file = fixtures()
        .join("opt_in")
        .join(format!("{name}.safetensors"));
    (model, load_reference_file(&file))
}

/// The hook names TL cached under `prefix.` (e.g. `split.blocks.0.hook_q_input`).
fn tl_names(reference: &Reference, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = reference
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix(&format!("{prefix}.")))
        .filter(|k| k.contains("hook_"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// Caching TL's names gives TL's values (ln1 per head with TL's shapes) and TL's logits.
fn check_all_hooks(fixture: &str, prefix: &str) {
    let (model, reference) = load(fixture);
    let names = tl_names(&reference, prefix);
    assert!(names
        .iter()
        .any(|n| n.ends_with("_input") || n.ends_with("attn_in")));
    let filter = NamesFilter::from(names.clone());
    let (out, cache) = model
        .run_with_cache(&reference.tokens, &filter, &RunOptions::default())
        .unwrap();
    let mut ours = cache.names();
    ours.sort();
    assert_eq!(ours, names, "{fixture}/{prefix}: cached names");
    for name in &names {
        let want = reference.tensor(&format!("{prefix}.{name}"));
        let got = cache.get(name.as_str()).unwrap();
        assert_eq!(got.shape, want.shape, "{fixture}/{prefix}: {name} shape");
        let d = max_abs_diff(got, want);
        assert!(
            d <= TOL,
            "{fixture}/{prefix}: {name} differs from TL by {d}"
        );
    }
    let d = max_abs_diff(
        &out.logits.unwrap(),
        reference.tensor(&format!("{prefix}.logits")),
    );
    assert!(d <= TOL, "{fixture}/{prefix}: logits differ by {d}");
}

/// A hook adding `delta` to one head (or, for `None`, every row) of a per-head input.
fn add_delta(
    delta: &Tensor,
    head: Option<usize>,
) -> impl FnMut(&mut hooklens::ActivationMut<'_>, &hooklens::HookContext<'_>) -> hooklens::Result<()> + '_
{
    move |act, _| {
        let (b, p) = (act.shape()[0], act.shape()[1]);
        for bi in 0..b {
            for pi in 0..p {
                let index: Vec<usize> = match head {
                    Some(h) => vec![bi, pi, h],
                    None => vec![bi, pi],
                };
                for (v, d) in act.slice_mut(&index)?.iter_mut().zip(&delta.data) {
                    *v += d;
                }
            }
        }
        Ok(())
    }
}

/// Runs with one edit hook (and a cache of `cached`) and compares the logits with TL's.
fn check_edit(
    fixture: &str,
    hook: &str,
    head: Option<usize>,
    key: &str,
) -> hooklens::ActivationCache {
    let (model, reference) = load(fixture);
    let delta = reference.tensor("delta").clone();
    let mut hooks = Hooks::new();
    hooks.add(hook, add_delta(&delta, head));
    let filter = NamesFilter::from(vec!["blocks.0.attn.hook_q"]);
    let (out, cache) = model
        .run(
            Input::Tokens(&reference.tokens),
            Some(&mut hooks),
            Some(&filter),
            &RunOptions::default(),
        )
        .unwrap();
    let want = reference.tensor(&format!("{key}.logits"));
    let d = max_abs_diff(&out.logits.unwrap(), want);
    assert!(d <= TOL, "{fixture}: {hook} edit differs from TL's by {d}");
    let moved = max_abs_diff(want, reference.tensor("split.logits"));
    assert!(
        moved > 1e-3,
        "{fixture}: TL's {key} does not change the logits"
    );
    cache.unwrap()
}

/// The edited head's queries change, and only that head's.
fn check_q_input_edit_is_per_head(fixture: &str) {
    let (_, reference) = load(fixture);
    let cache = check_edit(fixture, "blocks.0.hook_q_input", Some(1), "edit_q_input");
    let q = cache.get("blocks.0.attn.hook_q").unwrap();
    let want = reference.tensor("edit_q_input.blocks.0.attn.hook_q");
    let d = max_abs_diff(q, want);
    assert!(d <= TOL, "{fixture}: edited hook_q differs from TL by {d}");
    let clean = reference.tensor("split.blocks.0.attn.hook_q");
    let d_head = q.shape[3];
    let heads = q.shape[2];
    let mut moved = vec![0.0f32; heads];
    for (i, (a, b)) in q.data.iter().zip(&clean.data).enumerate() {
        let h = (i / d_head) % heads;
        moved[h] = moved[h].max((a - b).abs());
    }
    for (h, m) in moved.iter().enumerate() {
        if h == 1 {
            assert!(*m > 1e-3, "{fixture}: head 1 did not change");
        } else {
            assert!(*m <= TOL, "{fixture}: head {h} changed by {m}");
        }
    }
}

#[test]
fn gpt2_split_inputs_match_tl() {
    check_all_hooks("gpt2_tiny", "split");
}

#[test]
fn gpt2_attn_in_matches_tl() {
    check_all_hooks("gpt2_tiny", "attn_in");
}

#[test]
fn llama_split_inputs_match_tl() {
    check_all_hooks("llama_gqa", "split");
}

#[test]
fn q_input_edit_matches_tl() {
    check_q_input_edit_is_per_head("gpt2_tiny");
    check_q_input_edit_is_per_head("llama_gqa");
}

#[test]
fn k_input_edit_matches_tl() {
    for f in ["gpt2_tiny", "llama_gqa"] {
        check_edit(f, "blocks.1.hook_k_input", Some(0), "edit_k_input");
    }
}

#[test]
fn mlp_in_edit_matches_tl() {
    for f in ["gpt2_tiny", "llama_gqa"] {
        check_edit(f, "blocks.0.hook_mlp_in", None, "edit_mlp_in");
    }
}

#[test]
fn attn_in_edit_matches_tl() {
    check_edit(
        "gpt2_tiny",
        "blocks.1.hook_attn_in",
        Some(2),
        "edit_attn_in",
    );
}

/// The built-in `add` op at one head of `hook_q_input` (what sweeps run) is TL's edit.
#[test]
fn q_input_intervention_matches_tl() {
    for f in ["gpt2_tiny", "llama_gqa"] {
        let (model, reference) = load(f);
        let delta = reference.tensor("delta").data.clone();
        let iv =
            Intervention::new("blocks.0.hook_q_input", Op::Add { vector: delta }).at_heads(vec![1]);
        let logits = logits_with_interventions(&model, &reference.tokens, &[iv]).unwrap();
        let d = max_abs_diff(&logits, reference.tensor("edit_q_input.logits"));
        assert!(d <= TOL, "{f}: q_input intervention differs from TL by {d}");
    }
}

/// Grouped-query models have no `hook_attn_in` (TL refuses `use_attn_in` there): a clear error.
#[test]
fn attn_in_needs_one_kv_head_per_query_head() {
    let (model, reference) = load("llama_gqa");
    let filter = NamesFilter::from(vec!["blocks.0.hook_attn_in"]);
    let err = model
        .run_with_cache(&reference.tokens, &filter, &RunOptions::default())
        .err()
        .expect("hook_attn_in on a GQA model");
    let msg = err.to_string();
    assert!(
        msg.contains("hook_q_input") && msg.contains("grouped-query"),
        "{msg}"
    );
}

/// An intervention at ln1 in a layer whose inputs are split is refused before the pass.
#[test]
fn ln1_intervention_in_a_split_layer_is_refused() {
    let (model, reference) = load("gpt2_tiny");
    let ivs = [
        Intervention::new("blocks.0.ln1.hook_normalized", Op::Zero),
        Intervention::new("blocks.0.hook_q_input", Op::Scale { factor: 2.0 }),
    ];
    let err = logits_with_interventions(&model, &reference.tokens, &ivs).expect_err("refused");
    assert!(matches!(err, HookLensError::Input { .. }), "{err:?}");
    assert!(err.to_string().contains("split per head"), "{err}");
}

/// Sweeps take the opt-in points and aliases as intervention hooks: the batched engine (which
/// forks variants at their first layer and position, and in the last block computes only the
/// metric's positions) equals one full forward per variant.
#[test]
fn sweeps_with_opt_in_points_equal_the_naive_loop() {
    use hooklens::sweep::{run_naive, run_sweep, Base, Metric, SweepOptions, Variant};
    for f in ["gpt2_tiny", "llama_gqa"] {
        let (model, reference) = load(f);
        let cfg = model.config();
        let delta = reference.tensor("delta").data.clone();
        let add = |hook: String, heads: Option<Vec<usize>>, from: usize| {
            let mut iv = Intervention::new(
                hook,
                Op::Add {
                    vector: delta.clone(),
                },
            );
            iv.heads = heads;
            iv.at_positions((from..reference.tokens.seq()).collect())
        };
        let mut variants = Vec::new();
        for layer in 0..cfg.n_layers {
            for from in [0, 3] {
                let ivs = vec![
                    add(format!("blocks.{layer}.hook_q_input"), Some(vec![1]), from),
                    add(format!("blocks.{layer}.hook_k_input"), Some(vec![0]), from),
                    add(format!("blocks.{layer}.hook_mlp_in"), None, from),
                    add(format!("blocks.{layer}.hook_in"), None, from),
                ];
                for iv in ivs {
                    variants.push(Variant {
                        base: 0,
                        interventions: vec![iv],
                    });
                }
            }
        }
        let scale_logits = Intervention::new("unembed.hook_out", Op::Scale { factor: 0.5 });
        variants.push(Variant {
            base: 0,
            interventions: vec![scale_logits],
        });
        let base = Base {
            tokens: reference.tokens.row(0).to_vec(),
            interventions: vec![],
        };
        let metric = Metric::LogitDiff {
            target: 3,
            other: 5,
        };
        let opts = SweepOptions::default();
        let fast = run_sweep(
            &model,
            std::slice::from_ref(&base),
            &variants,
            &metric,
            &opts,
        )
        .unwrap();
        let naive = run_naive(&model, &[base], &variants, &metric, &opts).unwrap();
        assert_eq!(fast.values.len(), variants.len());
        for (i, (a, b)) in fast.values.iter().zip(&naive.values).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4,
                "{f}: variant {i} ({:?}): {a} vs {b}",
                variants[i]
            );
        }
        let clean = fast.base_values[0];
        let moved = fast
            .values
            .iter()
            .filter(|v| (*v - clean).abs() > 1e-3)
            .count();
        assert!(
            moved > variants.len() / 2,
            "{f}: only {moved} variants moved the metric"
        );
    }
}

/// TL's `get_act_name` short forms name the opt-in points (`("q_input", 0)` is
/// `blocks.0.hook_q_input`, as TL 2.18 gives), and the compact forms too.
#[test]
fn short_forms_name_opt_in_points() {
    use hooklens::HookSelector;
    let (model, _) = load("gpt2_tiny");
    let cfg = model.config();
    let cases: Vec<(HookSelector, &str)> = vec![
        (("q_input", 0).into(), "blocks.0.hook_q_input"),
        (("k_input", -1).into(), "blocks.1.hook_k_input"),
        (("v_input", 1).into(), "blocks.1.hook_v_input"),
        (("attn_in", 1).into(), "blocks.1.hook_attn_in"),
        (("mlp_in", 0).into(), "blocks.0.hook_mlp_in"),
        ("q_input1".into(), "blocks.1.hook_q_input"),
        (("unembed",).into(), "hook_unembed"),
    ];
    for (selector, want) in cases {
        let label = format!("{selector:?}");
        let got = selector
            .resolve(cfg)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(got.len(), 1, "{label}");
        assert_eq!(got[0].name(), want, "{label}");
    }
}

/// In a layer whose inputs are split, a hook at `ln1.hook_normalized` fires once per q / k / v
/// input with TL's per-head shapes, and its edit gives TL's logits (TL fires it three times
/// too).
#[test]
fn ln1_hook_in_a_split_layer_matches_tl() {
    for f in ["gpt2_tiny", "llama_gqa"] {
        let (model, reference) = load(f);
        let cfg = model.config();
        let delta = reference.tensor("delta").clone();
        let shapes = std::cell::RefCell::new(Vec::new());
        let mut hooks = Hooks::new();
        hooks.add("blocks.1.hook_v_input", |_, _| Ok(()));
        hooks.add("blocks.1.ln1.hook_normalized", |act, _| {
            shapes.borrow_mut().push(act.shape().to_vec());
            for row in act.data_mut().chunks_exact_mut(delta.data.len()) {
                row.iter_mut().zip(&delta.data).for_each(|(v, d)| *v += d);
            }
            Ok(())
        });
        let out = model
            .run_with_hooks(&reference.tokens, &mut hooks, &RunOptions::default())
            .unwrap();
        drop(hooks);
        let (b, p) = (reference.tokens.batch(), reference.tokens.seq());
        let heads = |h| vec![b, p, h, cfg.d_model];
        let want = vec![
            heads(cfg.n_heads),
            heads(cfg.n_kv_heads),
            heads(cfg.n_kv_heads),
        ];
        assert_eq!(shapes.into_inner(), want, "{f}");
        let d = max_abs_diff(
            &out.logits.unwrap(),
            reference.tensor("edit_ln1_split.logits"),
        );
        assert!(
            d <= TOL,
            "{f}: ln1 edit with split inputs differs from TL by {d}"
        );
    }
}

/// With `hook_attn_in` and the split inputs both watched, the q/k/v inputs copy
/// `hook_attn_in`, so its edit reaches them: the result is TL's `use_attn_in` run with the
/// same edit (TL 2.18 with both flags would copy `hook_resid_pre` and drop the edit).
#[test]
fn attn_in_feeds_the_split_inputs() {
    let (model, reference) = load("gpt2_tiny");
    let delta = reference.tensor("delta").clone();
    let mut hooks = Hooks::new();
    hooks.add("blocks.1.hook_attn_in", add_delta(&delta, Some(2)));
    let seen = std::cell::Cell::new(0.0f32);
    hooks.add("blocks.1.hook_q_input", |act, _| {
        let clean = reference.tensor("attn_in.blocks.1.hook_attn_in");
        let ours = Tensor::new(act.data().to_vec(), act.shape().to_vec())?;
        seen.set(max_abs_diff(&ours, clean));
        Ok(())
    });
    let out = model
        .run_with_hooks(&reference.tokens, &mut hooks, &RunOptions::default())
        .unwrap();
    drop(hooks);
    assert!(
        seen.get() > 1e-3,
        "hook_q_input did not see the attn_in edit"
    );
    let d = max_abs_diff(
        &out.logits.unwrap(),
        reference.tensor("edit_attn_in.logits"),
    );
    assert!(
        d <= TOL,
        "attn_in edit with split inputs watched differs by {d}"
    );
}
