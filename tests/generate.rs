//! Generation against HF transformers' greedy `generate(do_sample=False)` token for token
//! (tests/fixtures/generate/refs.json, scripts/golden/make_generate_refs.py), the KV cache
//! against recomputation, steering and seeded sampling.

mod common;
mod gguf_common;

use common::{fixtures, greedy};
use hooklens::hooks::intervention::{Intervention, Op};
use hooklens::model::generate::{GenerateOptions, Generation, StopReason};
use hooklens::model::sampling::SamplingOptions;
use hooklens::Model;
use serde::Deserialize;

#[derive(Deserialize)]
struct RandomRef {
    fixture: String,
    prompt: Vec<u32>,
    max_new: usize,
    new_tokens: Vec<u32>,
}

#[derive(Deserialize)]
struct SmolRef {
    text: String,
    ids: Vec<u32>,
    max_new: usize,
    new_tokens: Vec<u32>,
}

#[derive(Deserialize)]
struct Refs {
    random: Vec<RandomRef>,
    smollm2: Vec<SmolRef>,
}

fn refs() -> Refs {
    let text = std::fs::read_to_string(fixtures().join("generate/refs.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn generate(
    model: &Model,
    prompt: &[u32],
    opts: &GenerateOptions,
    ivs: &[Intervention],
) -> Generation {
    model
        .generate(prompt, opts, ivs, &mut |_| Ok(true))
        .unwrap()
}

#[test]
fn greedy_equals_hf_on_random_checkpoints_with_and_without_the_cache() {
    for r in refs().random {
        let model = Model::load(&fixtures().join(&r.fixture)).unwrap();
        for kv in [true, false] {
            let g = generate(&model, &r.prompt, &greedy(r.max_new, kv), &[]);
            assert_eq!(g.new_tokens, r.new_tokens, "{} kv_cache {kv}", r.fixture);
            assert_eq!(g.tokens[..r.prompt.len()], r.prompt[..]);
            assert_eq!(g.stop, StopReason::MaxNew);
        }
    }
}

#[test]
fn greedy_equals_hf_on_smollm2() {
    let model = Model::load(&gguf_common::smollm2_path()).unwrap();
    for r in refs().smollm2 {
        let ids = model.to_tokens(&r.text, true).unwrap().row(0).to_vec();
        assert_eq!(ids, r.ids, "{:?}: tokenization", r.text);
        let opts = GenerateOptions {
            max_new: r.max_new,
            ..GenerateOptions::default()
        };
        let g = generate(&model, &ids, &opts, &[]);
        assert_eq!(g.new_tokens, r.new_tokens, "{:?}", r.text);
    }
}

fn steer(vector: Vec<f32>, layer: usize) -> Intervention {
    Intervention::new(
        format!("blocks.{layer}.hook_resid_pre").as_str(),
        Op::Add { vector },
    )
}

#[test]
fn steering_zero_changes_nothing_and_a_vector_changes_the_output() {
    let model = Model::load(&fixtures().join("llama_gqa")).unwrap();
    let prompt = [5, 17, 99, 3];
    let plain = generate(&model, &prompt, &greedy(20, true), &[]);
    let zero = generate(
        &model,
        &prompt,
        &greedy(20, true),
        &[steer(vec![0.0; 48], 1)],
    );
    assert_eq!(plain.new_tokens, zero.new_tokens);
    let v: Vec<f32> = (0..48)
        .map(|i| if i % 3 == 0 { 4.0 } else { -2.0 })
        .collect();
    let cached = generate(&model, &prompt, &greedy(20, true), &[steer(v.clone(), 1)]);
    assert_ne!(plain.new_tokens, cached.new_tokens);
    // The steered KV-cache run equals steered recomputation.
    let full = generate(&model, &prompt, &greedy(20, false), &[steer(v, 1)]);
    assert_eq!(cached.new_tokens, full.new_tokens);
}

#[test]
fn the_cache_equals_recomputation_when_the_pattern_is_watched() {
    // An intervention at the pattern makes every pass take the watched attention kernels
    // (scores, pattern, values) over the cache written in place.
    for fixture in ["llama_gqa", "gpt2_tiny"] {
        let model = Model::load(&fixtures().join(fixture)).unwrap();
        let prompt = [5, 17, 9, 3, 40];
        let halve = Intervention::new("blocks.0.attn.hook_pattern", Op::Scale { factor: 0.5 });
        let cached = generate(
            &model,
            &prompt,
            &greedy(12, true),
            std::slice::from_ref(&halve),
        );
        let full = generate(&model, &prompt, &greedy(12, false), &[halve]);
        assert_eq!(cached.new_tokens, full.new_tokens, "{fixture}");
        let plain = generate(&model, &prompt, &greedy(12, true), &[]);
        assert_ne!(
            plain.new_tokens, cached.new_tokens,
            "{fixture}: the pattern was halved"
        );
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let model = Model::load(&fixtures().join("gpt2_small4")).unwrap();
    let opts = |seed| GenerateOptions {
        max_new: 30,
        stop_at_eos: false,
        sampling: SamplingOptions {
            temperature: 1.0,
            top_k: Some(50),
            top_p: Some(0.95),
            seed,
        },
        ..GenerateOptions::default()
    };
    let prompt = [449, 10, 20];
    let a = generate(&model, &prompt, &opts(3), &[]);
    let b = generate(&model, &prompt, &opts(3), &[]);
    let c = generate(&model, &prompt, &opts(4), &[]);
    assert_eq!(a.new_tokens, b.new_tokens);
    assert_ne!(
        a.new_tokens, c.new_tokens,
        "another seed draws another sequence"
    );
    let greedy_run = generate(&model, &prompt, &greedy(30, true), &[]);
    assert_ne!(a.new_tokens, greedy_run.new_tokens);
}

#[test]
fn stop_text_and_callback_end_generation() {
    let model = Model::load(&fixtures().join("gpt2_tiny")).unwrap();
    let prompt = [449, 3, 7];
    let all = generate(&model, &prompt, &greedy(20, true), &[]);
    let text_of = |n: usize| {
        model
            .tokenizer()
            .unwrap()
            .decode(&all.new_tokens[..n])
            .unwrap()
    };
    // Stop at the text of the first four new tokens: generation ends there, or earlier if the
    // text appears sooner.
    let stop = text_of(4);
    let opts = GenerateOptions {
        stop: Some(stop.clone()),
        ..greedy(20, true)
    };
    let g = generate(&model, &prompt, &opts, &[]);
    assert_eq!(g.stop, StopReason::StopText);
    let n = g.new_tokens.len();
    assert!(n <= 4 && text_of(n).contains(&stop) && !text_of(n - 1).contains(&stop));
    let mut seen = Vec::new();
    let g = model
        .generate(&prompt, &greedy(20, true), &[], &mut |t| {
            seen.push(t);
            Ok(seen.len() < 5)
        })
        .unwrap();
    assert_eq!(g.stop, StopReason::Callback);
    assert_eq!(g.new_tokens, all.new_tokens[..5]);
    assert_eq!(seen, g.new_tokens);
}

#[test]
fn bad_generation_requests_are_errors() {
    let model = Model::load(&fixtures().join("gpt2_tiny")).unwrap(); // n_ctx 32
    let none = &mut |_| Ok(true);
    let e = model
        .generate(&[1; 20], &greedy(13, true), &[], none)
        .unwrap_err();
    assert!(e.to_string().contains("context of 32"), "{e}");
    assert!(model.generate(&[], &greedy(3, true), &[], none).is_err());
    assert!(model
        .generate(&[1, 450], &greedy(3, true), &[], none)
        .is_err());
    let hot = GenerateOptions {
        sampling: SamplingOptions {
            temperature: -1.0,
            ..SamplingOptions::default()
        },
        ..greedy(3, true)
    };
    assert!(model.generate(&[1, 2], &hot, &[], none).is_err());
}
