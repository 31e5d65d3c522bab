//! Models loaded through the packed-weight cache give the same numbers as models built from
//! their files: a TL fixture (against TL's logits and an uncached load) and the default model
//! (against an uncached load, bit for bit); a changed source is rebuilt, not read.

mod common;
mod gguf_common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{copy_fixture, load_reference, max_abs_diff, temp_dir};
use hooklens::model::weight_cache::{CacheUse, WeightCache};
use hooklens::{Device, Model, RunOptions, Tensor, TokenBatch};

/// The README's tolerance against TL.
const TOL: f32 = 1e-4;

fn load(path: &Path, cache: WeightCache) -> (Model, CacheUse) {
    let model = Model::load_with(path, Device::Cpu, cache).unwrap();
    let used = model
        .load_times()
        .expect("a file load records its times")
        .cache;
    (model, used)
}

fn logits(model: &Model, tokens: &TokenBatch) -> Tensor {
    model
        .forward(tokens, &RunOptions::default())
        .unwrap()
        .logits
        .unwrap()
}

fn same_bits(a: &Tensor, b: &Tensor) -> bool {
    a.shape == b.shape
        && a.data
            .iter()
            .zip(&b.data)
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn a_fixture_through_the_cache_matches_tl_and_the_uncached_load() {
    let dir = copy_fixture("gpt2_small4", "weight-cache");
    let cache = WeightCache::On(temp_dir("weight-cache-files"));
    let reference = load_reference(&dir);
    let (plain, used) = load(&dir, WeightCache::Off);
    assert_eq!(used, CacheUse::Unused);
    let want = logits(&plain, &reference.tokens);
    let (first, used) = load(&dir, cache.clone());
    assert!(matches!(used, CacheUse::Written(_)), "{used:?}");
    let (cached, used) = load(&dir, cache.clone());
    assert!(matches!(used, CacheUse::Read(_)), "{used:?}");
    for model in [&first, &cached] {
        let got = logits(model, &reference.tokens);
        assert!(
            same_bits(&got, &want),
            "cached logits differ from the uncached load"
        );
        assert!(max_abs_diff(&got, reference.tensor("logits")) <= TOL);
    }
    assert_eq!(cached.embedding_host(), plain.embedding_host());

    // A rewritten config (a new modification time) makes the cache stale: rebuilt, not read.
    let config = dir.join("config.json");
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&config)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let (rebuilt, used) = load(&dir, cache);
    assert!(matches!(used, CacheUse::Written(_)), "{used:?}");
    assert!(same_bits(&logits(&rebuilt, &reference.tokens), &want));
}

#[test]
fn the_default_model_through_the_cache_is_bit_for_bit_the_uncached_one() {
    let path = gguf_common::smollm2_path();
    let cache = WeightCache::On(temp_dir("weight-cache-smollm2"));
    let (plain, _) = load(&path, WeightCache::Off);
    let tokens = plain
        .to_tokens("The Eiffel Tower is in the city of", true)
        .unwrap();
    let want = logits(&plain, &tokens);
    drop(plain);
    let (_, used) = load(&path, cache.clone());
    assert!(matches!(used, CacheUse::Written(_)), "{used:?}");
    let (cached, used) = load(&path, cache.clone());
    assert!(matches!(used, CacheUse::Read(_)), "{used:?}");
    assert!(same_bits(&logits(&cached, &tokens), &want));
    if let WeightCache::On(dir) = cache {
        let _ = std::fs::remove_dir_all(dir);
    }
}
