//! Interventions as data: zero, scale, add a vector, or set values (patching, mean and
//! resample ablation) at a hook point, at chosen positions and heads, for one batch row.
//! They serialize to JSON and run inside the pass without a closure.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::point::{HookKind, HookPoint};
use super::select::{check_typed, resolve_text};
use crate::error::{HookLensError, Result};
use crate::layout::RowLayout;
use crate::model::config::ModelConfig;
use crate::tensor::Tensor;

/// What to do to the selected slices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    /// Set to zero (zero ablation).
    Zero,
    /// Multiply by a factor.
    Scale {
        /// The factor.
        factor: f32,
    },
    /// Add a vector to each selected slice (steering). Its length is the slice's: d_model
    /// for residual hooks, d_head for a head of `hook_z`, k_pos for a pattern row, ...
    Add {
        /// The vector.
        vector: Vec<f32>,
    },
    /// Replace with values from a tensor shaped like the hook's activation for one sequence
    /// (TL shape without the batch axis): activation patching from another run's cache, mean
    /// ablation (a mean over reference prompts), resample ablation (another prompt's value).
    Set {
        /// The source values (shared, so many variants can patch from one cache cheaply).
        values: Arc<Tensor>,
    },
}

/// Where an intervention applies: a typed point (what code builds), or text (a TL name,
/// TL 4.x alias or short form such as `z3`, as read from JSON or typed by a user), resolved
/// against the model when the intervention is. Serialized as the name either way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum HookTarget {
    /// A resolved point.
    Point(HookPoint),
    /// A name still to resolve.
    Name(String),
}

impl HookTarget {
    /// The point this names on a model.
    pub fn resolve(&self, cfg: &ModelConfig) -> Result<HookPoint> {
        match self {
            // A typed point built for another model (a layer past the end) is refused here.
            HookTarget::Point(p) => check_typed(*p, cfg),
            HookTarget::Name(name) => resolve_text(name, cfg),
        }
    }
}

impl From<HookPoint> for HookTarget {
    fn from(p: HookPoint) -> Self {
        HookTarget::Point(p)
    }
}

impl From<&str> for HookTarget {
    fn from(name: &str) -> Self {
        HookTarget::Name(name.to_string())
    }
}

impl From<String> for HookTarget {
    fn from(name: String) -> Self {
        HookTarget::Name(name)
    }
}

impl From<HookTarget> for String {
    fn from(t: HookTarget) -> String {
        match t {
            HookTarget::Point(p) => p.name(),
            HookTarget::Name(n) => n,
        }
    }
}

/// One intervention at one hook point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    /// The hook point: typed, or a TL name or short form (`blocks.3.attn.hook_z`, `z3`).
    pub hook: HookTarget,
    /// Positions (query positions for scores/pattern); `None` means every position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Vec<usize>>,
    /// Heads, for hooks with a head axis; `None` means every head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<Vec<usize>>,
    /// The operation.
    pub op: Op,
}

impl Intervention {
    /// An intervention at every position and head.
    pub fn new(hook: impl Into<HookTarget>, op: Op) -> Self {
        Intervention {
            hook: hook.into(),
            positions: None,
            heads: None,
            op,
        }
    }

    /// Restricts it to some positions.
    pub fn at_positions(mut self, positions: Vec<usize>) -> Self {
        self.positions = Some(positions);
        self
    }

    /// Restricts it to some heads.
    pub fn at_heads(mut self, heads: Vec<usize>) -> Self {
        self.heads = Some(heads);
        self
    }

    /// Checks it against a model and a sequence length and resolves the hook name.
    pub fn resolve(&self, cfg: &ModelConfig, seq_len: usize) -> Result<ResolvedIntervention> {
        let point = self.hook.resolve(cfg)?;
        let geometry = Geometry::of(point.kind, cfg, seq_len);
        let bad =
            |m: String| HookLensError::input(format!("intervention at {}: {m}", point.name()));
        if let Some(ps) = &self.positions {
            if let Some(&p) = ps.iter().find(|&&p| p >= seq_len) {
                return Err(bad(format!(
                    "position {p} is outside the {seq_len}-token sequence"
                )));
            }
        }
        match (&self.heads, geometry.heads) {
            (Some(_), 0) => {
                return Err(bad("this hook has no head axis; leave heads unset".into()))
            }
            (Some(hs), n) => {
                if let Some(&h) = hs.iter().find(|&&h| h >= n) {
                    return Err(bad(format!("head {h} is out of range ({n} heads)")));
                }
            }
            (None, _) => {}
        }
        let slice = if self.heads.is_some() {
            geometry.head_width
        } else {
            geometry.slice_width_all_heads()
        };
        match &self.op {
            Op::Add { vector } if vector.len() != slice => {
                return Err(bad(format!(
                    "the vector has {} values but each selected slice has {slice}",
                    vector.len()
                )))
            }
            Op::Set { values } if values.shape != geometry.sequence_shape => {
                return Err(HookLensError::HookShape {
                    name: point.name(),
                    expected: geometry.sequence_shape.clone(),
                    found: values.shape.clone(),
                })
            }
            _ => {}
        }
        Ok(ResolvedIntervention {
            point,
            positions: self.positions.clone(),
            heads: self.heads.clone(),
            op: self.op.clone(),
            geometry,
        })
    }
}

/// How an activation is laid out for one sequence, in packed rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    /// Heads on the head axis, 0 when there is none.
    pub heads: usize,
    /// Values per head (row kinds) or per query row (pattern kinds: k_pos).
    pub head_width: usize,
    /// True for `[heads, q_pos, k_pos]` kinds (scores, pattern).
    pub head_major: bool,
    /// The TL shape for one sequence.
    pub sequence_shape: Vec<usize>,
}

impl Geometry {
    /// The geometry of a hook kind.
    pub fn of(kind: HookKind, cfg: &ModelConfig, seq_len: usize) -> Self {
        let shape = HookPoint::layer(kind, 0).shape(cfg, 1, seq_len)[1..].to_vec();
        let (heads, head_width, head_major) = match kind {
            HookKind::Q | HookKind::RotQ | HookKind::Z => (cfg.n_heads, cfg.d_head, false),
            HookKind::K | HookKind::V | HookKind::RotK => (cfg.n_kv_heads, cfg.d_head, false),
            HookKind::Result | HookKind::AttnIn | HookKind::QInput => {
                (cfg.n_heads, cfg.d_model, false)
            }
            HookKind::KInput | HookKind::VInput => (cfg.n_kv_heads, cfg.d_model, false),
            HookKind::AttnScores | HookKind::Pattern => (cfg.n_heads, seq_len, true),
            _ => (0, shape[1..].iter().product(), false),
        };
        Geometry {
            heads,
            head_width,
            head_major,
            sequence_shape: shape,
        }
    }

    fn slice_width_all_heads(&self) -> usize {
        if self.heads == 0 || self.head_major {
            self.head_width
        } else {
            self.heads * self.head_width
        }
    }
}

/// An intervention checked against a model and sequence length.
#[derive(Clone, Debug)]
pub struct ResolvedIntervention {
    /// The hook point.
    pub point: HookPoint,
    /// Positions, `None` for all.
    pub positions: Option<Vec<usize>>,
    /// Heads, `None` for all.
    pub heads: Option<Vec<usize>>,
    /// The operation.
    pub op: Op,
    /// The activation layout.
    pub geometry: Geometry,
}

impl ResolvedIntervention {
    /// The lowest position it touches (0 when it touches all).
    pub fn first_position(&self) -> usize {
        self.positions
            .as_ref()
            .and_then(|p| p.iter().min().copied())
            .unwrap_or(0)
    }

    /// Applies it to sequence `seq` of a packed buffer laid out as `layout`.
    pub(crate) fn apply(&self, data: &mut [f32], layout: &RowLayout, seq: usize) {
        self.for_each_slice(layout, seq, |range, src| {
            self.apply_slice(&mut data[range], src)
        });
    }

    /// Calls `f(range in the packed buffer, offset in a Set source)` for every slice of
    /// sequence `seq` (laid out as `layout`) that the intervention touches, in order; each
    /// slice is one head's values, one row, or one pattern row. (The CPU applies the op to
    /// each; a GPU backend lists them for one kernel.)
    pub(crate) fn for_each_slice(
        &self,
        layout: &RowLayout,
        seq: usize,
        mut f: impl FnMut(std::ops::Range<usize>, usize),
    ) {
        let g = &self.geometry;
        let rows = &layout.seqs[seq];
        let all_heads: Vec<usize>;
        let heads: &[usize] = match &self.heads {
            Some(h) => h,
            None if g.head_major => {
                all_heads = (0..g.heads).collect();
                &all_heads
            }
            None => &[],
        };
        for (i, &pos) in rows.positions.iter().enumerate() {
            if let Some(ps) = &self.positions {
                if !ps.contains(&pos) {
                    continue;
                }
            }
            let row = rows.offset + i;
            if g.head_major {
                // Packed scores: per sequence a block [heads, n_rows, k_pos].
                let n = rows.positions.len();
                let k = g.head_width;
                for &h in heads {
                    let start = (rows.offset * g.heads + h * n + i) * k;
                    f(start..start + k, (h * layout.seq_len + pos) * k);
                }
            } else {
                let width = g.sequence_shape[1..].iter().product::<usize>();
                if heads.is_empty() {
                    f(row * width..(row + 1) * width, pos * width);
                } else {
                    let w = g.head_width;
                    for &h in heads {
                        let start = row * width + h * w;
                        f(start..start + w, pos * width + h * w);
                    }
                }
            }
        }
    }

    /// Applies the op to one slice; `src` is the slice's offset in a `Set` source tensor.
    fn apply_slice(&self, slice: &mut [f32], src: usize) {
        match &self.op {
            Op::Zero => slice.fill(0.0),
            Op::Scale { factor } => slice.iter_mut().for_each(|v| *v *= factor),
            Op::Add { vector } => slice.iter_mut().zip(vector).for_each(|(v, a)| *v += a),
            Op::Set { values } => slice.copy_from_slice(&values.data[src..src + slice.len()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_points_serialize_as_names_and_come_back_to_the_same_point() {
        let cfg = ModelConfig::gpt2_small();
        let typed = Intervention::new(HookPoint::layer(HookKind::Z, 3), Op::Zero).at_heads(vec![2]);
        let json = serde_json::to_string(&typed).unwrap();
        assert!(json.contains(r#""hook":"blocks.3.attn.hook_z""#), "{json}");
        let back: Intervention = serde_json::from_str(&json).unwrap();
        assert_eq!(back.hook, HookTarget::Name("blocks.3.attn.hook_z".into()));
        let (a, b) = (
            typed.resolve(&cfg, 4).unwrap(),
            back.resolve(&cfg, 4).unwrap(),
        );
        assert_eq!(a.point, b.point);
        // A typed point past the model's last layer is refused with the TL name.
        let far = Intervention::new(HookPoint::layer(HookKind::Z, 40), Op::Zero);
        let err = far.resolve(&cfg, 4).unwrap_err().to_string();
        assert!(err.contains("blocks.40.attn.hook_z"), "{err}");
    }
}
