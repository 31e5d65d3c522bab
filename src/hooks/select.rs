//! Choosing hook points: full TL names, TL short forms (`("z", 3)`), typed points or predicates.
//! Every selector is resolved to typed [`HookPoint`]s once, before a pass starts.

use std::fmt;

use super::alias::resolve_alias;
use super::point::{hook_points, HookKind, HookPoint, FINAL_KINDS, FIRST_KINDS, LAYER_KINDS};
use crate::error::{HookLensError, Result};
use crate::model::config::ModelConfig;

/// A way to name one or more hook points.
pub enum HookSelector {
    /// A full TL name, e.g. `blocks.3.attn.hook_z`, or a TL 4.x alias such as
    /// `blocks.3.attn.o.hook_in` (a name without "." or "hook_" is read as a short form, as
    /// TL's `get_act_name` does).
    Name(String),
    /// A TL short form: `("z", 3)`, `("pattern", 0, "attn")`, `("scale", 4, "ln1")`, `("embed",)`.
    /// Negative layers count from the end.
    Short {
        /// The activation name or alias (`z`, `resid_pre`, `attn`, `key`, ...).
        name: String,
        /// The layer; negative counts from the end.
        layer: Option<i64>,
        /// The sub-module (`attn`, `mlp`, `ln1`, `ln2`, ...), as TL's `layer_type`.
        layer_type: Option<String>,
    },
    /// An already typed point.
    Point(HookPoint),
    /// Every point whose TL 2.x name or one of whose TL 4.x aliases satisfies the predicate
    /// (opt-in points included). The predicate is called once per name, so a negative test
    /// (`|n| !n.contains("resid_pre")`) still matches a point through its aliases.
    Predicate(Box<dyn Fn(&str) -> bool>),
}

impl HookSelector {
    /// A selector from a predicate over full names.
    pub fn predicate(f: impl Fn(&str) -> bool + 'static) -> Self {
        HookSelector::Predicate(Box::new(f))
    }

    /// The hook points this selector names for a model, in firing order.
    pub fn resolve(&self, cfg: &ModelConfig) -> Result<Vec<HookPoint>> {
        match self {
            HookSelector::Name(name) => resolve_text(name, cfg).map(|p| vec![p]),
            HookSelector::Short {
                name,
                layer,
                layer_type,
            } => resolve_short(name, *layer, layer_type.as_deref(), cfg).map(|p| vec![p]),
            HookSelector::Point(point) => {
                check_point(point, cfg)?;
                Ok(vec![*point])
            }
            HookSelector::Predicate(pred) => Ok(points_matching(cfg, |n| pred(n))),
        }
    }
}

/// Every point of the model, opt-in ones included, for which `matches` holds on its TL 2.x
/// name or on one of its TL 4.x aliases, in firing order.
pub fn points_matching(cfg: &ModelConfig, matches: impl Fn(&str) -> bool) -> Vec<HookPoint> {
    hook_points(cfg, true)
        .into_iter()
        .filter(|p| p.all_names(cfg).iter().any(|n| matches(n)))
        .collect()
}

impl fmt::Debug for HookSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookSelector::Name(n) => write!(f, "Name({n:?})"),
            HookSelector::Short {
                name,
                layer,
                layer_type,
            } => write!(f, "Short({name:?}, {layer:?}, {layer_type:?})"),
            HookSelector::Point(p) => write!(f, "Point({})", p.name()),
            HookSelector::Predicate(_) => write!(f, "Predicate(..)"),
        }
    }
}

impl From<&str> for HookSelector {
    fn from(name: &str) -> Self {
        HookSelector::Name(name.to_string())
    }
}

impl From<String> for HookSelector {
    fn from(name: String) -> Self {
        HookSelector::Name(name)
    }
}

impl From<&String> for HookSelector {
    fn from(name: &String) -> Self {
        HookSelector::Name(name.clone())
    }
}

impl From<HookPoint> for HookSelector {
    fn from(point: HookPoint) -> Self {
        HookSelector::Point(point)
    }
}

impl From<(&str,)> for HookSelector {
    fn from((name,): (&str,)) -> Self {
        HookSelector::Short {
            name: name.to_string(),
            layer: None,
            layer_type: None,
        }
    }
}

impl From<(&str, i64)> for HookSelector {
    fn from((name, layer): (&str, i64)) -> Self {
        HookSelector::Short {
            name: name.to_string(),
            layer: Some(layer),
            layer_type: None,
        }
    }
}

impl From<(&str, i64, &str)> for HookSelector {
    fn from((name, layer, layer_type): (&str, i64, &str)) -> Self {
        HookSelector::Short {
            name: name.to_string(),
            layer: Some(layer),
            layer_type: Some(layer_type.to_string()),
        }
    }
}

/// Resolves a name typed as text: a full name, or a TL-style compact short form (`z3`,
/// `k6a`, `resid_pre2`) when it has no "." and does not start with "hook_".
pub fn resolve_text(name: &str, cfg: &ModelConfig) -> Result<HookPoint> {
    if name.contains('.') || name.starts_with("hook_") {
        return parse_full_name(name, cfg);
    }
    let (base, layer, layer_type) = split_compact(name);
    resolve_short(base, layer, layer_type, cfg)
}

/// Splits `k6a` into (`k`, Some(6), Some(`a`)); names without digits stay whole.
fn split_compact(name: &str) -> (&str, Option<i64>, Option<&str>) {
    let Some(start) = name.find(|c: char| c.is_ascii_digit()) else {
        return (name, None, None);
    };
    let end = name[start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(name.len(), |e| start + e);
    let layer = name[start..end].parse().ok();
    let rest = &name[end..];
    (
        name[..start].trim_end_matches('_'),
        layer,
        (!rest.is_empty()).then_some(rest),
    )
}

/// Parses a full TL name such as `blocks.3.attn.hook_z` or `ln_final.hook_scale`, or a TL 4.x
/// alias such as `blocks.3.hook_out` (see [`super::alias`]).
pub fn parse_full_name(name: &str, cfg: &ModelConfig) -> Result<HookPoint> {
    match parse_tl2_name(name).or_else(|| resolve_alias(name, cfg)) {
        Some(p) => check_point(&p, cfg).map(|()| p).map_err(|e| match e {
            HookLensError::UnknownHook { .. } => unknown_hook(name, cfg),
            other => other,
        }),
        None => Err(unknown_hook(name, cfg)),
    }
}

/// A typed point checked against a model (its layer exists, the kind exists for the
/// architecture); the error names it as a TL name would be named.
pub fn check_typed(point: HookPoint, cfg: &ModelConfig) -> Result<HookPoint> {
    check_point(&point, cfg)
        .map(|()| point)
        .map_err(|e| match e {
            HookLensError::UnknownHook { .. } => unknown_hook(&point.name(), cfg),
            other => other,
        })
}

/// The point a TL 2.x full name stands for, without checking it against a model.
fn parse_tl2_name(name: &str) -> Option<HookPoint> {
    if let Some(rest) = name.strip_prefix("blocks.") {
        let (layer, suffix) = rest.split_once('.').unwrap_or((rest, ""));
        let kind = LAYER_KINDS.iter().find(|k| k.suffix() == suffix);
        match (layer.parse::<usize>(), kind) {
            (Ok(layer), Some(&kind)) => Some(HookPoint::layer(kind, layer)),
            _ => None,
        }
    } else {
        FIRST_KINDS
            .into_iter()
            .chain(FINAL_KINDS)
            .find(|k| k.suffix() == name)
            .map(HookPoint::global)
    }
}

/// Resolves a TL short form as `get_act_name(name, layer, layer_type)` does, with negative
/// layers counted from the end.
pub fn resolve_short(
    name: &str,
    layer: Option<i64>,
    layer_type: Option<&str>,
    cfg: &ModelConfig,
) -> Result<HookPoint> {
    if (name.contains('.') || name.starts_with("hook_")) && layer.is_none() {
        return parse_full_name(name, cfg);
    }
    let name = match name {
        "attn" => "pattern",
        "attn_logits" => "attn_scores",
        "key" => "k",
        "query" => "q",
        "value" => "v",
        "mlp_pre" => "pre",
        "mlp_post" => "post",
        other => other,
    };
    let layer_type = match layer_type {
        Some("a") => Some("attn"),
        Some("m") => Some("mlp"),
        Some("b" | "block" | "blocks") => None,
        other => other,
    };
    let layer_type = match name {
        "q" | "k" | "v" | "z" | "rot_q" | "rot_k" | "result" | "pattern" | "attn_scores" => {
            Some("attn")
        }
        "pre" | "post" | "pre_linear" => Some("mlp"),
        _ => layer_type,
    };
    let layer_index = match layer {
        Some(l) => Some(normalize_layer(l, cfg.n_layers)?),
        None => None,
    };
    if matches!(name, "scale" | "normalized") && layer_index.is_some() && layer_type.is_none() {
        let l = layer.unwrap_or(0);
        return Err(HookLensError::UnknownHook {
            name: format!("(\"{name}\", {l})"),
            suggestions: vec![
                format!("(\"{name}\", {l}, \"ln1\")"),
                format!("(\"{name}\", {l}, \"ln2\")"),
            ],
        });
    }
    let mut full = String::new();
    match layer_index {
        Some(l) => full.push_str(&format!("blocks.{l}.")),
        None if matches!(name, "scale" | "normalized") && layer_type.is_none() => {
            full.push_str("ln_final.")
        }
        None => {}
    }
    if let Some(t) = layer_type {
        full.push_str(t);
        full.push('.');
    }
    full.push_str("hook_");
    full.push_str(name);
    parse_full_name(&full, cfg)
}

/// Maps a possibly negative layer index into `0..n_layers`.
pub fn normalize_layer(layer: i64, n_layers: usize) -> Result<usize> {
    let n = n_layers as i64;
    let l = if layer < 0 { layer + n } else { layer };
    if (0..n).contains(&l) {
        Ok(l as usize)
    } else {
        Err(HookLensError::input(format!(
            "layer {layer} is out of range for a model with {n_layers} layers (use 0..{} or -{n_layers}..-1)",
            n_layers.saturating_sub(1)
        )))
    }
}

fn check_point(point: &HookPoint, cfg: &ModelConfig) -> Result<()> {
    let layer_ok = match point.layer {
        Some(l) => point.kind.is_per_layer() && l < cfg.n_layers,
        None => !point.kind.is_per_layer(),
    };
    if layer_ok && point.kind == HookKind::AttnIn && !point.kind.exists_for(cfg) {
        return Err(HookLensError::input(format!(
            "`{}` needs one key/value head per query head, but this model has {} query heads \
             and {} key/value heads (TL refuses use_attn_in with grouped-query attention); \
             use hook_q_input, hook_k_input and hook_v_input instead",
            point.name(),
            cfg.n_heads,
            cfg.n_kv_heads
        )));
    }
    if layer_ok && point.kind.exists_for(cfg) {
        Ok(())
    } else {
        Err(unknown_hook(&point.name(), cfg))
    }
}

/// An [`HookLensError::UnknownHook`] with the three nearest valid names, TL 2.x names and
/// TL 4.x aliases alike.
pub fn unknown_hook(name: &str, cfg: &ModelConfig) -> HookLensError {
    let mut candidates: Vec<(usize, String)> = hook_points(cfg, true)
        .iter()
        .flat_map(|p| p.all_names(cfg))
        .map(|n| (edit_distance(name, &n), n))
        .collect();
    candidates.sort();
    HookLensError::UnknownHook {
        name: name.to_string(),
        suggestions: candidates.into_iter().take(3).map(|(_, n)| n).collect(),
    }
}

/// Levenshtein distance over bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn compact_forms_split() {
        assert_eq!(split_compact("k6a"), ("k", Some(6), Some("a")));
        assert_eq!(split_compact("resid_pre2"), ("resid_pre", Some(2), None));
        assert_eq!(split_compact("embed"), ("embed", None, None));
    }
}
