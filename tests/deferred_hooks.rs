//! Hooks that never touch their values cost the pass nothing: a hook's values are computed
//! only when it reads or writes them, so do-nothing hooks at every point leave the fused
//! kernels in place and the logits bitwise equal to a plain pass; a hook that does touch
//! its values gets the same numbers whatever else is registered; reading hooks see exactly
//! what the cache records. Checked on a GPT-2 (LayerNorm, GELU) and a Llama (RMSNorm,
//! gated MLP, rotary, grouped keys) fixture, at batch and sequence sizes off the tiles.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;

use common::fixtures;
use hooklens::{
    HookPoint, HookSelector, Hooks, Model, NamesFilter, Output, RunOptions, Tensor, TokenBatch,
};

const FIXTURES: [&str; 2] = ["gpt2_small4", "llama_gqa"];

fn load(name: &str) -> Model {
    Model::load(&fixtures().join(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// 3 rows of 37 ids spread over the vocabulary.
fn tokens(model: &Model) -> TokenBatch {
    let vocab = model.config().d_vocab;
    let rows: Vec<Vec<u32>> = (0..3)
        .map(|b| {
            (0..37)
                .map(|i| ((5 + 11 * b + 29 * i) % vocab) as u32)
                .collect()
        })
        .collect();
    TokenBatch::from_rows(&rows).unwrap()
}

fn logits(out: Output) -> Vec<f32> {
    out.logits.expect("logits").data
}

fn plain(model: &Model, toks: &TokenBatch) -> Vec<f32> {
    logits(model.forward(toks, &RunOptions::default()).unwrap())
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Panics with the count of differing entries and the largest difference unless `a` and
/// `b` hold the same bits.
fn assert_same_bits(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let differing: Vec<f32> = (a.iter().zip(b))
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .map(|(x, y)| (x - y).abs())
        .collect();
    let largest = differing.iter().cloned().fold(0.0f32, f32::max);
    assert!(
        differing.is_empty(),
        "{what}: {} of {} values differ, by up to {largest:e}",
        differing.len(),
        a.len()
    );
}

/// The default hook points at layer 1 whose values a fused kernel otherwise never writes:
/// the norm scale and normalized value, scores, pattern, the MLP pre-activation (and the
/// gated MLP's linear half), the MLP and attention outputs.
fn deferred_points(model: &Model) -> Vec<HookPoint> {
    model
        .hook_points(false)
        .into_iter()
        .filter(|p| p.layer == Some(1))
        .filter(|p| {
            let name = p.name();
            [
                "scale",
                "normalized",
                "attn_scores",
                "pattern",
                ".hook_pre",
                "_out",
            ]
            .iter()
            .any(|part| name.contains(part))
        })
        .collect()
}

#[test]
fn do_nothing_hooks_at_every_point_leave_the_logits_bitwise_equal_to_a_plain_pass() {
    for name in FIXTURES {
        let model = load(name);
        let toks = tokens(&model);
        let calls = RefCell::new(0usize);
        let mut hooks = Hooks::new();
        for point in model.hook_points(false) {
            hooks.add(point, |_, _| {
                *calls.borrow_mut() += 1;
                Ok(())
            });
        }
        let hooked = logits(
            model
                .run_with_hooks(&toks, &mut hooks, &RunOptions::default())
                .unwrap(),
        );
        drop(hooks);
        assert_eq!(*calls.borrow(), model.hook_points(false).len(), "{name}");
        assert_same_bits(&hooked, &plain(&model, &toks), name);
    }
}

/// Logits with one hook at `edited` that scales its values by 0.75, plus do-nothing hooks
/// at every other default point when `crowd`.
fn edited_logits(model: &Model, toks: &TokenBatch, edited: HookPoint, crowd: bool) -> Vec<f32> {
    let mut hooks = Hooks::new();
    if crowd {
        for point in model.hook_points(false) {
            hooks.add(point, |_, _| Ok(()));
        }
    }
    hooks.add(edited, |act, _| {
        act.data_mut().iter_mut().for_each(|v| *v *= 0.75);
        Ok(())
    });
    logits(
        model
            .run_with_hooks(toks, &mut hooks, &RunOptions::default())
            .unwrap(),
    )
}

#[test]
fn an_editing_hook_gives_the_same_logits_alone_or_among_do_nothing_hooks() {
    for name in FIXTURES {
        let model = load(name);
        let toks = tokens(&model);
        let clean = bits(&plain(&model, &toks));
        let points = deferred_points(&model);
        assert!(points.len() >= 7, "{name}: {points:?}");
        for point in points {
            let alone = edited_logits(&model, &toks, point, false);
            let crowded = edited_logits(&model, &toks, point, true);
            assert_ne!(
                bits(&alone),
                clean,
                "{name} {}: the edit had no effect",
                point.name()
            );
            assert_same_bits(&alone, &crowded, &format!("{name} {}", point.name()));
        }
    }
}

#[test]
fn a_hook_that_edits_only_one_layer_by_name_edits_that_layer_only() {
    let model = load("llama_gqa");
    let toks = tokens(&model);
    let target = "blocks.1.attn.hook_pattern";
    let mut hooks = Hooks::new();
    hooks.add(
        HookSelector::predicate(|n| n.ends_with("hook_pattern")),
        |act, ctx| {
            if ctx.name == target {
                act.data_mut().iter_mut().for_each(|v| *v *= 0.5);
            }
            Ok(())
        },
    );
    let by_name = logits(
        model
            .run_with_hooks(&toks, &mut hooks, &RunOptions::default())
            .unwrap(),
    );
    drop(hooks);
    let point = model
        .hook_points(false)
        .into_iter()
        .find(|p| p.name() == target);
    let mut only = Hooks::new();
    only.add(point.unwrap(), |act, _| {
        act.data_mut().iter_mut().for_each(|v| *v *= 0.5);
        Ok(())
    });
    let direct = logits(
        model
            .run_with_hooks(&toks, &mut only, &RunOptions::default())
            .unwrap(),
    );
    assert_same_bits(&by_name, &direct, "by name");
    assert_ne!(bits(&direct), bits(&plain(&model, &toks)));
}

#[test]
fn set_materialises_a_deferred_value_before_writing_it() {
    let model = load("gpt2_small4");
    let toks = tokens(&model);
    let point = deferred_points(&model)
        .into_iter()
        .find(|p| p.name().ends_with("hook_attn_out"))
        .unwrap();
    // `set` with the values a data_mut edit would produce: both give the same logits.
    let mut hooks = Hooks::new();
    hooks.add(point, |act, _| {
        let halved: Vec<f32> = act.data().iter().map(|v| v * 0.75).collect();
        let shape = act.shape().to_vec();
        act.set(&halved, &shape)
    });
    let via_set = logits(
        model
            .run_with_hooks(&toks, &mut hooks, &RunOptions::default())
            .unwrap(),
    );
    let direct = edited_logits(&model, &toks, point, false);
    assert_same_bits(&via_set, &direct, "set");
    // A wrong shape is an error before anything is computed or written.
    let mut bad = Hooks::new();
    bad.add(point, |act, _| act.set(&[1.0, 2.0], &[2]));
    let err = model
        .run_with_hooks(&toks, &mut bad, &RunOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
}

#[test]
fn reading_hooks_see_exactly_what_the_cache_records() {
    for name in FIXTURES {
        let model = load(name);
        let toks = tokens(&model);
        let seen: RefCell<BTreeMap<String, Tensor>> = RefCell::default();
        let mut hooks = Hooks::new();
        for point in model.hook_points(false) {
            hooks.add(point, |act, ctx| {
                let t = Tensor::new(act.data().to_vec(), act.shape().to_vec())?;
                seen.borrow_mut().insert(ctx.name.to_string(), t);
                Ok(())
            });
        }
        let opts = RunOptions::default();
        let read = logits(model.run_with_hooks(&toks, &mut hooks, &opts).unwrap());
        drop(hooks);
        let (out, cache) = model
            .run_with_cache(&toks, &NamesFilter::All, &opts)
            .unwrap();
        let read_hooks = format!("{name}: hooks vs cache");
        let seen = seen.into_inner();
        assert_eq!(seen.len(), model.hook_points(false).len(), "{name}");
        for (hook, values) in &seen {
            let cached = cache
                .get(hook.as_str())
                .unwrap_or_else(|e| panic!("{name}: {hook}: {e}"));
            assert_eq!(cached.shape, values.shape, "{name} {hook}");
            eprintln!(
                "{hook} {:?} {}",
                values.shape,
                cached
                    .data
                    .iter()
                    .zip(&values.data)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count()
            );
            assert_same_bits(&cached.data, &values.data, &format!("{name} {hook}"));
        }
        assert_same_bits(&read, &logits(out), &read_hooks);
    }
}
