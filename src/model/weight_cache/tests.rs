//! The cache file against the weights it was written from, stale keys and damaged files.

use std::path::{Path, PathBuf};

use super::entries::{each_item, Item};
use super::file::{read, write, Unusable};
use super::*;
use crate::model::config::ModelConfig;
use crate::model::random::random_weights;
use crate::model::weights::{TokenEmbedding, Weights};

/// Small configs of both architectures, at sizes no kernel tile divides.
fn configs() -> Vec<ModelConfig> {
    crate::model::engine_tests::small_configs()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hooklens-weight-cache-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A source file to key on, and the key for `cfg`.
fn source_and_key(dir: &Path, cfg: &ModelConfig) -> (PathBuf, CacheKey) {
    let source = dir.join("model.bin");
    std::fs::write(&source, b"weights").unwrap();
    let key = CacheKey::new(std::slice::from_ref(&source), cfg, &LoadOptions::default()).unwrap();
    (source, key)
}

/// Every array of `w` as (name, kind, logical values), in visiting order.
fn arrays(w: &Weights) -> Vec<(String, bool, Vec<f32>)> {
    let mut out = Vec::new();
    each_item(w, &mut |name, item| {
        out.push(match item {
            Item::Vector(v) => (name, false, v.to_vec()),
            Item::Packed(m) => (name, true, m.to_k_by_n()),
        })
    });
    out
}

#[test]
fn a_written_file_reads_back_every_array_bit_for_bit() {
    for cfg in configs() {
        let dir = scratch("round-trip");
        let (_, key) = source_and_key(&dir, &cfg);
        let mut weights = random_weights(&cfg, 7);
        if cfg.gated_mlp() {
            // The tied form stores no table: it must come back tied.
            weights.w_e = TokenEmbedding::TiedToUnembed;
        }
        let path = dir.join(key.file_name());
        write(&path, &key, &weights).unwrap();
        let back = read(&path, &key, cfg.n_layers, 2).unwrap();
        let (want, got) = (arrays(&weights), arrays(&back));
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            assert_eq!((&w.0, w.1), (&g.0, g.1));
            let same =
                w.2.iter()
                    .zip(&g.2)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same && w.2.len() == g.2.len(), "{} differs", w.0);
        }
        assert_eq!(
            matches!(back.w_e, TokenEmbedding::TiedToUnembed),
            cfg.gated_mlp()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_changed_source_or_config_makes_the_file_stale() {
    let cfg = configs()[0].clone();
    let dir = scratch("stale");
    let (source, key) = source_and_key(&dir, &cfg);
    let path = dir.join(key.file_name());
    write(&path, &key, &random_weights(&cfg, 1)).unwrap();
    std::fs::write(&source, b"other weights").unwrap();
    let changed =
        CacheKey::new(std::slice::from_ref(&source), &cfg, &LoadOptions::default()).unwrap();
    assert_eq!(
        changed.file_name(),
        key.file_name(),
        "the same source keeps its file name"
    );
    assert!(matches!(
        read(&path, &changed, cfg.n_layers, 1),
        Err(Unusable::Stale)
    ));
    let mut other = cfg.clone();
    other.norm_eps = 1e-6;
    let other_key = CacheKey::new(
        std::slice::from_ref(&source),
        &other,
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        read(&path, &other_key, cfg.n_layers, 1),
        Err(Unusable::Stale)
    ));
    assert!(matches!(
        read(&dir.join("none.hlw"), &key, 2, 1),
        Err(Unusable::Absent)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Damages a copy of a good file with `damage` and expects `read` to call it corrupt.
fn expect_corrupt(what: &str, damage: impl Fn(&mut Vec<u8>)) {
    let cfg = configs()[1].clone();
    let dir = scratch("corrupt");
    let (_, key) = source_and_key(&dir, &cfg);
    let path = dir.join(key.file_name());
    write(&path, &key, &random_weights(&cfg, 3)).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    match read(&path, &key, cfg.n_layers, 2) {
        Err(Unusable::Corrupt(why)) => assert!(!why.is_empty()),
        Err(other) => panic!("{what}: {other:?}, expected Corrupt"),
        Ok(_) => panic!("{what}: a damaged file was used"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damage_anywhere_is_detected_and_never_used() {
    expect_corrupt("a flipped bit in the arrays", |b| b[4096 + 200] ^= 0x10);
    expect_corrupt("a flipped bit in the last array", |b| {
        let header_at = u64::from_le_bytes(b[8..16].try_into().unwrap()) as usize;
        b[header_at - 3] ^= 1;
    });
    expect_corrupt("a flipped bit in the header", |b| {
        let n = b.len();
        b[n - 10] ^= 0x20;
    });
    expect_corrupt("the last byte cut off", |b| {
        b.pop();
    });
    expect_corrupt("cut to its prefix", |b| b.truncate(20));
    expect_corrupt("an empty file", Vec::clear);
    expect_corrupt("another file's magic", |b| {
        b[..8].copy_from_slice(b"GGUFxxxx")
    });
    expect_corrupt("the header moved past the end", |b| {
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes())
    });
}

#[test]
fn a_damaged_file_is_rebuilt_from_the_source_and_replaced() {
    let cfg = configs()[0].clone();
    let dir = scratch("rebuild");
    let (source, _) = source_and_key(&dir, &cfg);
    let request = CacheRequest {
        policy: WeightCache::On(dir.join("cache")),
        sources: vec![source],
        processing: LoadOptions::default(),
    };
    let build = || Ok(random_weights(&cfg, 5));
    let (_, first) = cpu_weights(&request, &cfg, build).unwrap();
    assert!(matches!(first, CacheUse::Written(_)), "{first:?}");
    let (_, second) = cpu_weights(&request, &cfg, || panic!("built again")).unwrap();
    assert!(matches!(second, CacheUse::Read(_)), "{second:?}");
    let file = std::fs::read_dir(dir.join("cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[5000] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let (rebuilt, third) = cpu_weights(&request, &cfg, build).unwrap();
    assert!(matches!(third, CacheUse::Written(_)), "{third:?}");
    assert_eq!(arrays(&rebuilt), arrays(&random_weights(&cfg, 5)));
    let (_, fourth) = cpu_weights(&request, &cfg, || panic!("built again")).unwrap();
    assert!(matches!(fourth, CacheUse::Read(_)), "{fourth:?}");
    let leftovers = std::fs::read_dir(dir.join("cache")).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary files are left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn small_weights_are_not_cached_in_auto_mode_and_off_never_touches_the_disk() {
    let cfg = configs()[1].clone();
    let dir = scratch("policy");
    let (source, _) = source_and_key(&dir, &cfg);
    for policy in [WeightCache::Auto(dir.join("auto")), WeightCache::Off] {
        let request = CacheRequest {
            policy,
            sources: vec![source.clone()],
            processing: LoadOptions::default(),
        };
        let (_, used) = cpu_weights(&request, &cfg, || Ok(random_weights(&cfg, 2))).unwrap();
        assert_eq!(used, CacheUse::Unused);
    }
    assert!(!dir.join("auto").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_policy_parses_its_three_values_and_rejects_others() {
    let dir = PathBuf::from("/tmp/x");
    assert_eq!(
        WeightCache::parse("", dir.clone()).unwrap(),
        WeightCache::Auto(dir.clone())
    );
    assert_eq!(
        WeightCache::parse(" ON ", dir.clone()).unwrap(),
        WeightCache::On(dir.clone())
    );
    assert_eq!(
        WeightCache::parse("0", dir.clone()).unwrap(),
        WeightCache::Off
    );
    let err = WeightCache::parse("yes", dir).unwrap_err().to_string();
    assert!(
        err.contains("HOOKLENS_WEIGHT_CACHE=yes") && err.contains("auto, on or off"),
        "{err}"
    );
}

#[test]
fn processed_weights_get_their_own_file_and_key() {
    let cfg = configs()[0].clone();
    let dir = scratch("processed");
    let (source, key) = source_and_key(&dir, &cfg);
    let sources = std::slice::from_ref(&source);
    let processed = CacheKey::new(sources, &cfg, &LoadOptions::tl()).unwrap();
    assert_ne!(processed.file_name(), key.file_name());
    let path = dir.join(key.file_name());
    write(&path, &key, &random_weights(&cfg, 1)).unwrap();
    assert!(matches!(
        read(&path, &processed, cfg.n_layers, 1),
        Err(Unusable::Stale)
    ));
    let policy = WeightCache::On(dir.join("cache"));
    let request = |processing| CacheRequest {
        policy: policy.clone(),
        sources: vec![source.clone()],
        processing,
    };
    let build = || Ok(random_weights(&cfg, 3));
    let (plain, _) = cpu_weights(&request(LoadOptions::default()), &cfg, build).unwrap();
    let (tl, used) = cpu_weights(&request(LoadOptions::tl()), &cfg, build).unwrap();
    assert!(matches!(used, CacheUse::Written(_)), "{used:?}");
    assert_ne!(
        arrays(&plain),
        arrays(&tl),
        "processing changed the weights"
    );
    let (again, used) =
        cpu_weights(&request(LoadOptions::tl()), &cfg, || panic!("rebuilt")).unwrap();
    assert!(matches!(used, CacheUse::Read(_)), "{used:?}");
    assert_eq!(arrays(&again), arrays(&tl));
    let (plain_again, _) =
        cpu_weights(&request(LoadOptions::default()), &cfg, || panic!("rebuilt")).unwrap();
    assert_eq!(arrays(&plain_again), arrays(&plain));
    let _ = std::fs::remove_dir_all(&dir);
}
