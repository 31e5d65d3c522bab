//! Ragged batches: padding is invisible. At every hook point and every real position, a
//! padded batch (left or right padding, GPT-2 and Llama fixtures) holds the values of each
//! prompt run alone; and every value of the padded run, pads included, equals TransformerLens'
//! `run_with_cache(tokens, attention_mask=mask)` on the same weights
//! (`scripts/golden/make_padding_refs.py` writes `tests/fixtures/padding/`).

mod common;

use common::{fixtures, load_reference_file, max_abs_diff, Reference};
use hooklens::model::input::PaddingSide;
use hooklens::{
    Hooks, LogitPositions, Model, NamesFilter, ReturnType, RunOptions, Tensor, TokenBatch,
};

const TOL: f32 = 1e-4;
const FIXTURES: [&str; 2] = ["gpt2_tiny", "llama_gqa"];
const SIDES: [(PaddingSide, &str); 2] =
    [(PaddingSide::Left, "left"), (PaddingSide::Right, "right")];

fn load(name: &str) -> (Model, Reference) {
    let model = Model::load(&fixtures().join(name)).unwrap();
    let file = fixtures()
        .join("padding")
        .join(format!("{name}.safetensors"));
    (model, load_reference_file(&file))
}

/// The reference's prompts (stored as f32 ids) and pad id.
fn prompts(reference: &Reference) -> (Vec<Vec<u32>>, u32) {
    let ids = |t: &Tensor| t.data.iter().map(|&v| v as u32).collect::<Vec<u32>>();
    let prompts = (0..)
        .map_while(|i| reference.tensors.get(&format!("prompt.{i}")))
        .map(ids)
        .collect();
    (prompts, reference.tensor("pad_id").data[0] as u32)
}

/// Every hook point, opt-in ones included.
fn every_point() -> NamesFilter {
    NamesFilter::Predicate(Box::new(|_| true))
}

/// Element `index` of a row-major tensor.
fn at(t: &Tensor, index: &[usize]) -> f32 {
    let flat = index
        .iter()
        .zip(&t.shape)
        .fold(0, |acc, (&i, &n)| acc * n + i);
    t.data[flat]
}

/// The values of batch row `b` of `t` at positions `pos` (and key positions `keys` for
/// `[batch, head, q, k]` tensors), flattened in index order.
fn select(t: &Tensor, name: &str, b: usize, pos: &[usize], keys: &[usize]) -> Vec<f32> {
    let per_key = name.ends_with("hook_pattern") || name.ends_with("hook_attn_scores");
    let mut out = Vec::new();
    if per_key {
        for h in 0..t.shape[1] {
            for &q in pos {
                out.extend(keys.iter().map(|&k| at(t, &[b, h, q, k])));
            }
        }
        return out;
    }
    let inner: usize = t.shape[2..].iter().product();
    for &p in pos {
        let start = (b * t.shape[1] + p) * inner;
        out.extend_from_slice(&t.data[start..start + inner]);
    }
    out
}

/// Largest difference, with equal infinities (masked scores) counting as 0.
fn diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let t = |v: &[f32]| Tensor::new(v.to_vec(), vec![v.len()]).unwrap();
    max_abs_diff(&t(a), &t(b))
}

#[test]
fn padded_batch_equals_each_prompt_alone_at_every_hook_point() {
    for fixture in FIXTURES {
        let (model, reference) = load(fixture);
        let (prompts, pad) = prompts(&reference);
        let singles: Vec<_> = (prompts.iter())
            .map(|p| {
                let t = TokenBatch::single(p.clone()).unwrap();
                model
                    .run_with_cache(&t, &every_point(), &RunOptions::default())
                    .unwrap()
            })
            .collect();
        for (side, side_name) in SIDES {
            let batch = TokenBatch::padded(&prompts, side, pad).unwrap();
            let (out, cache) = model
                .run_with_cache(&batch, &every_point(), &RunOptions::default())
                .unwrap();
            let names = cache.names();
            assert!(names.len() > 30, "{fixture}: {} points", names.len());
            for (b, (single_out, single)) in singles.iter().enumerate() {
                let span = batch.span(b);
                let real: Vec<usize> = (span.start..span.end()).collect();
                let alone: Vec<usize> = (0..span.len).collect();
                for name in &names {
                    let got = select(cache.get(name.as_str()).unwrap(), name, b, &real, &real);
                    let one = single.get(name.as_str()).unwrap();
                    let want = select(one, name, 0, &alone, &alone);
                    let d = diff(&got, &want);
                    assert!(
                        d <= TOL,
                        "{fixture}/{side_name}/row {b}: {name} differs by {d}"
                    );
                }
                let logits = out.logits.as_ref().unwrap();
                let d = diff(
                    &select(logits, "logits", b, &real, &[]),
                    &select(
                        single_out.logits.as_ref().unwrap(),
                        "logits",
                        0,
                        &alone,
                        &[],
                    ),
                );
                assert!(
                    d <= TOL,
                    "{fixture}/{side_name}/row {b}: logits differ by {d}"
                );
            }
        }
    }
}

#[test]
fn padded_batch_equals_transformer_lens_with_attention_mask() {
    for fixture in FIXTURES {
        let (model, reference) = load(fixture);
        let (prompts, pad) = prompts(&reference);
        for (side, side_name) in SIDES {
            let batch = TokenBatch::padded(&prompts, side, pad).unwrap();
            let ids: Vec<f32> = batch.ids().iter().map(|&i| i as f32).collect();
            assert_eq!(ids, reference.tensor(&format!("{side_name}.tokens")).data);
            assert_eq!(
                batch.attention_mask_tensor().data,
                reference
                    .tensor(&format!("{side_name}.attention_mask"))
                    .data
            );
            let opts = RunOptions {
                return_type: ReturnType::Both,
                loss_per_token: true,
                ..RunOptions::default()
            };
            let prefix = format!("{side_name}.");
            let tl_names: Vec<String> = (reference.tensors.keys())
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter(|n| n.contains("hook_"))
                .map(str::to_string)
                .collect();
            let filter = NamesFilter::from(tl_names);
            let (out, cache) = model.run_with_cache(&batch, &filter, &opts).unwrap();
            let mut checked = 0;
            for (key, want) in &reference.tensors {
                let Some(name) = key.strip_prefix(&prefix).filter(|n| n.contains("hook_")) else {
                    continue;
                };
                let got = cache.get(name).unwrap();
                assert_eq!(got.shape, want.shape, "{fixture}/{side_name}: {name} shape");
                let d = max_abs_diff(got, want);
                assert!(
                    d <= TOL,
                    "{fixture}/{side_name}: {name} differs from TL by {d}"
                );
                checked += 1;
            }
            assert!(checked > 30, "{fixture}/{side_name}: {checked} hooks");
            let tl = |k: &str| reference.tensor(&format!("{side_name}.{k}"));
            let d = max_abs_diff(out.logits.as_ref().unwrap(), tl("logits"));
            assert!(d <= TOL, "{fixture}/{side_name}: logits differ by {d}");
            let d = (out.loss.unwrap() - tl("loss").data[0]).abs();
            assert!(d <= TOL, "{fixture}/{side_name}: loss differs by {d}");
            let d = max_abs_diff(out.loss_per_token.as_ref().unwrap(), tl("loss_per_token"));
            assert!(
                d <= TOL,
                "{fixture}/{side_name}: per-token loss differs by {d}"
            );
        }
    }
}

#[test]
fn pattern_rows_of_left_pad_queries_are_zero_and_pad_keys_get_no_weight() {
    let (model, reference) = load("gpt2_tiny");
    let (prompts, pad) = prompts(&reference);
    let batch = TokenBatch::padded(&prompts, PaddingSide::Left, pad).unwrap();
    let filter = NamesFilter::from(vec!["blocks.1.attn.hook_pattern".to_string()]);
    let (_, cache) = model
        .run_with_cache(&batch, &filter, &RunOptions::default())
        .unwrap();
    let pattern = cache.get("blocks.1.attn.hook_pattern").unwrap(); // [b, h, q, k]
    let (heads, seq) = (pattern.shape[1], pattern.shape[2]);
    for b in 0..batch.batch() {
        let span = batch.span(b);
        for h in 0..heads {
            for q in 0..seq {
                let row: Vec<f32> = (0..seq).map(|k| at(pattern, &[b, h, q, k])).collect();
                let on_pads: f32 = (0..seq)
                    .filter(|&k| !span.contains(k))
                    .map(|k| row[k])
                    .sum();
                assert_eq!(on_pads, 0.0, "row {b} head {h} query {q}");
                let total: f32 = row.iter().sum();
                let want = if q < span.start { 0.0 } else { 1.0 };
                assert!(
                    (total - want).abs() < 1e-5,
                    "row {b} query {q}: sum {total}"
                );
            }
        }
    }
}

/// With only the last logits asked for, the last block runs its queries, MLP and final norm
/// at each row's last real position only (right padding: a different position per row).
#[test]
fn last_logits_are_at_each_rows_last_real_position() {
    for fixture in FIXTURES {
        let (model, reference) = load(fixture);
        let (prompts, pad) = prompts(&reference);
        for (side, side_name) in SIDES {
            let batch = TokenBatch::padded(&prompts, side, pad).unwrap();
            let opts = RunOptions {
                logits_at: LogitPositions::Last,
                ..RunOptions::default()
            };
            let last = model.forward(&batch, &opts).unwrap().logits.unwrap(); // [b, 1, vocab]
            let vocab = last.shape[2];
            assert_eq!(last.shape, [prompts.len(), 1, vocab]);
            for (b, p) in prompts.iter().enumerate() {
                let tl = reference.tensor(&format!("single.{b}.logits")); // [1, len, vocab]
                let want = &tl.data[(p.len() - 1) * vocab..][..vocab];
                let got = &last.data[b * vocab..][..vocab];
                let d = diff(got, want);
                assert!(
                    d <= TOL,
                    "{fixture} ({side_name} padding): row {b} last logits differ from TL by {d}"
                );
            }
        }
    }
}

#[test]
fn hooks_see_the_attention_mask_and_unpadded_batches_have_none() {
    let (model, reference) = load("llama_gqa");
    let (prompts, pad) = prompts(&reference);
    let batch = TokenBatch::padded(&prompts, PaddingSide::Left, pad).unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let mut hooks = Hooks::new();
    hooks.add("blocks.0.hook_resid_pre", |_, ctx| {
        seen.borrow_mut()
            .push(ctx.attention_mask.map(<[u8]>::to_vec));
        Ok(())
    });
    model
        .run_with_hooks(&batch, &mut hooks, &RunOptions::default())
        .unwrap();
    let even = TokenBatch::single(prompts[0].clone()).unwrap();
    model
        .run_with_hooks(&even, &mut hooks, &RunOptions::default())
        .unwrap();
    drop(hooks);
    let seen = seen.into_inner();
    // Prompts of 7, 4 and 5 tokens, left-padded to 7.
    let want: Vec<u8> = [
        [1, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1, 1],
    ]
    .concat();
    assert_eq!(seen[0].as_deref(), Some(&want[..]));
    assert_eq!(seen[1], None);
}
