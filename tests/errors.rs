//! Bad input gets a typed error with a message that names the problem, never a panic.

mod common;

use std::cell::Cell;

use common::{copy_fixture, fixtures, load_reference};
use hooklens::{HookLensError, Hooks, Model, NamesFilter, RunOptions, TokenBatch};
use safetensors::SafeTensors;

#[test]
fn truncated_weights_name_the_file() {
    let dir = copy_fixture("gpt2_tiny", "truncated");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    for cut in [4, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = Model::load(&dir).err().expect("truncated file must fail");
        assert!(matches!(err, HookLensError::Format { .. }), "{err:?}");
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }
}

#[test]
fn config_that_disagrees_with_weights_names_the_tensor() {
    let dir = copy_fixture("gpt2_tiny", "mismatch");
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"n_positions\": 32", "\"n_positions\": 40"),
    )
    .unwrap();
    let err = Model::load(&dir).err().expect("mismatch must fail");
    match &err {
        HookLensError::TensorShape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "transformer.wpe.weight");
            assert_eq!(expected, &[40, 36]);
            assert_eq!(found, &[32, 36]);
        }
        other => panic!("expected TensorShape, got {other:?}"),
    }
}

#[test]
fn missing_tensor_is_named() {
    let dir = copy_fixture("gpt2_tiny", "missing");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "transformer.h.1.mlp.c_fc.bias")
        .collect();
    let out = safetensors::serialize(kept, None).unwrap();
    std::fs::write(&path, out).unwrap();
    let err = Model::load(&dir).err().expect("missing tensor must fail");
    assert!(
        matches!(&err, HookLensError::MissingTensor { name, .. } if name == "transformer.h.1.mlp.c_fc.bias"),
        "{err:?}"
    );
}

#[test]
fn missing_config_and_unknown_architecture() {
    let dir = copy_fixture("gpt2_tiny", "noconfig");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let err = Model::load(&dir).err().unwrap();
    assert!(
        matches!(err, HookLensError::Io { .. }) && err.to_string().contains("config.json"),
        "{err}"
    );

    let dir = copy_fixture("gpt2_tiny", "arch");
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"model_type\": \"gpt2\"", "\"model_type\": \"mamba\""),
    )
    .unwrap();
    let err = Model::load(&dir).err().unwrap();
    assert!(err.to_string().contains("mamba"), "{err}");
    assert!(Model::load(&fixtures().join("does-not-exist")).is_err());
}

fn tiny() -> (Model, TokenBatch) {
    let dir = fixtures().join("gpt2_tiny");
    (Model::load(&dir).unwrap(), load_reference(&dir).tokens)
}

#[test]
fn unknown_hook_fails_before_the_pass_with_suggestions() {
    let (model, tokens) = tiny();
    let fired = Cell::new(0);
    let mut hooks = Hooks::new();
    hooks.add("hook_embed", |_, _| {
        fired.set(fired.get() + 1);
        Ok(())
    });
    hooks.add("blocks.0.attn.hook_zz", |_, _| Ok(()));
    let err = model
        .run_with_hooks(&tokens, &mut hooks, &RunOptions::default())
        .unwrap_err();
    match &err {
        HookLensError::UnknownHook { suggestions, .. } => {
            assert_eq!(suggestions[0], "blocks.0.attn.hook_z");
        }
        other => panic!("{other:?}"),
    }
    drop(hooks);
    assert_eq!(fired.get(), 0, "no hook may fire when a name is unknown");

    for bad in [
        "blocks.5.attn.hook_z",
        "blocks.0.attn.hook_rot_q",
        "hook_tokens",
        "blocks.x.hook_resid_pre",
    ] {
        let mut hooks = Hooks::new();
        hooks.add(bad, |_, _| Ok(()));
        let err = model
            .run_with_hooks(&tokens, &mut hooks, &RunOptions::default())
            .unwrap_err();
        assert!(
            matches!(err, HookLensError::UnknownHook { .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains("did you mean"), "{err}");
    }
    // The same check applies to cache filters.
    let filter = NamesFilter::from(vec!["blocks.0.hook_resid_prE"]);
    let err = model
        .run_with_cache(&tokens, &filter, &RunOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("blocks.0.hook_resid_pre"), "{err}");
}

#[test]
fn hooks_cannot_change_shapes_and_their_errors_propagate() {
    let (model, tokens) = tiny();
    let mut hooks = Hooks::new();
    hooks.add(("z", 0), |act, _| {
        let wrong = vec![0.0; act.data().len() / 2];
        let mut shape = act.shape().to_vec();
        shape[2] -= 1;
        act.set(&wrong, &shape)
    });
    let err = model
        .run_with_hooks(&tokens, &mut hooks, &RunOptions::default())
        .unwrap_err();
    assert!(
        matches!(&err, HookLensError::HookShape { name, .. } if name == "blocks.0.attn.hook_z"),
        "{err:?}"
    );

    let mut hooks = Hooks::new();
    hooks.add(("pattern", 1), |_, ctx| {
        Err(HookLensError::Hook {
            name: ctx.name.to_string(),
            message: "user hook refused".into(),
        })
    });
    let err = model
        .run_with_hooks(&tokens, &mut hooks, &RunOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("user hook refused"));

    // A same-shape replacement is allowed and takes effect.
    let mut hooks = Hooks::new();
    hooks.add("ln_final.hook_normalized", |act, _| {
        let zeros = vec![0.0; act.data().len()];
        let shape = act.shape().to_vec();
        act.set(&zeros, &shape)
    });
    let out = model
        .run_with_hooks(&tokens, &mut hooks, &RunOptions::default())
        .unwrap();
    // With the normalised stream zeroed, every logit is 0 (GPT-2 has no unembedding bias).
    assert!(out.logits.unwrap().data.iter().all(|&v| v == 0.0));
}

#[test]
fn bad_token_batches() {
    let (model, _) = tiny();
    let err = TokenBatch::from_rows(&[vec![1u32, 2, 3], vec![1, 2]]).unwrap_err();
    assert!(err.to_string().contains("equal lengths"));
    assert!(TokenBatch::from_rows::<Vec<u32>>(&[]).is_err());
    assert!(TokenBatch::single(vec![]).is_err());
    let t = TokenBatch::single(vec![0, 450]).unwrap();
    assert!(matches!(
        model.forward(&t, &RunOptions::default()).unwrap_err(),
        HookLensError::TokenOutOfRange {
            token: 450,
            at: (0, 1),
            vocab: 450
        }
    ));
    let t = TokenBatch::single(vec![1; 33]).unwrap();
    assert!(matches!(
        model.forward(&t, &RunOptions::default()).unwrap_err(),
        HookLensError::SequenceTooLong { len: 33, n_ctx: 32 }
    ));
    let t = TokenBatch::single(vec![1; 4]).unwrap();
    let opts = RunOptions {
        start_at_layer: Some(1),
        ..RunOptions::default()
    };
    assert!(model.forward(&t, &opts).is_err());
    let opts = RunOptions {
        stop_at_layer: Some(5),
        ..RunOptions::default()
    };
    assert!(model
        .forward(&t, &opts)
        .unwrap_err()
        .to_string()
        .contains("out of range"));
}
