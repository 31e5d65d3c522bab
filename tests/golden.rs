//! Every hook point, logits, loss and hook semantics against TransformerLens 2.x references
//! computed on the same random-weight checkpoints (`scripts/golden/make_fixtures.py`).

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;

use common::{fixtures, load_reference, max_abs_diff, Reference};
use hooklens::{HookSelector, Hooks, Input, Model, NamesFilter, ReturnType, RunOptions, Tensor};

/// The project's reference tolerance for f32 (README: values match TL within 1e-4).
const TOL: f32 = 1e-4;

/// Loads a fixture model (a checkpoint directory, or a file inside one) and the TL reference
/// stored in its directory.
fn load(name: &str) -> (Model, Reference) {
    let path = fixtures().join(name);
    let model = Model::load(&path).unwrap_or_else(|e| panic!("loading {name}: {e}"));
    let dir = if path.is_file() {
        path.parent().unwrap().to_path_buf()
    } else {
        path
    };
    (model, load_reference(&dir))
}

fn logits_of(out: hooklens::Output) -> Tensor {
    out.logits.expect("logits")
}

/// The points TL's references were recorded at: the default set plus `attn.hook_result`
/// (`use_attn_result=True`). The other opt-in points need TL flags that change how ln1 runs;
/// `tests/opt_in.rs` checks them against TL runs with those flags.
fn tl_reference_points(model: &Model) -> Vec<HookSelector> {
    model
        .hook_points(true)
        .into_iter()
        .filter(|p| !p.kind.is_opt_in() || p.kind == hooklens::HookKind::Result)
        .map(HookSelector::from)
        .collect()
}

/// Every hook point's value within TOL of TL, with the same set of names and shapes.
fn check_every_hook(name: &str) {
    let (model, reference) = load(name);
    let filter = NamesFilter::Names(tl_reference_points(&model));
    let (out, cache) = model
        .run_with_cache(&reference.tokens, &filter, &RunOptions::default())
        .unwrap();
    let ours: Vec<String> = cache.names();
    let mut theirs: Vec<&String> = reference
        .tensors
        .keys()
        .filter(|k| k.contains("hook_"))
        .collect();
    theirs.sort();
    let mut ours_sorted: Vec<&String> = ours.iter().collect();
    ours_sorted.sort();
    assert_eq!(
        ours_sorted, theirs,
        "{name}: hook point sets differ from TL's"
    );

    let mut by_family: BTreeMap<String, f32> = BTreeMap::new();
    for (point, tensor) in cache.iter() {
        let full = point.name();
        let diff = max_abs_diff(tensor, reference.tensor(&full));
        let family = point.kind.suffix().to_string();
        let e = by_family.entry(family).or_insert(0.0);
        *e = e.max(diff);
        assert!(diff <= TOL, "{name}: {full} differs from TL by {diff}");
    }
    let logits = logits_of(out);
    let d_tl = max_abs_diff(&logits, reference.tensor("logits"));
    let d_hf = max_abs_diff(&logits, reference.tensor("hf_logits"));
    eprintln!("{name}: max |hooklens - TL| per hook family:");
    for (family, diff) in &by_family {
        eprintln!("  {family:<24} {diff:.3e}");
    }
    eprintln!(
        "  {:<24} {d_tl:.3e}\n  {:<24} {d_hf:.3e}",
        "logits (TL)", "logits (HF)"
    );
    assert!(
        d_tl <= TOL && d_hf <= TOL,
        "{name}: logits differ: TL {d_tl}, HF {d_hf}"
    );
}

/// Loss and per-token loss against TL's `return_type="loss"`.
fn check_loss(name: &str) {
    let (model, reference) = load(name);
    let opts = RunOptions {
        return_type: ReturnType::Both,
        loss_per_token: true,
        ..RunOptions::default()
    };
    let out = model.forward(&reference.tokens, &opts).unwrap();
    let loss = out.loss.unwrap();
    let want = reference.tensor("loss").data[0];
    assert!(
        (loss - want).abs() <= TOL,
        "{name}: loss {loss} vs TL {want}"
    );
    let per_token = out.loss_per_token.unwrap();
    let d = max_abs_diff(&per_token, reference.tensor("loss_per_token"));
    assert!(d <= TOL, "{name}: loss_per_token differs by {d}");
    // Logits returned with the loss are the same logits.
    assert!(max_abs_diff(&out.logits.unwrap(), reference.tensor("logits")) <= TOL);
}

/// Only the last position's logits: the pass then runs the last block's queries, attention,
/// MLP and final norm at the last position only. The logits equal TL's at that position,
/// and a hook watching the last block (which turns the shortcut off, so it sees every
/// position) changes neither its shape nor the numbers.
fn check_last_logits(name: &str) {
    let (model, reference) = load(name);
    let opts = RunOptions {
        logits_at: hooklens::LogitPositions::Last,
        ..RunOptions::default()
    };
    let tl = reference.tensor("logits"); // [batch, pos, vocab]
    let (batch, seq, vocab) = (tl.shape[0], tl.shape[1], tl.shape[2]);
    let want = Tensor {
        data: (0..batch)
            .flat_map(|b| tl.data[(b * seq + seq - 1) * vocab..][..vocab].to_vec())
            .collect(),
        shape: vec![batch, 1, vocab],
    };
    let last = logits_of(model.forward(&reference.tokens, &opts).unwrap());
    assert_eq!(last.shape, want.shape);
    let d = max_abs_diff(&last, &want);
    assert!(
        d <= TOL,
        "{name}: last-position logits differ from TL by {d}"
    );

    let n_layers = model.config().n_layers;
    let seen = RefCell::new(Vec::new());
    let mut hooks = Hooks::new();
    hooks.add(format!("blocks.{}.hook_mlp_out", n_layers - 1), |act, _| {
        seen.borrow_mut().push(act.shape().to_vec());
        Ok(())
    });
    let watched = logits_of(
        model
            .run_with_hooks(&reference.tokens, &mut hooks, &opts)
            .unwrap(),
    );
    let d = max_abs_diff(&watched, &last);
    assert!(
        d <= 1e-5,
        "{name}: watching the last block moved the logits by {d}"
    );
    let d_model = model.config().d_model;
    assert_eq!(*seen.borrow(), [vec![batch, seq, d_model]]);
}

/// Zeroing one head in `hook_z` equals TL's run with the same hook.
fn check_zero_head(name: &str) {
    let (model, reference) = load(name);
    let layer: i64 = reference.meta("zero_head_layer").parse().unwrap();
    let head: usize = reference.meta("zero_head_head").parse().unwrap();
    let mut hooks = Hooks::new();
    hooks.add(("z", layer), move |act, ctx| {
        assert_eq!(ctx.name, format!("blocks.{layer}.attn.hook_z"));
        let (b, p) = (act.shape()[0], act.shape()[1]);
        for bi in 0..b {
            for pi in 0..p {
                act.slice_mut(&[bi, pi, head])?.fill(0.0);
            }
        }
        Ok(())
    });
    let out = model
        .run_with_hooks(&reference.tokens, &mut hooks, &RunOptions::default())
        .unwrap();
    let d = max_abs_diff(&logits_of(out), reference.tensor("zero_head_logits"));
    assert!(d <= TOL, "{name}: zero-head logits differ from TL by {d}");
    // And the intervention did something measurable.
    let clean = max_abs_diff(
        reference.tensor("logits"),
        reference.tensor("zero_head_logits"),
    );
    assert!(
        clean > 1e-2,
        "{name}: the zero-head fixture does not differ from clean"
    );
}

/// Adding 0.5 to `blocks.1.hook_resid_pre` at position 2 equals TL's run with that hook.
fn check_patch_resid(name: &str) {
    let (model, reference) = load(name);
    let pos: usize = reference.meta("patch_resid_pos").parse().unwrap();
    let delta: f32 = reference.meta("patch_resid_delta").parse().unwrap();
    let mut hooks = Hooks::new();
    hooks.add("blocks.1.hook_resid_pre", move |act, _| {
        for b in 0..act.shape()[0] {
            for v in act.slice_mut(&[b, pos])? {
                *v += delta;
            }
        }
        Ok(())
    });
    let out = model
        .run_with_hooks(&reference.tokens, &mut hooks, &RunOptions::default())
        .unwrap();
    let d = max_abs_diff(&logits_of(out), reference.tensor("patch_resid_logits"));
    assert!(d <= TOL, "{name}: patched logits differ from TL by {d}");
}

/// `stop_at_layer` returns TL's residual; `start_at_layer` from TL's residual gives TL's logits.
fn check_start_stop(name: &str) {
    let (model, reference) = load(name);
    let stop = RunOptions {
        stop_at_layer: Some(1),
        ..RunOptions::default()
    };
    let out = model.forward(&reference.tokens, &stop).unwrap();
    let resid = out.residual.expect("residual");
    let d = max_abs_diff(&resid, reference.tensor("stop1_resid"));
    assert!(d <= TOL, "{name}: stop_at_layer=1 differs by {d}");

    let start = RunOptions {
        start_at_layer: Some(1),
        return_type: ReturnType::Both,
        ..RunOptions::default()
    };
    let input = Input::Residual {
        resid: reference.tensor("blocks.1.hook_resid_pre"),
        tokens: Some(&reference.tokens),
    };
    let out = model.forward(input, &start).unwrap();
    let d = max_abs_diff(out.logits.as_ref().unwrap(), reference.tensor("logits"));
    assert!(d <= TOL, "{name}: start_at_layer=1 logits differ by {d}");
    let loss_diff = (out.loss.unwrap() - reference.tensor("loss").data[0]).abs();
    assert!(
        loss_diff <= TOL,
        "{name}: start_at_layer loss differs by {loss_diff}"
    );
}

/// Hooks fire in TL's order (recorded by the generator with a hook on every point).
fn check_firing_order(name: &str) {
    let (model, reference) = load(name);
    let tl_order: Vec<String> = serde_json::from_str(reference.meta("hook_order")).unwrap();
    let fired = RefCell::new(Vec::new());
    let mut hooks = Hooks::new();
    for point in tl_reference_points(&model) {
        hooks.add(point, |_, ctx| {
            fired.borrow_mut().push(ctx.name.to_string());
            Ok(())
        });
    }
    model
        .run_with_hooks(&reference.tokens, &mut hooks, &RunOptions::default())
        .unwrap();
    drop(hooks);
    assert_eq!(
        fired.into_inner(),
        tl_order,
        "{name}: firing order differs from TL"
    );
    // The listing without opt-in points is TL's default cache.
    let listed: Vec<String> = model.hook_points(false).iter().map(|p| p.name()).collect();
    let without_result: Vec<String> = tl_order
        .into_iter()
        .filter(|n| !n.ends_with("hook_result"))
        .collect();
    assert_eq!(listed, without_result);
}

/// Short forms index the cache like TL's `cache[name, layer]`.
fn check_short_forms(name: &str) {
    let (model, reference) = load(name);
    let (_, cache) = model
        .run_with_cache(&reference.tokens, &NamesFilter::All, &RunOptions::default())
        .unwrap();
    let last = model.config().n_layers - 1;
    let pairs: Vec<(HookSelector, String)> = vec![
        (("z", 0).into(), "blocks.0.attn.hook_z".into()),
        (("z", -1).into(), format!("blocks.{last}.attn.hook_z")),
        (("attn", 0).into(), "blocks.0.attn.hook_pattern".into()),
        (
            ("pattern", 0, "attn").into(),
            "blocks.0.attn.hook_pattern".into(),
        ),
        (
            ("attn_logits", 1).into(),
            "blocks.1.attn.hook_attn_scores".into(),
        ),
        (("key", 1).into(), "blocks.1.attn.hook_k".into()),
        (("resid_pre", 1).into(), "blocks.1.hook_resid_pre".into()),
        (("scale", 1, "ln1").into(), "blocks.1.ln1.hook_scale".into()),
        (
            ("normalized", 0, "ln2").into(),
            "blocks.0.ln2.hook_normalized".into(),
        ),
        (("mlp_post", 0).into(), "blocks.0.mlp.hook_post".into()),
        (("scale",).into(), "ln_final.hook_scale".into()),
        (("embed",).into(), "hook_embed".into()),
        ("z1".into(), "blocks.1.attn.hook_z".into()),
        ("resid_post0".into(), "blocks.0.hook_resid_post".into()),
    ];
    for (selector, full) in pairs {
        let label = format!("{selector:?}");
        let got = cache
            .get(selector)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let want = reference.tensor(&full);
        assert!(max_abs_diff(got, want) <= TOL, "{label} is not {full}");
    }
    // TL maps ("scale", 1) to a name that does not exist; hooklens says which one was meant.
    let err = cache.get(("scale", 1)).unwrap_err().to_string();
    assert!(err.contains("(\"scale\", 1, \"ln1\")"), "{err}");
    let err = cache.get(("z", 7)).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
}

/// The fused kernels (activation in the MLP's first product, residual adds in the output
/// products) run only where the value in between is unwatched; watching it takes the stepped
/// path. Both must give the same logits, also with an edit upstream of a fused activation
/// (a gated MLP's `hook_pre` feeds the fused SiLU-gate product). The plain pass itself is
/// checked against TL by `loss_matches_tl`.
fn check_fused_and_stepped_paths_agree(name: &str) {
    let (model, reference) = load(name);
    let halve = |act: &mut hooklens::ActivationMut<'_>, _: &hooklens::HookContext<'_>| {
        act.data_mut().iter_mut().for_each(|v| *v *= 0.5);
        Ok(())
    };
    let mut fused = Hooks::new();
    fused.add("blocks.0.mlp.hook_pre", halve);
    let fused_logits = logits_of(
        model
            .run_with_hooks(&reference.tokens, &mut fused, &RunOptions::default())
            .unwrap(),
    );
    let mut stepped = Hooks::new();
    stepped.add("blocks.0.mlp.hook_pre", halve);
    let watched = |n: &str| {
        n.ends_with("mlp.hook_pre_linear")
            || n.ends_with("hook_attn_out")
            || n.ends_with("hook_mlp_out")
    };
    stepped.add(HookSelector::predicate(watched), |_, _| Ok(()));
    let stepped_logits = logits_of(
        model
            .run_with_hooks(&reference.tokens, &mut stepped, &RunOptions::default())
            .unwrap(),
    );
    let d = max_abs_diff(&fused_logits, &stepped_logits);
    assert!(d <= 1e-5, "{name}: fused and stepped paths differ by {d}");
    let edit = max_abs_diff(&fused_logits, reference.tensor("logits"));
    assert!(
        edit > 1e-3,
        "{name}: halving hook_pre changed the logits by {edit} only"
    );
}

macro_rules! golden_tests {
    ($($module:ident => $fixture:literal),* $(,)?) => {$(
        mod $module {
            #[test] fn every_hook_matches_tl() { super::check_every_hook($fixture) }
            #[test] fn loss_matches_tl() { super::check_loss($fixture) }
            #[test] fn last_logits_match_tl() { super::check_last_logits($fixture) }
            #[test] fn zero_head_matches_tl() { super::check_zero_head($fixture) }
            #[test] fn patch_resid_matches_tl() { super::check_patch_resid($fixture) }
            #[test] fn start_and_stop_match_tl() { super::check_start_stop($fixture) }
            #[test] fn hooks_fire_in_tl_order() { super::check_firing_order($fixture) }
            #[test] fn short_forms_index_the_cache() { super::check_short_forms($fixture) }
            #[test] fn fused_and_stepped_paths_agree() {
                super::check_fused_and_stepped_paths_agree($fixture)
            }
        }
    )*};
}

golden_tests! {
    gpt2_tiny => "gpt2_tiny",
    gpt2_small4 => "gpt2_small4",
    gpt2_tiny_f16 => "gpt2_tiny_f16",
    llama_gqa => "llama_gqa",
    llama_odd => "llama_odd",
    // The same weights as llama_gqa, converted to GGUF with llama.cpp's q/k permutation
    // (scripts/golden/make_llama_gguf.py): checks the GGUF config, names and un-permutation.
    llama_gqa_gguf => "llama_gqa/model.gguf",
}
