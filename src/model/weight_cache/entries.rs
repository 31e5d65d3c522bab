//! The CPU weights as a list of named arrays (what the cache file stores), and back.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::cpu::gemm::PackedMatrix;
use crate::backend::cpu::mapped::MappedFile;
use crate::backend::host::empty_vec;
use crate::model::weights::{LayerWeights, TokenEmbedding, Weights};

/// One array of the weights, borrowed.
pub(super) enum Item<'a> {
    /// A plain vector (norm weights, biases, the embedding tables).
    Vector(&'a [f32]),
    /// A matrix in the GEMM's panel layout.
    Packed(&'a PackedMatrix),
}

/// Calls `visit(name, item)` for every array of `w`, in a fixed order.
pub(super) fn each_item<'a>(w: &'a Weights, visit: &mut dyn FnMut(String, Item<'a>)) {
    if let TokenEmbedding::Table(w_e) = &w.w_e {
        visit("w_e".into(), Item::Vector(w_e));
    }
    if let Some(v) = &w.w_pos {
        visit("w_pos".into(), Item::Vector(v));
    }
    for (l, layer) in w.layers.iter().enumerate() {
        for (field, v) in layer_vectors(layer) {
            if let Some(v) = v {
                visit(format!("layers.{l}.{field}"), Item::Vector(v));
            }
        }
        for (field, m) in layer_matrices(layer) {
            if let Some(m) = m {
                visit(format!("layers.{l}.{field}"), Item::Packed(m));
            }
        }
    }
    visit("ln_final_w".into(), Item::Vector(&w.ln_final_w));
    if let Some(v) = &w.ln_final_b {
        visit("ln_final_b".into(), Item::Vector(v));
    }
    visit("unembed".into(), Item::Packed(&w.unembed));
    if let Some(v) = &w.b_u {
        visit("b_u".into(), Item::Vector(v));
    }
}

/// A layer's vectors by field name (absent optional ones as `None`).
fn layer_vectors(l: &LayerWeights) -> [(&'static str, Option<&Vec<f32>>); 10] {
    [
        ("ln1_w", Some(&l.ln1_w)),
        ("ln1_b", l.ln1_b.as_ref()),
        ("b_q", l.b_q.as_ref()),
        ("b_k", l.b_k.as_ref()),
        ("b_v", l.b_v.as_ref()),
        ("b_o", l.b_o.as_ref()),
        ("ln2_w", Some(&l.ln2_w)),
        ("ln2_b", l.ln2_b.as_ref()),
        ("b_in", l.b_in.as_ref()),
        ("b_out", l.b_out.as_ref()),
    ]
}

/// A layer's packed matrices by field name (no gate: `None`).
fn layer_matrices(l: &LayerWeights) -> [(&'static str, Option<&PackedMatrix>); 7] {
    [
        ("w_q", Some(&l.w_q)),
        ("w_k", Some(&l.w_k)),
        ("w_v", Some(&l.w_v)),
        ("w_o", Some(&l.w_o)),
        ("w_in", Some(&l.w_in)),
        ("w_gate", l.w_gate.as_ref()),
        ("w_out", Some(&l.w_out)),
    ]
}

/// Where one array lies in the mapped file.
#[derive(Clone, Copy, Debug)]
pub(super) struct Placed {
    /// Byte offset in the file.
    pub offset: usize,
    /// Values (vectors) or, for packed matrices, the logical `[k, n]`.
    pub shape: Shape,
}

/// The shape an entry was written with.
#[derive(Clone, Copy, Debug)]
pub(super) enum Shape {
    /// `len` f32 values.
    Vector { len: usize },
    /// A packed `[k, n]` matrix.
    Packed { k: usize, n: usize },
}

/// Rebuilds the weights from the arrays at `placed` in `map`; `None` when an array the
/// structure needs is missing, has the wrong kind, or does not fit the mapping.
pub(super) fn from_mapped(
    map: &Arc<MappedFile>,
    placed: &HashMap<String, Placed>,
    n_layers: usize,
) -> Option<Weights> {
    let reader = Reader { map, placed };
    let layers = (0..n_layers)
        .map(|l| reader.layer(l))
        .collect::<Option<Vec<_>>>()?;
    Some(Weights {
        w_e: match reader.optional_vector("w_e")? {
            Some(table) => TokenEmbedding::Table(table),
            None => TokenEmbedding::TiedToUnembed,
        },
        w_pos: reader.optional_vector("w_pos")?,
        layers,
        ln_final_w: reader.vector("ln_final_w")?,
        ln_final_b: reader.optional_vector("ln_final_b")?,
        unembed: reader.packed("unembed")?,
        b_u: reader.optional_vector("b_u")?,
    })
}

struct Reader<'a> {
    map: &'a Arc<MappedFile>,
    placed: &'a HashMap<String, Placed>,
}

impl Reader<'_> {
    fn layer(&self, l: usize) -> Option<LayerWeights> {
        let v = |f: &str| self.vector(&format!("layers.{l}.{f}"));
        let o = |f: &str| self.optional_vector(&format!("layers.{l}.{f}"));
        let m = |f: &str| self.packed(&format!("layers.{l}.{f}"));
        Some(LayerWeights {
            ln1_w: v("ln1_w")?,
            ln1_b: o("ln1_b")?,
            w_q: m("w_q")?,
            b_q: o("b_q")?,
            w_k: m("w_k")?,
            b_k: o("b_k")?,
            w_v: m("w_v")?,
            b_v: o("b_v")?,
            w_o: m("w_o")?,
            b_o: o("b_o")?,
            ln2_w: v("ln2_w")?,
            ln2_b: o("ln2_b")?,
            w_in: m("w_in")?,
            b_in: o("b_in")?,
            w_gate: self.optional_packed(&format!("layers.{l}.w_gate"))?,
            w_out: m("w_out")?,
            b_out: o("b_out")?,
        })
    }

    /// The vector `name`, copied out of the mapping (the forward pass owns its vectors).
    fn vector(&self, name: &str) -> Option<Vec<f32>> {
        let Placed {
            offset,
            shape: Shape::Vector { len },
        } = *self.placed.get(name)?
        else {
            return None;
        };
        let bytes = self
            .map
            .get(offset..offset.checked_add(len.checked_mul(4)?)?)?;
        let values: &[f32] = bytemuck::try_cast_slice(bytes).ok()?;
        let mut out = empty_vec(len);
        out.extend_from_slice(values);
        Some(out)
    }

    /// `Some(None)` when `name` is absent, `None` when it is present but unreadable.
    fn optional_vector(&self, name: &str) -> Option<Option<Vec<f32>>> {
        match self.placed.contains_key(name) {
            true => self.vector(name).map(Some),
            false => Some(None),
        }
    }

    /// `Some(None)` when `name` is absent, `None` when it is present but unreadable.
    fn optional_packed(&self, name: &str) -> Option<Option<PackedMatrix>> {
        match self.placed.contains_key(name) {
            true => self.packed(name).map(Some),
            false => Some(None),
        }
    }

    /// The packed matrix `name`, reading the mapping in place.
    fn packed(&self, name: &str) -> Option<PackedMatrix> {
        let Placed {
            offset,
            shape: Shape::Packed { k, n },
        } = *self.placed.get(name)?
        else {
            return None;
        };
        PackedMatrix::from_mapped(Arc::clone(self.map), offset, k, n)
    }
}
