//! Hooks during generation: with the KV cache each pass computes only the new positions, and
//! a hook sees them as TL's hooks do under `use_past_kv_cache` (`[1, new, ..]`; scores and
//! pattern `[1, heads, new, positions so far]`). The reference is one full pass over the
//! generated sequence (`run_with_cache`), whose values at those positions must be the same;
//! edits made by a closure must equal the same built-in intervention and recomputation.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{fixtures, greedy};
use hooklens::hooks::intervention::{Intervention, Op};
use hooklens::{Hooks, Model, NamesFilter, RunOptions, Tensor, TokenBatch};

/// What one hook call saw: name, shape, first position, values.
type Seen = (String, Vec<usize>, usize, Vec<f32>);

/// Generates with a recording hook at every default point; the tokens and what was seen.
fn generate_recording(model: &Model, prompt: &[u32], max_new: usize) -> (Vec<u32>, Vec<Seen>) {
    let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
    let mut hooks = Hooks::new();
    for name in hooklens::hooks::point::hook_points(model.config(), false) {
        let seen = Rc::clone(&seen);
        hooks.add(name, move |act, ctx| {
            let entry = (
                ctx.name.to_string(),
                act.shape().to_vec(),
                ctx.first_position,
            );
            seen.borrow_mut()
                .push((entry.0, entry.1, entry.2, act.data().to_vec()));
            Ok(())
        });
    }
    let g = model
        .generate_with_hooks(
            prompt,
            &greedy(max_new, true),
            &[],
            Some(&mut hooks),
            &mut |_| Ok(true),
        )
        .unwrap();
    drop(hooks);
    let seen = Rc::try_unwrap(seen).unwrap().into_inner();
    (g.tokens, seen)
}

/// True when `a` and `b` agree within `tol` (equal infinities agree: masked scores).
fn close(a: f32, b: f32, tol: f32) -> bool {
    a == b || (a - b).abs() <= tol
}

/// Checks one hook call against the full pass's tensor of the same point.
/// full: `[1, T, ..]`, or `[1, H, T, T]` for scores and pattern.
fn check_against_full(seen: &Seen, full: &Tensor) {
    let (name, shape, first, data) = seen;
    let tol = 1e-4
        * full
            .data
            .iter()
            .fold(1f32, |m, v| m.max(v.abs() * v.is_finite() as u8 as f32));
    let pattern_like = name.ends_with("hook_attn_scores") || name.ends_with("hook_pattern");
    if pattern_like {
        let (h, n, keys, t) = (shape[1], shape[2], shape[3], full.shape[3]);
        assert_eq!(shape[0], 1);
        assert_eq!(keys, first + n, "{name}: keys are the positions so far");
        for (i, row) in data.chunks(keys).enumerate() {
            let (head, q) = (i / n, first + i % n);
            let start = (head * t + q) * t;
            let want = &full.data[start..start + keys];
            for (j, (&a, &b)) in row.iter().zip(want).enumerate() {
                assert!(
                    close(a, b, tol),
                    "{name} head {head} q {q} k {j}: {a} vs {b}"
                );
            }
        }
        assert_eq!(data.len(), h * n * keys);
    } else {
        assert_eq!(shape[2..], full.shape[2..], "{name}");
        let per_position: usize = shape[2..].iter().product();
        let want = &full.data[first * per_position..(first + shape[1]) * per_position];
        assert_eq!(data.len(), want.len(), "{name}: {shape:?} from {first}");
        for (k, (&a, &b)) in data.iter().zip(want).enumerate() {
            assert!(
                close(a, b, tol),
                "{name} from {first} value {k}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn hooks_in_cached_generation_see_what_one_full_pass_sees() {
    for fixture in ["gpt2_tiny", "llama_gqa"] {
        let model = Model::load(&fixtures().join(fixture)).unwrap();
        let prompt = [5u32, 17, 9, 3, 40];
        let (tokens, seen) = generate_recording(&model, &prompt, 6);
        // The last token is chosen but never fed back.
        let fed = TokenBatch::single(tokens[..tokens.len() - 1].to_vec()).unwrap();
        let (_, cache) = model
            .run_with_cache(&fed, &NamesFilter::All, &RunOptions::default())
            .unwrap();
        let points = hooklens::hooks::point::hook_points(model.config(), false).len();
        assert_eq!(
            seen.len(),
            points * 6,
            "{fixture}: every point in each of 6 passes"
        );
        let firsts: Vec<usize> = seen.iter().step_by(points).map(|s| s.2).collect();
        assert_eq!(
            firsts,
            [0, 5, 6, 7, 8, 9],
            "{fixture}: the prompt, then one by one"
        );
        for s in &seen {
            let positions = if s.0.ends_with("hook_attn_scores") || s.0.ends_with("hook_pattern") {
                s.1[2]
            } else {
                s.1[1]
            };
            assert_eq!(positions, if s.2 == 0 { 5 } else { 1 }, "{fixture} {}", s.0);
            check_against_full(s, cache.get(s.0.as_str()).unwrap());
        }
    }
}

/// Generation with a closure adding `v` to `blocks.1.hook_resid_pre` at every position.
fn steered_by_closure(model: &Model, prompt: &[u32], v: &[f32], kv_cache: bool) -> Vec<u32> {
    let mut hooks = Hooks::new();
    hooks.add("blocks.1.hook_resid_pre", |act, _| {
        for row in act.data_mut().chunks_mut(v.len()) {
            row.iter_mut().zip(v).for_each(|(x, a)| *x += a);
        }
        Ok(())
    });
    let opts = greedy(20, kv_cache);
    let g = model.generate_with_hooks(prompt, &opts, &[], Some(&mut hooks), &mut |_| Ok(true));
    g.unwrap().new_tokens
}

#[test]
fn a_closure_edit_during_generation_equals_the_built_in_steering_and_recomputation() {
    let model = Model::load(&fixtures().join("llama_gqa")).unwrap(); // d_model 48
    let prompt = [5u32, 17, 99, 3];
    let v: Vec<f32> = (0..48)
        .map(|i| if i % 3 == 0 { 4.0 } else { -2.0 })
        .collect();
    let builtin = Intervention::new("blocks.1.hook_resid_pre", Op::Add { vector: v.clone() });
    let reference = model
        .generate(&prompt, &greedy(20, true), &[builtin], &mut |_| Ok(true))
        .unwrap()
        .new_tokens;
    let plain = model
        .generate(&prompt, &greedy(20, true), &[], &mut |_| Ok(true))
        .unwrap()
        .new_tokens;
    assert_ne!(reference, plain, "the steering vector changes the output");
    assert_eq!(steered_by_closure(&model, &prompt, &v, true), reference);
    assert_eq!(steered_by_closure(&model, &prompt, &v, false), reference);
}

#[test]
fn interventions_at_generated_positions_apply_once_those_positions_exist() {
    for fixture in ["gpt2_tiny", "llama_gqa"] {
        let model = Model::load(&fixtures().join(fixture)).unwrap();
        let cfg = model.config();
        let prompt = [5u32, 17, 9, 3];
        let capacity = prompt.len() + 10;
        // Zero the residual at two generated positions; set one head's z (values for every
        // position of the whole generation) from a constant.
        let zero = Intervention::new("blocks.0.hook_resid_post", Op::Zero).at_positions(vec![6, 9]);
        let shape = vec![capacity, cfg.n_heads, cfg.d_head];
        let values = Tensor::new(vec![0.75; shape.iter().product()], shape).unwrap();
        let set = Intervention::new(
            "blocks.1.attn.hook_z",
            Op::Set {
                values: values.into(),
            },
        )
        .at_heads(vec![1]);
        let run = |ivs: &[Intervention], kv| {
            model
                .generate(&prompt, &greedy(10, kv), ivs, &mut |_| Ok(true))
                .unwrap()
                .new_tokens
        };
        let both = [zero.clone(), set];
        assert_eq!(run(&both, true), run(&both, false), "{fixture}");
        // Tokens 0-2 are read at positions 3-5, before the first zeroed position.
        let (plain, zeroed) = (run(&[], true), run(&[zero], true));
        assert_eq!(
            plain[..3],
            zeroed[..3],
            "{fixture}: nothing before position 6"
        );
    }
}

#[test]
fn ops_along_a_growing_key_axis_are_refused() {
    let model = Model::load(&fixtures().join("gpt2_tiny")).unwrap();
    let add = Intervention::new(
        "blocks.0.attn.hook_pattern",
        Op::Add {
            vector: vec![0.0; 8],
        },
    );
    let e = model
        .generate(&[1, 2], &greedy(6, true), &[add], &mut |_| Ok(true))
        .unwrap_err();
    assert!(e.to_string().contains("key axis grows"), "{e}");
}
