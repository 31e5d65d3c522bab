//! An activation cache saved with what it came from, and read back: a safetensors file with one
//! f32 tensor per hook point under its TL name (`blocks.0.attn.hook_z`), the int32 `tokens`
//! `[batch, pos]` and `attention_mask` `[batch, pos]` (1 real, 0 pad), and in the metadata `format`
//! ([`CACHE_FORMAT`]), `model`, `prompts` (a JSON list) and `hook_order` (the names in firing
//! order, a JSON list).

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::cache::{ActivationCache, NamedPoint};
use super::point::HookPoint;
use super::select::parse_full_name;
use crate::error::{HookLensError, Result};
use crate::model::config::ModelConfig;
use crate::model::input::TokenBatch;
use crate::tensor::Tensor;

/// The `format` metadata value that marks a hooklens activation cache.
pub const CACHE_FORMAT: &str = "hooklens-cache-1";

/// What a saved cache records besides the activations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CacheSource {
    /// The model: its path or name.
    pub model: String,
    /// The prompts the tokens came from (empty when the tokens were given directly).
    pub prompts: Vec<String>,
    /// More string metadata to keep (a key above takes precedence).
    pub extra: HashMap<String, String>,
}

/// A cache read back from a file.
pub struct SavedCache {
    /// The activations.
    pub cache: ActivationCache,
    /// The tokens, one row per sequence. `[batch][pos]`
    pub tokens: Vec<Vec<u32>>,
    /// The model and prompts from the metadata (`extra` holds every other metadata key).
    pub source: CacheSource,
}

impl ActivationCache {
    /// Writes the cache with its tokens, model and prompts (see the module docs); read it back
    /// with [`ActivationCache::load_safetensors`].
    pub fn save_with_source(
        &self,
        path: &Path,
        tokens: &TokenBatch,
        source: &CacheSource,
    ) -> Result<()> {
        let shape = vec![tokens.batch(), tokens.seq()];
        let ids: Vec<i32> = tokens.ids().iter().map(|&t| t as i32).collect();
        let mask = tokens.attention_mask().into_iter().map(i32::from).collect();
        let ints = [
            ("tokens".to_string(), ids, shape.clone()),
            ("attention_mask".to_string(), mask, shape),
        ];
        let order: Vec<String> = self.file_names().into_iter().flat_map(|(_, n)| n).collect();
        let mut meta = source.extra.clone();
        meta.extend([
            ("format".to_string(), CACHE_FORMAT.to_string()),
            ("model".to_string(), source.model.clone()),
            ("prompts".to_string(), json_list(&source.prompts)),
            ("hook_order".to_string(), json_list(&order)),
        ]);
        self.save_safetensors_with(path, &ints, Some(meta))
    }

    /// Reads a cache written by [`ActivationCache::save_with_source`] for a model of
    /// configuration `cfg` (which the names are resolved against). A file that is not
    /// safetensors, or lacks the `format` mark, or whose tensors do not match its hook list, is
    /// a [`HookLensError::Format`] naming the file.
    pub fn load_safetensors(path: &Path, cfg: &ModelConfig) -> Result<SavedCache> {
        let bytes = std::fs::read(path).map_err(|e| HookLensError::io(path, e))?;
        let bad = |why: String| HookLensError::format(path, why);
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let mut meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(CACHE_FORMAT) {
            return Err(bad(format!(
                "not a hooklens activation cache (no `format: {CACHE_FORMAT}` in its metadata)"
            )));
        }
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let order: Vec<String> = take_list(&mut meta, "hook_order").map_err(&bad)?;
        let (fired, names) = read_points(&st, &order, cfg).map_err(&bad)?;
        let tokens = read_tokens(&st).map_err(&bad)?;
        let source = CacheSource {
            prompts: take_list(&mut meta, "prompts").map_err(&bad)?,
            model: meta.remove("model").unwrap_or_default(),
            extra: meta,
        };
        let cache = ActivationCache::new(fired, cfg.clone()).with_file_names(names);
        Ok(SavedCache {
            cache,
            tokens,
            source,
        })
    }
}

fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// Removes metadata `key` and parses it as a JSON list of strings.
fn take_list(
    meta: &mut HashMap<String, String>,
    key: &str,
) -> std::result::Result<Vec<String>, String> {
    let text = meta
        .remove(key)
        .ok_or_else(|| format!("no `{key}` in the metadata"))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("metadata `{key}` is not a list of strings: {e}"))
}

/// The cached values in firing order, and the names each point was saved under.
type Points = (Vec<(HookPoint, Tensor)>, Vec<NamedPoint>);

/// The hook tensors in `order`, and the names each point was saved under.
fn read_points(
    st: &SafeTensors<'_>,
    order: &[String],
    cfg: &ModelConfig,
) -> std::result::Result<Points, String> {
    let mut fired = Vec::with_capacity(order.len());
    let mut names: Vec<NamedPoint> = Vec::new();
    for name in order {
        let point = parse_full_name(name, cfg).map_err(|e| format!("tensor {name}: {e}"))?;
        fired.push((point, read_f32(st, name)?));
        match names.iter_mut().find(|(p, _)| *p == point) {
            Some((_, list)) => list.push(name.clone()),
            None => names.push((point, vec![name.clone()])),
        }
    }
    Ok((fired, names))
}

/// An f32 tensor of the file.
fn read_f32(st: &SafeTensors<'_>, name: &str) -> std::result::Result<Tensor, String> {
    let view = st
        .tensor(name)
        .map_err(|_| format!("`hook_order` lists {name}, which the file lacks"))?;
    if view.dtype() != Dtype::F32 {
        return Err(format!("tensor {name} is {:?}, expected F32", view.dtype()));
    }
    let data = (view.data().chunks_exact(4))
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Tensor::new(data, view.shape().to_vec()).map_err(|e| format!("tensor {name}: {e}"))
}

/// The int32 `tokens` `[batch, pos]`, as rows.
fn read_tokens(st: &SafeTensors<'_>) -> std::result::Result<Vec<Vec<u32>>, String> {
    let view = st
        .tensor("tokens")
        .map_err(|_| "no `tokens` tensor".to_string())?;
    let (&[_, seq], Dtype::I32) = (view.shape(), view.dtype()) else {
        return Err(format!(
            "`tokens` is {:?} {:?}, expected I32 [batch, pos]",
            view.dtype(),
            view.shape()
        ));
    };
    let ids: Vec<u32> = (view.data().chunks_exact(4))
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
        .collect();
    Ok(ids.chunks(seq.max(1)).map(<[u32]>::to_vec).collect())
}
