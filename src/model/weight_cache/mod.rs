//! The packed-weight cache: the CPU weights of a model file, dequantised and packed, written
//! once to a file that later loads map instead of rebuilding them.
//!
//! A fresh process spends most of a load zeroing and filling new memory (the kernel clears
//! every page before the weights are written to it) and dequantising and packing. A cache file
//! is read through a mapping of the page cache: no page is cleared, nothing is converted or
//! packed, the packed matrices are used in place, and only the vectors (norm weights, biases,
//! the embedding table) are copied out. A file is used only when its key matches (the source
//! files' path, size, modification time and inode; the packed layout; the hooklens version;
//! the configuration) and every array matches its hash; otherwise the weights are built from
//! the source and the file is replaced. Writing one never fails a load: a write error is
//! reported on stderr and the model loads as usual.
//!
//! `HOOKLENS_WEIGHT_CACHE=auto|on|off` (default `auto`: models whose weights take at least
//! [`AUTO_MIN_BYTES`]) chooses; the files live in `HOOKLENS_WEIGHT_CACHE_DIR`, else
//! `$HOOKLENS_HOME/weight-cache`.

mod entries;
mod file;
mod key;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use key::CacheKey;

use self::file::Unusable;
use crate::error::{HookLensError, Result};
use crate::model::config::ModelConfig;
use crate::model::process::{process_weights, LoadOptions};
use crate::model::weights::Weights;

/// In `auto` mode, weights smaller than this are not cached (they build in milliseconds).
pub const AUTO_MIN_BYTES: usize = 32 << 20;

/// Whether the packed-weight cache is used, and where its files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightCache {
    /// Never read or written.
    Off,
    /// Used for weights of at least [`AUTO_MIN_BYTES`], in this directory.
    Auto(PathBuf),
    /// Used for every model loaded from files, in this directory.
    On(PathBuf),
}

impl WeightCache {
    /// The choice `HOOKLENS_WEIGHT_CACHE` makes (`auto` when unset), with the directory from
    /// `HOOKLENS_WEIGHT_CACHE_DIR` or `$HOOKLENS_HOME/weight-cache`. An unknown value is an
    /// error naming the accepted ones.
    pub fn from_env() -> Result<Self> {
        let dir = std::env::var_os("HOOKLENS_WEIGHT_CACHE_DIR")
            .filter(|v| !v.is_empty())
            .map_or_else(
                || super::known::hooklens_home().join("weight-cache"),
                PathBuf::from,
            );
        let value = std::env::var("HOOKLENS_WEIGHT_CACHE").unwrap_or_default();
        Self::parse(&value, dir)
    }

    /// `auto` (or empty), `on` / `1` or `off` / `0`, with files in `dir`.
    pub fn parse(value: &str, dir: PathBuf) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto(dir)),
            "on" | "1" => Ok(Self::On(dir)),
            "off" | "0" => Ok(Self::Off),
            other => Err(HookLensError::input(format!(
                "HOOKLENS_WEIGHT_CACHE={other}: expected auto, on or off"
            ))),
        }
    }
}

/// What the cache did during one load.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum CacheUse {
    /// Not used (off, too small, or no files to key it on).
    #[default]
    Unused,
    /// The weights came from the cache file; mapping and checking it took this long.
    Read(Duration),
    /// The weights were built and written to the cache, which took this long.
    Written(Duration),
    /// The weights were built; writing the cache failed (reported on stderr).
    WriteFailed,
}

/// A loader's request: the policy, the files the weights are read from and the processing
/// they get (the cache is keyed on all three).
#[derive(Clone, Debug)]
pub struct CacheRequest {
    /// The policy.
    pub policy: WeightCache,
    /// Every file the weights come from (the cache is keyed on all of them).
    pub sources: Vec<PathBuf>,
    /// TL's weight processing applied after the weights are built.
    pub processing: LoadOptions,
}

impl CacheRequest {
    /// No cache (random weights, or a caller that opted out).
    pub fn none() -> Self {
        Self {
            policy: WeightCache::Off,
            sources: Vec::new(),
            processing: LoadOptions::default(),
        }
    }
}

/// The CPU weights for `request`: from its cache file when one matches, else from `build`
/// then processed as `request.processing` says (and then written to the cache when the
/// policy says so).
pub(crate) fn cpu_weights(
    request: &CacheRequest,
    cfg: &ModelConfig,
    build: impl FnOnce() -> Result<Weights>,
) -> Result<(Weights, CacheUse)> {
    let processing = request.processing;
    let build = || build().map(|w| process_weights(w, cfg, &processing));
    let (dir, min_bytes) = match &request.policy {
        WeightCache::Off => return Ok((build()?, CacheUse::Unused)),
        WeightCache::Auto(dir) => (dir, AUTO_MIN_BYTES),
        WeightCache::On(dir) => (dir, 0),
    };
    let Some(key) = (!request.sources.is_empty())
        .then(|| CacheKey::new(&request.sources, cfg, &processing))
        .flatten()
    else {
        return Ok((build()?, CacheUse::Unused));
    };
    let path = dir.join(key.file_name());
    let started = Instant::now();
    let threads = crate::backend::cpu::threads::num_threads();
    match file::read(&path, &key, cfg.n_layers, threads) {
        Ok(weights) => return Ok((weights, CacheUse::Read(started.elapsed()))),
        Err(Unusable::Corrupt(why)) => notice(&format!(
            "the weight cache {} is damaged ({why}); rebuilding it",
            path.display()
        )),
        Err(Unusable::Absent | Unusable::Stale) => {}
    }
    let weights = build()?;
    if packed_bytes(&weights) < min_bytes {
        return Ok((weights, CacheUse::Unused));
    }
    let used = store(dir, &path, &key, &weights);
    Ok((weights, used))
}

/// Writes the cache file, reporting a failure on stderr.
fn store(dir: &Path, path: &Path, key: &CacheKey, weights: &Weights) -> CacheUse {
    let started = Instant::now();
    match std::fs::create_dir_all(dir).and_then(|()| file::write(path, key, weights)) {
        Ok(bytes) => {
            notice(&format!(
                "wrote the packed-weight cache {} ({} MB; later loads map it instead of \
                 unpacking the model; HOOKLENS_WEIGHT_CACHE=off turns it off)",
                path.display(),
                bytes >> 20
            ));
            CacheUse::Written(started.elapsed())
        }
        Err(e) => {
            notice(&format!(
                "could not write the weight cache {}: {e} (the model loaded as usual; \
                 HOOKLENS_WEIGHT_CACHE=off stops trying)",
                path.display()
            ));
            CacheUse::WriteFailed
        }
    }
}

/// Bytes of all arrays of `w`.
fn packed_bytes(w: &Weights) -> usize {
    let mut total = 0;
    entries::each_item(w, &mut |_, item| {
        total += match item {
            entries::Item::Vector(v) => v.len() * 4,
            entries::Item::Packed(m) => m.packed_bytes(),
        }
    });
    total
}

/// A one-line notice on stderr (the library's way of saying what it did instead of failing).
fn notice(message: &str) {
    eprintln!("hooklens: {message}");
}

#[cfg(test)]
mod tests;
