//! An activation cache saved with its tokens, model and prompts and read back
//! (`ActivationCache::save_with_source` / `load_safetensors`).

mod common;

use std::collections::HashMap;

use common::{fixtures, hooklens, temp_dir};
use hooklens::hooks::CacheSource;
use hooklens::{ActivationCache, HookLensError, Model, NamesFilter, PaddingSide, RunOptions};

fn source() -> CacheSource {
    CacheSource {
        model: "tests/fixtures/gpt2_tiny".into(),
        prompts: vec!["Hello world, again".into(), "Hi".into()],
        extra: HashMap::from([("note".to_string(), "round trip".to_string())]),
    }
}

#[test]
fn a_saved_cache_loads_back_equal() {
    let model = Model::load(&fixtures().join("gpt2_tiny")).unwrap();
    let src = source();
    let tokens = model
        .to_tokens_padded(&src.prompts, true, PaddingSide::Right)
        .unwrap();
    let (_, cache) = model
        .run_with_cache(&tokens, &NamesFilter::All, &RunOptions::default())
        .unwrap();
    let path = temp_dir("cache-file").join("cache.safetensors");
    cache.save_with_source(&path, &tokens, &src).unwrap();
    let saved = ActivationCache::load_safetensors(&path, model.config()).unwrap();
    assert_eq!(
        saved.cache.names(),
        cache.names(),
        "the firing order is kept"
    );
    assert_eq!(saved.cache.len(), model.hook_points(false).len());
    for ((p, want), (q, got)) in cache.iter().zip(saved.cache.iter()) {
        assert_eq!(p, q);
        assert_eq!(got.shape, want.shape, "{}", p.name());
        assert_eq!(got.data, want.data, "{}", p.name());
    }
    let rows: Vec<Vec<u32>> = (0..tokens.batch())
        .map(|b| tokens.row(b).to_vec())
        .collect();
    assert_eq!(saved.tokens, rows);
    assert_eq!(saved.source.model, src.model);
    assert_eq!(saved.source.prompts, src.prompts);
    assert_eq!(saved.source.extra.get("note"), src.extra.get("note"));
    let z = saved.cache.get(("z", 1)).unwrap();
    assert_eq!(z, cache.get("blocks.1.attn.hook_z").unwrap());
}

#[test]
fn alias_names_survive_the_round_trip() {
    let model = Model::load(&fixtures().join("gpt2_tiny")).unwrap();
    let tokens = model.to_tokens("Hello world", true).unwrap();
    let filter = NamesFilter::regex(r"^blocks\.1\.hook_out$|^blocks\.0\.hook_resid_pre$").unwrap();
    let (_, cache) = model
        .run_with_cache(&tokens, &filter, &RunOptions::default())
        .unwrap();
    let path = temp_dir("cache-file-alias").join("cache.safetensors");
    cache.save_with_source(&path, &tokens, &source()).unwrap();
    let saved = ActivationCache::load_safetensors(&path, model.config()).unwrap();
    assert_eq!(saved.cache.file_names(), cache.file_names());
    let want = cache.get("blocks.1.hook_resid_post").unwrap();
    assert_eq!(saved.cache.get("blocks.1.hook_out").unwrap(), want);
}

#[test]
fn a_file_that_is_not_a_hooklens_cache_is_a_clear_error() {
    let model = Model::load(&fixtures().join("gpt2_tiny")).unwrap();
    let cfg = model.config();
    let weights = fixtures().join("gpt2_tiny/model.safetensors");
    let err = ActivationCache::load_safetensors(&weights, cfg)
        .err()
        .unwrap();
    assert!(matches!(err, HookLensError::Format { .. }), "{err}");
    assert!(
        err.to_string().contains("not a hooklens activation cache"),
        "{err}"
    );
    let json = fixtures().join("gpt2_tiny/config.json");
    let err = ActivationCache::load_safetensors(&json, cfg).err().unwrap();
    assert!(err.to_string().contains("not a safetensors file"), "{err}");
    let missing = fixtures().join("gpt2_tiny/none.safetensors");
    let err = ActivationCache::load_safetensors(&missing, cfg)
        .err()
        .unwrap();
    assert!(matches!(err, HookLensError::Io { .. }), "{err}");
}

#[test]
fn a_cache_of_another_model_shape_is_an_error() {
    let model = Model::load(&fixtures().join("gpt2_small4")).unwrap();
    let tokens = model.to_tokens("Hello", true).unwrap();
    let filter = NamesFilter::regex(r"^blocks\.2\.hook_resid_post$").unwrap();
    let (_, cache) = model
        .run_with_cache(&tokens, &filter, &RunOptions::default())
        .unwrap();
    let path = temp_dir("cache-file-shape").join("cache.safetensors");
    cache.save_with_source(&path, &tokens, &source()).unwrap();
    // gpt2_tiny has 2 layers: blocks.2 does not exist there.
    let tiny = Model::load(&fixtures().join("gpt2_tiny")).unwrap();
    let err = ActivationCache::load_safetensors(&path, tiny.config())
        .err()
        .unwrap();
    assert!(matches!(err, HookLensError::Format { .. }), "{err}");
    assert!(
        err.to_string().contains("blocks.2.hook_resid_post"),
        "{err}"
    );
}

#[test]
fn run_prompts_writes_a_cache_that_loads_back() {
    let dir = temp_dir("cache-file-cli");
    let (prompts, cache) = (dir.join("prompts.txt"), dir.join("cache.safetensors"));
    std::fs::write(&prompts, "Hello world\nHi\n").unwrap();
    let model = fixtures().join("gpt2_tiny");
    let (ok, out, err) = hooklens(&[
        "--model",
        model.to_str().unwrap(),
        "run",
        "--prompts",
        prompts.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
        "--names",
        r"hook_z$",
    ]);
    assert!(ok, "{out}\n{err}");
    let tiny = Model::load(&model).unwrap();
    let saved = ActivationCache::load_safetensors(&cache, tiny.config()).unwrap();
    assert_eq!(saved.source.prompts, ["Hello world", "Hi"]);
    assert!(
        saved.source.model.ends_with("gpt2_tiny"),
        "{}",
        saved.source.model
    );
    assert_eq!(
        saved.cache.names(),
        ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]
    );
    assert_eq!(saved.tokens.len(), 2);
    assert!(saved.source.extra.contains_key("pad_id"));
}

#[test]
fn run_cache_of_one_prompt_loads_back_with_its_prompt_and_tokens() {
    let dir = temp_dir("cache-file-run");
    let cache = dir.join("cache.safetensors");
    let model = fixtures().join("gpt2_tiny");
    let (ok, out, err) = hooklens(&[
        "--model",
        model.to_str().unwrap(),
        "run",
        "--prompt",
        "Hello world",
        "--cache",
        cache.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    let tiny = Model::load(&model).unwrap();
    let saved = ActivationCache::load_safetensors(&cache, tiny.config()).unwrap();
    assert_eq!(saved.source.prompts, ["Hello world"]);
    let tokens = tiny.to_tokens("Hello world", true).unwrap();
    assert_eq!(saved.tokens, [tokens.row(0).to_vec()]);
    assert_eq!(saved.cache.len(), tiny.hook_points(false).len());
}
