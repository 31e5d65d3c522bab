//! TransformerLens 4.x hook names as aliases of the TL 2.x slots (issue 22). The expected
//! correspondences are the table measured against TL 4.3's bridge (written out here by hand,
//! not read from the code under test); values are compared with the TL 2.18 references.

mod common;

use std::cell::Cell;

use common::{
    fixtures, load_reference, logits_with_interventions, max_abs_diff, read_tensors, temp_dir,
    Reference,
};
use hooklens::{HookLensError, HookSelector, Hooks, Model, NamesFilter, RunOptions};

const TOL: f32 = 1e-4;

fn load(name: &str) -> (Model, Reference) {
    let dir = fixtures().join(name);
    let model = Model::load(&dir).unwrap_or_else(|e| panic!("loading {name}: {e}"));
    (model, load_reference(&dir))
}

/// The one point `name` resolves to in `model`, by its TL 2.x name.
fn resolved(model: &Model, name: &str) -> String {
    let points = HookSelector::from(name)
        .resolve(model.config())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(points.len(), 1, "{name}");
    points[0].name()
}

/// Each alias names the TL 2.x point, and caching by the alias gives TL's value of that point.
fn check_row(fixture: &str, tl2: &str, aliases: &[&str]) {
    let (model, reference) = load(fixture);
    let filter = NamesFilter::from(aliases.to_vec());
    let (_, cache) = model
        .run_with_cache(&reference.tokens, &filter, &RunOptions::default())
        .unwrap();
    for alias in aliases {
        assert_eq!(resolved(&model, alias), tl2, "{fixture}: {alias}");
        let got = cache.get(*alias).unwrap();
        let want = reference.tensor(tl2);
        let d = max_abs_diff(got, want);
        assert!(
            d <= TOL,
            "{fixture}: {alias} differs from TL's {tl2} by {d}"
        );
        // Read back by the TL 2.x name too: the same tensor.
        assert_eq!(cache.get(tl2).unwrap().data, got.data, "{fixture}: {tl2}");
    }
    assert_eq!(cache.len(), 1, "{fixture}: {aliases:?} name one slot");
}

/// [`check_row`] on the GPT-2 and the Llama fixture.
fn check_both(tl2: &str, aliases: &[&str]) {
    for fixture in ["gpt2_tiny", "llama_gqa"] {
        check_row(fixture, tl2, aliases);
    }
}

/// A name that must not resolve in this architecture.
fn check_absent(fixture: &str, name: &str) {
    let (model, _) = load(fixture);
    match HookSelector::from(name).resolve(model.config()) {
        Err(HookLensError::UnknownHook { suggestions, .. }) => assert!(!suggestions.is_empty()),
        other => panic!("{fixture}: {name} resolved: {other:?}"),
    }
}

macro_rules! rows {
    ($($test:ident => $body:block)*) => {$(
        #[test]
        fn $test() $body
    )*};
}

rows! {
    embed => {
        check_both("hook_embed", &["embed.hook_out"]);
    }
    pos_embed => {
        check_row("gpt2_tiny", "hook_pos_embed", &["pos_embed.hook_out"]);
        check_absent("llama_gqa", "pos_embed.hook_out");
    }
    resid_pre => {
        check_both("blocks.1.hook_resid_pre", &["blocks.1.hook_in", "blocks.1.ln1.hook_in"]);
    }
    ln1_normalized => {
        // LayerNorm: after the affine (TL 2.x's hook_normalized); RMSNorm: before the weight.
        check_both("blocks.0.ln1.hook_normalized", &["blocks.0.ln1.hook_out", "blocks.0.attn.hook_in"]);
    }
    q_k_v => {
        for f in ["gpt2_tiny", "llama_gqa"] {
            check_row(f, "blocks.1.attn.hook_q", &["blocks.1.attn.q.hook_out"]);
            check_row(f, "blocks.1.attn.hook_k", &["blocks.1.attn.k.hook_out"]);
            check_row(f, "blocks.1.attn.hook_v", &["blocks.1.attn.v.hook_out"]);
        }
    }
    z => {
        check_both("blocks.0.attn.hook_z", &["blocks.0.attn.o.hook_in"]);
    }
    attn_out => {
        check_both("blocks.1.hook_attn_out", &["blocks.1.attn.hook_out", "blocks.1.attn.o.hook_out"]);
    }
    resid_mid => {
        check_both("blocks.0.hook_resid_mid", &["blocks.0.ln2.hook_in"]);
    }
    ln2_normalized => {
        check_both("blocks.1.ln2.hook_normalized", &["blocks.1.ln2.hook_out", "blocks.1.mlp.hook_in"]);
    }
    mlp_pre => {
        check_row("gpt2_tiny", "blocks.0.mlp.hook_pre", &["blocks.0.mlp.in.hook_out"]);
        check_row("llama_gqa", "blocks.0.mlp.hook_pre", &["blocks.0.mlp.gate.hook_out"]);
    }
    mlp_pre_linear => {
        check_row("llama_gqa", "blocks.1.mlp.hook_pre_linear", &["blocks.1.mlp.in.hook_out"]);
        check_absent("gpt2_tiny", "blocks.1.mlp.gate.hook_out");
    }
    mlp_post => {
        check_both("blocks.0.mlp.hook_post", &["blocks.0.mlp.out.hook_in"]);
    }
    mlp_out => {
        check_both("blocks.1.hook_mlp_out", &["blocks.1.mlp.hook_out", "blocks.1.mlp.out.hook_out"]);
    }
    resid_post => {
        check_both("blocks.1.hook_resid_post", &["blocks.1.hook_out"]);
    }
    ln_final_normalized => {
        check_both("ln_final.hook_normalized", &["ln_final.hook_out", "unembed.hook_in"]);
    }
}

/// The logits point (new): `hook_unembed` and its alias `unembed.hook_out` cache TL's logits
/// at every position.
#[test]
fn logits_point() {
    for f in ["gpt2_tiny", "llama_gqa"] {
        let (model, reference) = load(f);
        assert_eq!(resolved(&model, "unembed.hook_out"), "hook_unembed");
        let filter = NamesFilter::from(vec!["hook_unembed", "unembed.hook_out"]);
        let (_, cache) = model
            .run_with_cache(&reference.tokens, &filter, &RunOptions::default())
            .unwrap();
        assert_eq!(cache.len(), 1, "{f}");
        for name in ["hook_unembed", "unembed.hook_out", "unembed"] {
            let d = max_abs_diff(cache.get(name).unwrap(), reference.tensor("logits"));
            assert!(d <= TOL, "{f}: {name} differs from TL's logits by {d}");
        }
    }
}

/// An edit at `hook_unembed` is what the pass returns (the last logits and the loss alike):
/// checked against TL's logits with the same edit applied by hand.
#[test]
fn logits_edit_is_returned() {
    let (model, reference) = load("gpt2_tiny");
    let mut hooks = Hooks::new();
    hooks.add("unembed.hook_out", |act, _| {
        let vocab = act.shape()[2];
        for (i, v) in act.data_mut().iter_mut().enumerate() {
            if i % vocab == 7 {
                *v = 50.0;
            }
        }
        Ok(())
    });
    let opts = RunOptions {
        logits_at: hooklens::LogitPositions::Last,
        ..RunOptions::default()
    };
    let out = model
        .run_with_hooks(&reference.tokens, &mut hooks, &opts)
        .unwrap();
    let logits = out.logits.unwrap();
    let tl = reference.tensor("logits");
    let (b, p, vocab) = (tl.shape[0], tl.shape[1], tl.shape[2]);
    assert_eq!(logits.shape, vec![b, 1, vocab]);
    for bi in 0..b {
        let want = &tl.data[((bi * p) + p - 1) * vocab..][..vocab];
        let got = &logits.data[bi * vocab..][..vocab];
        for (t, (&g, &w)) in got.iter().zip(want).enumerate() {
            let w = if t == 7 { 50.0 } else { w };
            assert!((g - w).abs() <= TOL, "row {bi} token {t}: {g} vs {w}");
        }
    }
}

/// Hooks on an alias and on its TL 2.x name run once each, on the one activation: the second
/// sees the first's edit, and the edit made through the alias gives TL's patched logits.
#[test]
fn hooks_on_alias_and_tl2_name_share_the_slot() {
    for f in ["gpt2_tiny", "llama_gqa"] {
        let (model, reference) = load(f);
        let pos: usize = reference.meta("patch_resid_pos").parse().unwrap();
        let delta: f32 = reference.meta("patch_resid_delta").parse().unwrap();
        let (alias_calls, tl2_calls) = (Cell::new(0), Cell::new(0));
        let seen_edit = Cell::new(f32::NAN);
        let mut hooks = Hooks::new();
        hooks.add("blocks.1.hook_in", |act, ctx| {
            alias_calls.set(alias_calls.get() + 1);
            assert_eq!(ctx.name, "blocks.1.hook_resid_pre");
            for b in 0..act.shape()[0] {
                for v in act.slice_mut(&[b, pos])? {
                    *v += delta;
                }
            }
            Ok(())
        });
        let before = reference.tensor("blocks.1.hook_resid_pre").data[pos * model.config().d_model];
        hooks.add("blocks.1.hook_resid_pre", |act, _| {
            tl2_calls.set(tl2_calls.get() + 1);
            seen_edit.set(act.data()[pos * act.shape()[2]] - before);
            Ok(())
        });
        let out = model
            .run_with_hooks(&reference.tokens, &mut hooks, &RunOptions::default())
            .unwrap();
        drop(hooks);
        assert_eq!((alias_calls.get(), tl2_calls.get()), (1, 1), "{f}");
        assert!(
            (seen_edit.get() - delta).abs() <= TOL,
            "{f}: {}",
            seen_edit.get()
        );
        let d = max_abs_diff(&out.logits.unwrap(), reference.tensor("patch_resid_logits"));
        assert!(
            d <= TOL,
            "{f}: edit through the alias differs from TL's by {d}"
        );
    }
}

/// Regexes and predicates match aliases; a point they select only by an alias is saved under
/// that alias, one matched by its TL 2.x name under that name.
#[test]
fn filters_match_aliases() {
    let (model, reference) = load("gpt2_tiny");
    let re = NamesFilter::regex(r"^blocks\.\d+\.attn\.o\.hook_in$").unwrap();
    let (_, cache) = model
        .run_with_cache(&reference.tokens, &re, &RunOptions::default())
        .unwrap();
    assert_eq!(
        cache.names(),
        vec!["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]
    );
    let saved: Vec<Vec<String>> = cache.file_names().into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        saved,
        vec![
            vec!["blocks.0.attn.o.hook_in"],
            vec!["blocks.1.attn.o.hook_in"]
        ]
    );
    let pred = NamesFilter::Predicate(Box::new(|n: &str| n == "blocks.0.hook_out"));
    let (_, cache) = model
        .run_with_cache(&reference.tokens, &pred, &RunOptions::default())
        .unwrap();
    assert_eq!(cache.names(), vec!["blocks.0.hook_resid_post"]);
    // Matching both names keeps the TL 2.x one.
    let both = NamesFilter::regex(r"^blocks\.0\.(hook_out|hook_resid_post)$").unwrap();
    let (_, cache) = model
        .run_with_cache(&reference.tokens, &both, &RunOptions::default())
        .unwrap();
    assert_eq!(
        cache.file_names()[0].1,
        vec!["blocks.0.hook_resid_post".to_string()]
    );
}

/// The cache file stores each tensor once under the TL 2.x name, unless the alias was asked
/// for by name.
#[test]
fn cache_file_names() {
    let (model, reference) = load("gpt2_tiny");
    let dir = temp_dir("alias-cache");
    let save = |filter: NamesFilter, file: &str| -> Vec<String> {
        let (_, cache) = model
            .run_with_cache(&reference.tokens, &filter, &RunOptions::default())
            .unwrap();
        let path = dir.join(file);
        cache.save_safetensors(&path).unwrap();
        let mut names: Vec<String> = read_tensors(&path).into_keys().collect();
        names.sort();
        names
    };
    let all = save(NamesFilter::All, "all.safetensors");
    assert_eq!(all.len(), model.hook_points(false).len());
    assert!(all.iter().all(|n| !n.ends_with(".hook_out")), "{all:?}");
    assert_eq!(
        save(
            NamesFilter::from(vec!["blocks.0.hook_out"]),
            "alias.safetensors"
        ),
        vec!["blocks.0.hook_out"]
    );
    assert_eq!(
        save(
            NamesFilter::from(vec![
                "blocks.0.hook_out",
                "blocks.0.hook_resid_post",
                "resid_post0"
            ]),
            "both.safetensors"
        ),
        vec!["blocks.0.hook_out", "blocks.0.hook_resid_post"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Unknown names get the nearest names of both vocabularies.
#[test]
fn unknown_names_suggest_from_both_vocabularies() {
    let (model, _) = load("llama_gqa");
    let suggestions = |name: &str| match HookSelector::from(name).resolve(model.config()) {
        Err(HookLensError::UnknownHook { suggestions, .. }) => suggestions,
        other => panic!("{name}: {other:?}"),
    };
    assert!(suggestions("blocks.0.attn.o.hook_inn").contains(&"blocks.0.attn.o.hook_in".into()));
    assert!(suggestions("blocks.1.mlp.gate.hook_ot").contains(&"blocks.1.mlp.gate.hook_out".into()));
    assert!(suggestions("blocks.0.hook_resid_pree").contains(&"blocks.0.hook_resid_pre".into()));
    // An alias at a layer the model lacks is unknown, with the nearest valid names.
    assert!(suggestions("blocks.9.hook_out")
        .iter()
        .any(|s| s.ends_with(".hook_out")));
}

/// Built-in interventions (what sweeps run) accept aliases: zeroing a head through
/// `attn.o.hook_in` is TL's zero-head run.
#[test]
fn interventions_take_aliases() {
    for f in ["gpt2_tiny", "llama_gqa"] {
        let (model, reference) = load(f);
        let layer: usize = reference.meta("zero_head_layer").parse().unwrap();
        let head: usize = reference.meta("zero_head_head").parse().unwrap();
        let iv = hooklens::hooks::Intervention::new(
            format!("blocks.{layer}.attn.o.hook_in"),
            hooklens::hooks::Op::Zero,
        )
        .at_heads(vec![head]);
        let logits = logits_with_interventions(&model, &reference.tokens, &[iv]).unwrap();
        let d = max_abs_diff(&logits, reference.tensor("zero_head_logits"));
        assert!(d <= TOL, "{f}: zero-head through the alias differs by {d}");
    }
}
