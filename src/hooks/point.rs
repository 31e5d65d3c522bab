//! Typed hook points: the TransformerLens names, their firing order and their shapes.

use crate::model::config::{ModelConfig, PositionKind};

/// What a hook point observes. Per-layer kinds carry their layer in [`HookPoint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookKind {
    /// `hook_embed` [b, p, d_model]: token embeddings.
    Embed,
    /// `hook_pos_embed` [b, p, d_model]: learned position embeddings (absent for rotary models).
    PosEmbed,
    /// `blocks.L.hook_resid_pre` [b, p, d_model].
    ResidPre,
    /// `blocks.L.hook_attn_in` [b, p, n_heads, d_model] (opt-in, models without grouped-query
    /// attention): the residual copied per head, the input of every head's q, k and v.
    AttnIn,
    /// `blocks.L.hook_q_input` [b, p, n_heads, d_model] (opt-in): each query head's input,
    /// before `ln1`.
    QInput,
    /// `blocks.L.hook_k_input` [b, p, n_kv_heads, d_model] (opt-in): each key head's input.
    KInput,
    /// `blocks.L.hook_v_input` [b, p, n_kv_heads, d_model] (opt-in): each value head's input.
    VInput,
    /// `blocks.L.ln1.hook_scale` [b, p, 1].
    Ln1Scale,
    /// `blocks.L.ln1.hook_normalized` [b, p, d_model].
    Ln1Normalized,
    /// `blocks.L.attn.hook_q` [b, p, n_heads, d_head] (before rotary).
    Q,
    /// `blocks.L.attn.hook_k` [b, p, n_kv_heads, d_head] (before rotary).
    K,
    /// `blocks.L.attn.hook_v` [b, p, n_kv_heads, d_head].
    V,
    /// `blocks.L.attn.hook_rot_q` [b, p, n_heads, d_head] (rotary models only).
    RotQ,
    /// `blocks.L.attn.hook_rot_k` [b, p, n_kv_heads, d_head] (rotary models only).
    RotK,
    /// `blocks.L.attn.hook_attn_scores` [b, n_heads, q_pos, k_pos], scaled, masked with -inf.
    AttnScores,
    /// `blocks.L.attn.hook_pattern` [b, n_heads, q_pos, k_pos].
    Pattern,
    /// `blocks.L.attn.hook_z` [b, p, n_heads, d_head].
    Z,
    /// `blocks.L.attn.hook_result` [b, p, n_heads, d_model] (opt-in: computed only when asked for).
    Result,
    /// `blocks.L.hook_attn_out` [b, p, d_model].
    AttnOut,
    /// `blocks.L.hook_resid_mid` [b, p, d_model].
    ResidMid,
    /// `blocks.L.hook_mlp_in` [b, p, d_model] (opt-in): a copy of the residual that only the
    /// MLP reads (an edit changes the MLP's input, not the residual stream).
    MlpIn,
    /// `blocks.L.ln2.hook_scale` [b, p, 1].
    Ln2Scale,
    /// `blocks.L.ln2.hook_normalized` [b, p, d_model].
    Ln2Normalized,
    /// `blocks.L.mlp.hook_pre` [b, p, d_mlp].
    MlpPre,
    /// `blocks.L.mlp.hook_pre_linear` [b, p, d_mlp] (gated MLPs only).
    MlpPreLinear,
    /// `blocks.L.mlp.hook_post` [b, p, d_mlp].
    MlpPost,
    /// `blocks.L.hook_mlp_out` [b, p, d_model].
    MlpOut,
    /// `blocks.L.hook_resid_post` [b, p, d_model].
    ResidPost,
    /// `ln_final.hook_scale` [b, p, 1].
    LnFinalScale,
    /// `ln_final.hook_normalized` [b, p, d_model].
    LnFinalNormalized,
    /// `hook_unembed` [b, p, d_vocab] (opt-in): the logits, at every position.
    Unembed,
}

/// The per-layer kinds in firing order.
pub const LAYER_KINDS: [HookKind; 26] = [
    HookKind::ResidPre,
    HookKind::AttnIn,
    HookKind::QInput,
    HookKind::KInput,
    HookKind::VInput,
    HookKind::Ln1Scale,
    HookKind::Ln1Normalized,
    HookKind::Q,
    HookKind::K,
    HookKind::V,
    HookKind::RotQ,
    HookKind::RotK,
    HookKind::AttnScores,
    HookKind::Pattern,
    HookKind::Z,
    HookKind::Result,
    HookKind::AttnOut,
    HookKind::ResidMid,
    HookKind::MlpIn,
    HookKind::Ln2Scale,
    HookKind::Ln2Normalized,
    HookKind::MlpPre,
    HookKind::MlpPreLinear,
    HookKind::MlpPost,
    HookKind::MlpOut,
    HookKind::ResidPost,
];

/// The global kinds that fire before the first block, in firing order.
pub const FIRST_KINDS: [HookKind; 2] = [HookKind::Embed, HookKind::PosEmbed];

/// The global kinds that fire after the last block, in firing order.
pub const FINAL_KINDS: [HookKind; 3] = [
    HookKind::LnFinalScale,
    HookKind::LnFinalNormalized,
    HookKind::Unembed,
];

impl HookKind {
    /// True for the kinds that live inside a block (`blocks.L.…`).
    pub fn is_per_layer(self) -> bool {
        !FIRST_KINDS.contains(&self) && !FINAL_KINDS.contains(&self)
    }

    /// The name after `blocks.L.` (per-layer kinds) or the whole name (global kinds).
    pub fn suffix(self) -> &'static str {
        match self {
            HookKind::Embed => "hook_embed",
            HookKind::PosEmbed => "hook_pos_embed",
            HookKind::ResidPre => "hook_resid_pre",
            HookKind::AttnIn => "hook_attn_in",
            HookKind::QInput => "hook_q_input",
            HookKind::KInput => "hook_k_input",
            HookKind::VInput => "hook_v_input",
            HookKind::Ln1Scale => "ln1.hook_scale",
            HookKind::Ln1Normalized => "ln1.hook_normalized",
            HookKind::Q => "attn.hook_q",
            HookKind::K => "attn.hook_k",
            HookKind::V => "attn.hook_v",
            HookKind::RotQ => "attn.hook_rot_q",
            HookKind::RotK => "attn.hook_rot_k",
            HookKind::AttnScores => "attn.hook_attn_scores",
            HookKind::Pattern => "attn.hook_pattern",
            HookKind::Z => "attn.hook_z",
            HookKind::Result => "attn.hook_result",
            HookKind::AttnOut => "hook_attn_out",
            HookKind::ResidMid => "hook_resid_mid",
            HookKind::MlpIn => "hook_mlp_in",
            HookKind::Ln2Scale => "ln2.hook_scale",
            HookKind::Ln2Normalized => "ln2.hook_normalized",
            HookKind::MlpPre => "mlp.hook_pre",
            HookKind::MlpPreLinear => "mlp.hook_pre_linear",
            HookKind::MlpPost => "mlp.hook_post",
            HookKind::MlpOut => "hook_mlp_out",
            HookKind::ResidPost => "hook_resid_post",
            HookKind::LnFinalScale => "ln_final.hook_scale",
            HookKind::LnFinalNormalized => "ln_final.hook_normalized",
            HookKind::Unembed => "hook_unembed",
        }
    }

    /// True when this kind fires for a model with this configuration.
    pub fn exists_for(self, cfg: &ModelConfig) -> bool {
        let rotary = matches!(cfg.positions, PositionKind::Rotary { .. });
        match self {
            HookKind::PosEmbed => !rotary,
            HookKind::RotQ | HookKind::RotK => rotary,
            HookKind::MlpPreLinear => cfg.gated_mlp(),
            // TL refuses `use_attn_in` with grouped-query attention: one input per head cannot
            // feed keys and values shared by several query heads.
            HookKind::AttnIn => cfg.n_kv_heads == cfg.n_heads,
            _ => true,
        }
    }

    /// True for hooks that cost memory or work and are computed only when asked for (TL's
    /// opt-in set: `use_attn_result`, `use_attn_in`, `use_split_qkv_input`, `use_hook_mlp_in`,
    /// and the logits).
    pub fn is_opt_in(self) -> bool {
        matches!(
            self,
            HookKind::Result
                | HookKind::MlpIn
                | HookKind::Unembed
                | HookKind::AttnIn
                | HookKind::QInput
                | HookKind::KInput
                | HookKind::VInput
        )
    }

    /// True for the per-head attention inputs (`hook_attn_in`, `hook_q_input`, ...): watching
    /// one of them makes its layer run `ln1` and the q, k, v products per head, as TL does
    /// with `use_attn_in` / `use_split_qkv_input`.
    pub fn is_split_input(self) -> bool {
        matches!(
            self,
            HookKind::AttnIn | HookKind::QInput | HookKind::KInput | HookKind::VInput
        )
    }
}

/// One hook point of one model: a kind, and a layer for per-layer kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookPoint {
    /// What the point observes.
    pub kind: HookKind,
    /// The block index for per-layer kinds, `None` for global ones.
    pub layer: Option<usize>,
}

impl HookPoint {
    /// A global point (`hook_embed`, `ln_final.hook_scale`, ...).
    pub fn global(kind: HookKind) -> Self {
        HookPoint { kind, layer: None }
    }

    /// A per-layer point (`blocks.{layer}.…`).
    pub fn layer(kind: HookKind, layer: usize) -> Self {
        HookPoint {
            kind,
            layer: Some(layer),
        }
    }

    /// The TransformerLens name, e.g. `blocks.3.attn.hook_z`.
    pub fn name(&self) -> String {
        match self.layer {
            Some(l) => format!("blocks.{l}.{}", self.kind.suffix()),
            None => self.kind.suffix().to_string(),
        }
    }

    /// Dense index of this point in a table with one entry per possible point of a model with
    /// `n_layers` blocks (see [`slot_count`]).
    pub fn slot(&self, n_layers: usize) -> usize {
        // Discriminants in firing order: FIRST_KINDS, then LAYER_KINDS, then FINAL_KINDS.
        let k = self.kind as usize;
        let (first, per_layer) = (FIRST_KINDS.len(), LAYER_KINDS.len());
        match self.kind {
            HookKind::Embed | HookKind::PosEmbed => k,
            // k - per_layer >= first: the final kinds follow every layer's slots.
            HookKind::LnFinalScale | HookKind::LnFinalNormalized | HookKind::Unembed => {
                k - per_layer + n_layers * per_layer
            }
            _ => first + self.layer.unwrap_or(0) * per_layer + (k - first),
        }
    }

    /// The TL shape of the activation at this point for a batch of `batch` x `seq` tokens.
    pub fn shape(&self, cfg: &ModelConfig, batch: usize, seq: usize) -> Vec<usize> {
        let (b, p) = (batch, seq);
        match self.kind {
            HookKind::Embed
            | HookKind::PosEmbed
            | HookKind::ResidPre
            | HookKind::MlpIn
            | HookKind::Ln1Normalized
            | HookKind::AttnOut
            | HookKind::ResidMid
            | HookKind::Ln2Normalized
            | HookKind::MlpOut
            | HookKind::ResidPost
            | HookKind::LnFinalNormalized => vec![b, p, cfg.d_model],
            HookKind::Ln1Scale | HookKind::Ln2Scale | HookKind::LnFinalScale => vec![b, p, 1],
            HookKind::Q | HookKind::RotQ | HookKind::Z => vec![b, p, cfg.n_heads, cfg.d_head],
            HookKind::K | HookKind::V | HookKind::RotK => vec![b, p, cfg.n_kv_heads, cfg.d_head],
            HookKind::AttnScores | HookKind::Pattern => vec![b, cfg.n_heads, p, p],
            HookKind::Result | HookKind::AttnIn | HookKind::QInput => {
                vec![b, p, cfg.n_heads, cfg.d_model]
            }
            HookKind::KInput | HookKind::VInput => vec![b, p, cfg.n_kv_heads, cfg.d_model],
            HookKind::Unembed => vec![b, p, cfg.d_vocab],
            HookKind::MlpPre | HookKind::MlpPreLinear | HookKind::MlpPost => {
                vec![b, p, cfg.d_mlp]
            }
        }
    }

    /// The shape with symbolic batch and position axes, for listings (`[batch, pos, 64]`).
    pub fn shape_label(&self, cfg: &ModelConfig) -> String {
        let dims = self.shape(cfg, 0, 0);
        let labels: Vec<String> = match self.kind {
            HookKind::AttnScores | HookKind::Pattern => vec![
                "batch".into(),
                dims[1].to_string(),
                "q_pos".into(),
                "k_pos".into(),
            ],
            _ => {
                let mut v = vec!["batch".to_string(), "pos".to_string()];
                v.extend(dims[2..].iter().map(|d| d.to_string()));
                v
            }
        };
        format!("[{}]", labels.join(", "))
    }
}

/// Number of entries in a dense slot table for a model with `n_layers` blocks.
pub fn slot_count(n_layers: usize) -> usize {
    FIRST_KINDS.len() + n_layers * LAYER_KINDS.len() + FINAL_KINDS.len()
}

/// Every hook point of a model in TransformerLens firing order. Opt-in points are included
/// only when `with_opt_in` is true.
pub fn hook_points(cfg: &ModelConfig, with_opt_in: bool) -> Vec<HookPoint> {
    let keep = |k: HookKind| k.exists_for(cfg) && (with_opt_in || !k.is_opt_in());
    let mut points = Vec::with_capacity(slot_count(cfg.n_layers));
    for kind in FIRST_KINDS {
        if keep(kind) {
            points.push(HookPoint::global(kind));
        }
    }
    for layer in 0..cfg.n_layers {
        for &kind in LAYER_KINDS.iter().filter(|&&k| keep(k)) {
            points.push(HookPoint::layer(kind, layer));
        }
    }
    for kind in FINAL_KINDS.into_iter().filter(|&k| keep(k)) {
        points.push(HookPoint::global(kind));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_discriminant_order() {
        let all = FIRST_KINDS.iter().chain(&LAYER_KINDS).chain(&FINAL_KINDS);
        for (i, k) in all.enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
        assert_eq!(HookKind::Unembed as usize, 30);
    }

    #[test]
    fn slots_are_dense_and_distinct() {
        for n_layers in [0, 1, 3] {
            let mut seen = vec![false; slot_count(n_layers)];
            let globals = FIRST_KINDS.iter().chain(&FINAL_KINDS);
            let mut all: Vec<HookPoint> = globals.map(|&k| HookPoint::global(k)).collect();
            for l in 0..n_layers {
                all.extend(LAYER_KINDS.iter().map(|&k| HookPoint::layer(k, l)));
            }
            for p in all {
                let s = p.slot(n_layers);
                assert!(!seen[s], "{n_layers} layers: slot {s} used twice");
                seen[s] = true;
            }
            assert!(seen.iter().all(|&x| x), "{n_layers} layers: a slot unused");
        }
    }
}
