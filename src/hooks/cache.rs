//! The activation cache of `run_with_cache`, and the filter choosing what goes into it.

use std::collections::HashMap;

use regex::Regex;

use super::point::{hook_points, HookPoint};
use super::select::HookSelector;
use crate::error::{HookLensError, Result};
use crate::model::config::ModelConfig;
use crate::tensor::Tensor;

/// Which hook points to cache.
pub enum NamesFilter {
    /// Every default hook point (TL's `run_with_cache()`); opt-in points such as
    /// `attn.hook_result` are left out.
    All,
    /// These points (names, short forms or typed points).
    Names(Vec<HookSelector>),
    /// Every point, opt-in ones included, whose full name the regex matches anywhere.
    Regex(Regex),
    /// Every point, opt-in ones included, whose full name satisfies the predicate.
    Predicate(Box<dyn Fn(&str) -> bool>),
}

impl NamesFilter {
    /// A filter from a regular expression, with a clear error for a bad pattern.
    pub fn regex(pattern: &str) -> Result<Self> {
        Regex::new(pattern)
            .map(NamesFilter::Regex)
            .map_err(|e| HookLensError::input(format!("bad names regex `{pattern}`: {e}")))
    }

    /// The points selected for a model, in firing order.
    pub fn resolve(&self, cfg: &ModelConfig) -> Result<Vec<HookPoint>> {
        let mut points = match self {
            NamesFilter::All => hook_points(cfg, false),
            NamesFilter::Regex(re) => hook_points(cfg, true)
                .into_iter()
                .filter(|p| re.is_match(&p.name()))
                .collect(),
            NamesFilter::Predicate(f) => hook_points(cfg, true)
                .into_iter()
                .filter(|p| f(&p.name()))
                .collect(),
            NamesFilter::Names(selectors) => {
                let mut v = Vec::new();
                for s in selectors {
                    v.extend(s.resolve(cfg)?);
                }
                v
            }
        };
        points.sort_by_key(|p| p.slot(cfg.n_layers));
        points.dedup();
        Ok(points)
    }
}

impl<S: Into<HookSelector>> From<Vec<S>> for NamesFilter {
    fn from(names: Vec<S>) -> Self {
        NamesFilter::Names(names.into_iter().map(Into::into).collect())
    }
}

impl From<Regex> for NamesFilter {
    fn from(re: Regex) -> Self {
        NamesFilter::Regex(re)
    }
}

/// Cached activations by hook point, in firing order, indexable by full name or short form.
pub struct ActivationCache {
    entries: Vec<(HookPoint, Tensor)>,
    index: HashMap<HookPoint, usize>,
    cfg: ModelConfig,
}

impl ActivationCache {
    pub(crate) fn new(entries: Vec<(HookPoint, Tensor)>, cfg: ModelConfig) -> Self {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (*p, i))
            .collect();
        ActivationCache {
            entries,
            index,
            cfg,
        }
    }

    /// The activation at a point: `cache.get("blocks.0.attn.hook_z")`, `cache.get(("z", 0))`,
    /// `cache.get(("scale", 1, "ln1"))`.
    pub fn get(&self, selector: impl Into<HookSelector>) -> Result<&Tensor> {
        let selector = selector.into();
        let points = selector.resolve(&self.cfg)?;
        let [point] = points.as_slice() else {
            return Err(HookLensError::input(format!(
                "{selector:?} names {} hook points; the cache is indexed by one",
                points.len()
            )));
        };
        self.index
            .get(point)
            .map(|&i| &self.entries[i].1)
            .ok_or_else(|| {
                HookLensError::input(format!(
                    "`{}` is a valid hook point but was not cached (widen names_filter)",
                    point.name()
                ))
            })
    }

    /// Full names of the cached points, in firing order.
    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|(p, _)| p.name()).collect()
    }

    /// The cached points and tensors, in firing order.
    pub fn iter(&self) -> impl Iterator<Item = (&HookPoint, &Tensor)> {
        self.entries.iter().map(|(p, t)| (p, t))
    }

    /// Number of cached activations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes the entries out, in firing order.
    pub fn into_entries(self) -> Vec<(HookPoint, Tensor)> {
        self.entries
    }
}

impl ActivationCache {
    /// Writes the cache as a safetensors file: one f32 tensor per hook point, named by its TL
    /// name, with the batch axis first (readable by numpy / torch `safetensors.load_file`).
    pub fn save_safetensors(&self, path: &std::path::Path) -> Result<()> {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = self
            .entries
            .iter()
            .map(|(p, t)| {
                let bytes: &[u8] = bytemuck::cast_slice(&t.data);
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    t.shape.clone(),
                    bytes,
                )
                .map(|v| (p.name(), v))
                .map_err(|e| HookLensError::input(format!("cache tensor {}: {e}", p.name())))
            })
            .collect::<Result<_>>()?;
        safetensors::serialize_to_file(views, None, path).map_err(|e| match e {
            safetensors::SafeTensorError::IoError(io) => HookLensError::io(path, io),
            other => HookLensError::format(path, other.to_string()),
        })
    }
}
