//! The activation cache of `run_with_cache`, and the filter choosing what goes into it.

use std::collections::HashMap;

use regex::Regex;

use super::point::{hook_points, HookPoint};
use super::select::{points_matching, unknown_hook, HookSelector};
use crate::error::{HookLensError, Result};
use crate::model::config::ModelConfig;
use crate::tensor::Tensor;

/// Which hook points to cache.
pub enum NamesFilter {
    /// Every default hook point (TL's `run_with_cache()`); opt-in points such as
    /// `attn.hook_result` are left out.
    All,
    /// These points (names, TL 4.x aliases, short forms or typed points).
    Names(Vec<HookSelector>),
    /// Every point, opt-in ones included, whose TL 2.x name or one of whose TL 4.x aliases
    /// the regex matches anywhere.
    Regex(Regex),
    /// Every point, opt-in ones included, whose TL 2.x name or one of whose TL 4.x aliases
    /// satisfies the predicate.
    Predicate(Box<dyn Fn(&str) -> bool>),
}

/// A selected point and the names its tensor is saved under (see
/// [`ActivationCache::save_safetensors`]).
pub type NamedPoint = (HookPoint, Vec<String>);

impl NamesFilter {
    /// A filter from a regular expression, with a clear error for a bad pattern.
    pub fn regex(pattern: &str) -> Result<Self> {
        Regex::new(pattern)
            .map(NamesFilter::Regex)
            .map_err(|e| HookLensError::input(format!("bad names regex `{pattern}`: {e}")))
    }

    /// A regex filter that must match at least one hook point of the model; one that matches
    /// none is [`HookLensError::UnknownHook`] with the nearest names as suggestions.
    pub fn regex_matching(pattern: &str, cfg: &ModelConfig) -> Result<Self> {
        let filter = NamesFilter::regex(pattern)?;
        if filter.resolve(cfg)?.is_empty() {
            return Err(unknown_hook(pattern, cfg));
        }
        Ok(filter)
    }

    /// The points selected for a model, in firing order.
    pub fn resolve(&self, cfg: &ModelConfig) -> Result<Vec<HookPoint>> {
        Ok(self
            .resolve_named(cfg)?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    /// The points selected, in firing order, each with the names the cache file stores it
    /// under: its TL 2.x name, unless the filter asked for it only by TL 4.x aliases (a name
    /// in [`NamesFilter::Names`], or a regex / predicate that matches an alias and not the
    /// TL 2.x name), in which case those aliases.
    pub fn resolve_named(&self, cfg: &ModelConfig) -> Result<Vec<NamedPoint>> {
        let mut named: Vec<NamedPoint> = match self {
            NamesFilter::All => hook_points(cfg, false)
                .into_iter()
                .map(|p| (p, vec![p.name()]))
                .collect(),
            NamesFilter::Regex(re) => matched_names(cfg, |n| re.is_match(n)),
            NamesFilter::Predicate(f) => matched_names(cfg, |n| f(n)),
            NamesFilter::Names(selectors) => {
                let mut v = Vec::new();
                for s in selectors {
                    v.extend(selector_names(s, cfg)?);
                }
                v
            }
        };
        named.sort_by_key(|(p, _)| p.slot(cfg.n_layers));
        let mut merged: Vec<NamedPoint> = Vec::with_capacity(named.len());
        for (point, names) in named {
            match merged.last_mut() {
                Some((last, have)) if *last == point => have.extend(names),
                _ => merged.push((point, names)),
            }
        }
        for (point, names) in &mut merged {
            let order = point.all_names(cfg);
            names.sort_by_key(|n| order.iter().position(|o| o == n));
            names.dedup();
        }
        Ok(merged)
    }
}

/// The points a name test selects, each under its TL 2.x name when the test matches it, else
/// under the first alias it matches.
fn matched_names(cfg: &ModelConfig, matches: impl Fn(&str) -> bool) -> Vec<NamedPoint> {
    points_matching(cfg, &matches)
        .into_iter()
        .map(|p| {
            let name = p.all_names(cfg).into_iter().find(|n| matches(n));
            (p, vec![name.unwrap_or_else(|| p.name())])
        })
        .collect()
}

/// The points one selector names, under the alias typed when it is a TL 4.x name.
fn selector_names(selector: &HookSelector, cfg: &ModelConfig) -> Result<Vec<NamedPoint>> {
    match selector {
        HookSelector::Predicate(f) => Ok(matched_names(cfg, |n| f(n))),
        HookSelector::Name(text) => {
            let points = selector.resolve(cfg)?;
            Ok(points
                .into_iter()
                .map(|p| {
                    let alias = p.aliases(cfg).contains(text);
                    (p, vec![if alias { text.clone() } else { p.name() }])
                })
                .collect())
        }
        _ => Ok(selector
            .resolve(cfg)?
            .into_iter()
            .map(|p| (p, vec![p.name()]))
            .collect()),
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

/// Cached activations by hook point, in firing order, indexable by full name (TL 2.x or a
/// TL 4.x alias) or short form.
pub struct ActivationCache {
    entries: Vec<(HookPoint, Tensor)>,
    index: HashMap<HookPoint, usize>,
    /// The names a point is saved under when they are not just its TL 2.x name.
    file_names: HashMap<HookPoint, Vec<String>>,
    cfg: ModelConfig,
}

impl ActivationCache {
    /// A cache of values in firing order. A point that fired more than once (`ln1` per
    /// q / k / v input when a layer's attention inputs are split) keeps its place and its last
    /// value, as TL's cache does.
    pub(crate) fn new(fired: Vec<(HookPoint, Tensor)>, cfg: ModelConfig) -> Self {
        let mut entries: Vec<(HookPoint, Tensor)> = Vec::with_capacity(fired.len());
        let mut index = HashMap::with_capacity(fired.len());
        for (point, tensor) in fired {
            match index.get(&point) {
                Some(&i) => entries[i] = (point, tensor),
                None => {
                    index.insert(point, entries.len());
                    entries.push((point, tensor));
                }
            }
        }
        ActivationCache {
            entries,
            index,
            file_names: HashMap::new(),
            cfg,
        }
    }

    /// A cache of `(point, value)` pairs in firing order for a model of configuration `cfg`,
    /// made outside a pass (the Python bindings rebuild one from their arrays to save it); a
    /// repeated point keeps its place and its last value, as in a pass's cache.
    pub fn from_entries(entries: Vec<(HookPoint, Tensor)>, cfg: ModelConfig) -> Self {
        ActivationCache::new(entries, cfg)
    }

    /// Records the names each point is saved under (from [`NamesFilter::resolve_named`]).
    pub(crate) fn with_file_names(mut self, named: Vec<NamedPoint>) -> Self {
        self.file_names = named
            .into_iter()
            .filter(|(p, names)| names.len() != 1 || names[0] != p.name())
            .collect();
        self
    }

    /// The activation at a point: `cache.get("blocks.0.attn.hook_z")`, `cache.get(("z", 0))`,
    /// `cache.get(("scale", 1, "ln1"))`, or by a TL 4.x alias: `cache.get("blocks.0.hook_out")`.
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
    /// The names each cached tensor is saved under, in firing order: the TL 2.x name, or the
    /// TL 4.x aliases the names filter asked for it by (one tensor per name asked for).
    pub fn file_names(&self) -> Vec<(HookPoint, Vec<String>)> {
        self.entries
            .iter()
            .map(|(p, _)| {
                let names = self.file_names.get(p).cloned();
                (*p, names.unwrap_or_else(|| vec![p.name()]))
            })
            .collect()
    }

    /// Writes the cache as a safetensors file: one f32 tensor per hook point, named by its TL
    /// 2.x name (or by the TL 4.x aliases it was asked for by, see
    /// [`ActivationCache::file_names`]), with the batch axis first (readable by numpy / torch
    /// `safetensors.load_file`).
    pub fn save_safetensors(&self, path: &std::path::Path) -> Result<()> {
        self.save_safetensors_with(path, &[], None)
    }

    /// [`ActivationCache::save_safetensors`] with extra int32 tensors (e.g. a padded batch's
    /// `tokens` and `attention_mask`, each `(name, values, shape)`) and string metadata.
    pub fn save_safetensors_with(
        &self,
        path: &std::path::Path,
        ints: &[(String, Vec<i32>, Vec<usize>)],
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> Result<()> {
        let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> = Vec::new();
        for (name, data, shape) in ints {
            let bytes: &[u8] = bytemuck::cast_slice(data);
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::I32, shape.clone(), bytes)
                    .map_err(|e| HookLensError::input(format!("cache tensor {name}: {e}")))?;
            views.push((name.clone(), view));
        }
        for ((_, t), (_, names)) in self.entries.iter().zip(self.file_names()) {
            for name in names {
                let bytes: &[u8] = bytemuck::cast_slice(&t.data);
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    t.shape.clone(),
                    bytes,
                )
                .map_err(|e| HookLensError::input(format!("cache tensor {name}: {e}")))?;
                views.push((name, view));
            }
        }
        safetensors::serialize_to_file(views, metadata, path).map_err(|e| match e {
            safetensors::SafeTensorError::IoError(io) => HookLensError::io(path, io),
            other => HookLensError::format(path, other.to_string()),
        })
    }
}
