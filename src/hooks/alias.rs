//! TransformerLens 4.x hook names (its `TransformerBridge` names points after modules:
//! `blocks.0.attn.o.hook_in`, `blocks.0.hook_out`, ...) as aliases of the TL 2.x slots.
//!
//! An alias is another name for the same slot, not a copy: a hook on either name edits the one
//! activation, and the value and shape are TL 2.x's (for a LayerNorm, `ln1.hook_out` is the
//! normalized value after the affine; for an RMSNorm, before the weight, as `hook_normalized`).
//! Aliases are resolved to typed points before a pass, like every other name.

use super::point::{HookKind, HookPoint};
use crate::model::config::ModelConfig;

/// Which MLPs an alias applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mlp {
    /// Every model.
    Any,
    /// Gated MLPs (Llama) only.
    Gated,
    /// Ungated MLPs (GPT-2) only.
    Plain,
}

impl Mlp {
    fn holds(self, cfg: &ModelConfig) -> bool {
        match self {
            Mlp::Any => true,
            Mlp::Gated => cfg.gated_mlp(),
            Mlp::Plain => !cfg.gated_mlp(),
        }
    }
}

/// TL 4.x names after `blocks.L.`, with the TL 2.x kind each names (measured against TL 4.3's
/// bridge on GPT-2 and Llama).
const LAYER_ALIASES: [(&str, HookKind, Mlp); 20] = [
    ("hook_in", HookKind::ResidPre, Mlp::Any),
    ("ln1.hook_in", HookKind::ResidPre, Mlp::Any),
    ("ln1.hook_out", HookKind::Ln1Normalized, Mlp::Any),
    ("attn.hook_in", HookKind::Ln1Normalized, Mlp::Any),
    ("attn.q.hook_out", HookKind::Q, Mlp::Any),
    ("attn.k.hook_out", HookKind::K, Mlp::Any),
    ("attn.v.hook_out", HookKind::V, Mlp::Any),
    ("attn.o.hook_in", HookKind::Z, Mlp::Any),
    ("attn.hook_out", HookKind::AttnOut, Mlp::Any),
    ("attn.o.hook_out", HookKind::AttnOut, Mlp::Any),
    ("ln2.hook_in", HookKind::ResidMid, Mlp::Any),
    ("ln2.hook_out", HookKind::Ln2Normalized, Mlp::Any),
    ("mlp.hook_in", HookKind::Ln2Normalized, Mlp::Any),
    ("mlp.in.hook_out", HookKind::MlpPre, Mlp::Plain),
    ("mlp.in.hook_out", HookKind::MlpPreLinear, Mlp::Gated),
    ("mlp.gate.hook_out", HookKind::MlpPre, Mlp::Gated),
    ("mlp.out.hook_in", HookKind::MlpPost, Mlp::Any),
    ("mlp.hook_out", HookKind::MlpOut, Mlp::Any),
    ("mlp.out.hook_out", HookKind::MlpOut, Mlp::Any),
    ("hook_out", HookKind::ResidPost, Mlp::Any),
];

/// TL 4.x names of the global points.
const GLOBAL_ALIASES: [(&str, HookKind); 5] = [
    ("embed.hook_out", HookKind::Embed),
    ("pos_embed.hook_out", HookKind::PosEmbed),
    ("ln_final.hook_out", HookKind::LnFinalNormalized),
    ("unembed.hook_in", HookKind::LnFinalNormalized),
    ("unembed.hook_out", HookKind::Unembed),
];

/// The kind a TL 4.x per-layer name (the part after `blocks.L.`) stands for in this model.
pub fn layer_alias(suffix: &str, cfg: &ModelConfig) -> Option<HookKind> {
    LAYER_ALIASES
        .iter()
        .find(|(s, _, mlp)| *s == suffix && mlp.holds(cfg))
        .map(|&(_, kind, _)| kind)
}

/// The kind a TL 4.x global name stands for.
pub fn global_alias(name: &str) -> Option<HookKind> {
    GLOBAL_ALIASES
        .iter()
        .find(|(s, _)| *s == name)
        .map(|&(_, kind)| kind)
}

/// The point a full TL 4.x name stands for in this model (`blocks.3.hook_out` ->
/// `blocks.3.hook_resid_post`), without checking the layer against the model.
pub fn resolve_alias(name: &str, cfg: &ModelConfig) -> Option<HookPoint> {
    match name.strip_prefix("blocks.") {
        Some(rest) => {
            let (layer, suffix) = rest.split_once('.')?;
            let layer = layer.parse().ok()?;
            layer_alias(suffix, cfg).map(|kind| HookPoint::layer(kind, layer))
        }
        None => global_alias(name).map(HookPoint::global),
    }
}

impl HookPoint {
    /// The TL 4.x names of this point in this model, in table order (empty when it has none).
    pub fn aliases(&self, cfg: &ModelConfig) -> Vec<String> {
        match self.layer {
            Some(l) => LAYER_ALIASES
                .iter()
                .filter(|(_, kind, mlp)| *kind == self.kind && mlp.holds(cfg))
                .map(|(s, _, _)| format!("blocks.{l}.{s}"))
                .collect(),
            None => GLOBAL_ALIASES
                .iter()
                .filter(|(_, kind)| *kind == self.kind)
                .map(|(s, _)| s.to_string())
                .collect(),
        }
    }

    /// The TL 2.x name followed by the TL 4.x aliases.
    pub fn all_names(&self, cfg: &ModelConfig) -> Vec<String> {
        let mut names = vec![self.name()];
        names.extend(self.aliases(cfg));
        names
    }

    /// True when `name` is the TL 2.x name or one of the aliases of this point.
    pub fn answers_to(&self, name: &str, cfg: &ModelConfig) -> bool {
        self.all_names(cfg).iter().any(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_is_unique_per_architecture() {
        for gated in [false, true] {
            let mut seen = std::collections::HashSet::new();
            for (s, _, mlp) in LAYER_ALIASES {
                let applies = match mlp {
                    Mlp::Any => true,
                    Mlp::Gated => gated,
                    Mlp::Plain => !gated,
                };
                assert!(!applies || seen.insert(s), "{s} twice (gated {gated})");
            }
        }
    }

    #[test]
    fn no_alias_shadows_a_tl2_name() {
        use crate::hooks::point::LAYER_KINDS;
        for (s, _, _) in LAYER_ALIASES {
            assert!(LAYER_KINDS.iter().all(|k| k.suffix() != s), "{s}");
        }
        for (s, _) in GLOBAL_ALIASES {
            assert!(!s.starts_with("blocks."), "{s}");
        }
    }
}
