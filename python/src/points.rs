//! Hook points as Python sees them (`hook.name`, `hook.layer()`), and Python values that name
//! hook points (full names, TL short-form tuples, predicates).

use hooklens::{HookPoint, HookSelector, ModelConfig};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::errors::input_error;

/// A hook point: what a hook function gets as its second argument, and the values of
/// `model.hook_dict`.
#[pyclass(name = "HookPoint", module = "hooklens", frozen)]
pub struct HookPointPy {
    /// The TransformerLens 2.x name, e.g. `blocks.3.attn.hook_z`.
    #[pyo3(get)]
    name: String,
    layer: Option<usize>,
    /// While a hook of a padded pass runs: TL's attention mask and the batch size.
    mask: Option<(Vec<u8>, usize)>, // [batch, pos]
}

impl HookPointPy {
    /// A point by name and layer.
    pub fn new(name: String, layer: Option<usize>) -> Self {
        HookPointPy {
            name,
            layer,
            mask: None,
        }
    }

    /// The point as a hook of a pass sees it: with the pass's attention mask `[batch, pos]`
    /// when it is padded.
    pub fn with_mask(mut self, mask: Option<&[u8]>, batch: usize) -> Self {
        self.mask = mask.map(|m| (m.to_vec(), batch));
        self
    }
}

#[pymethods]
impl HookPointPy {
    /// The block index, or `None` for points outside the blocks (`hook_embed`, `ln_final.*`).
    fn layer(&self) -> Option<usize> {
        self.layer
    }

    /// In a hook of a padded pass, the pass's attention mask: int64 `[batch, pos]`, 1 at real
    /// positions, 0 at pads; `None` when every position is real (and outside a pass).
    #[getter]
    fn attention_mask(&self, py: Python<'_>) -> PyResult<PyObject> {
        let Some((mask, batch)) = &self.mask else {
            return Ok(py.None());
        };
        let seq = (mask.len() / (*batch).max(1)).max(1);
        let rows: Vec<Vec<u32>> = (mask.chunks(seq))
            .map(|row| row.iter().map(|&v| u32::from(v)).collect())
            .collect();
        crate::convert::rows_to_numpy(py, &rows)
    }

    fn __repr__(&self) -> String {
        format!("HookPoint({:?})", self.name)
    }
}

/// A hook-point selector that can cross threads (built into a [`HookSelector`] where used).
#[derive(Clone, Debug)]
pub enum Selector {
    /// A full name or TL 4.x alias (or a compact short form such as `z3`).
    Name(String),
    /// `(name, layer, layer_type)` as TL's `get_act_name`.
    Short(String, Option<i64>, Option<String>),
    /// A typed point (what a predicate resolved to).
    Point(HookPoint),
}

impl Selector {
    /// The library's selector.
    pub fn to_hook_selector(&self) -> HookSelector {
        match self {
            Selector::Name(n) => HookSelector::Name(n.clone()),
            Selector::Short(name, layer, layer_type) => HookSelector::Short {
                name: name.clone(),
                layer: *layer,
                layer_type: layer_type.clone(),
            },
            Selector::Point(p) => HookSelector::Point(*p),
        }
    }
}

/// A name or a TL short-form tuple (`("z", 3)`, `("pattern", 0, "attn")`, `("scale",)`).
pub fn selector_of(obj: &Bound<'_, PyAny>) -> PyResult<Selector> {
    if let Ok(s) = obj.downcast::<PyString>() {
        return Ok(Selector::Name(s.to_str()?.to_string()));
    }
    if let Ok(t) = obj.downcast::<PyTuple>() {
        let name: String = t
            .get_item(0)
            .and_then(|n| n.extract())
            .map_err(|_| input_error(format!("a short form starts with a name: got {t}")))?;
        let layer: Option<i64> = match t.len() {
            1 => None,
            _ => t.get_item(1)?.extract()?,
        };
        let layer_type: Option<String> = match t.len() {
            0..=2 => None,
            3 => t.get_item(2)?.extract()?,
            _ => {
                return Err(input_error(format!(
                    "a short form has 1 to 3 items: got {t}"
                )))
            }
        };
        return Ok(Selector::Short(name, layer, layer_type));
    }
    Err(input_error(format!(
        "a hook point is named by a string or a tuple such as (\"z\", 3); got {}",
        obj.get_type().name()?
    )))
}

/// The points whose TL 2.x name or one of whose TL 4.x aliases satisfies a Python predicate,
/// in firing order (opt-in points included), each with the first name that matched (the TL
/// 2.x name when it does).
pub fn points_matching(
    cfg: &ModelConfig,
    points: &[HookPoint],
    pred: &Bound<'_, PyAny>,
) -> PyResult<Vec<(HookPoint, String)>> {
    let mut out = Vec::new();
    for p in points {
        for name in p.all_names(cfg) {
            if pred.call1((name.as_str(),))?.is_truthy()? {
                out.push((*p, name));
                break;
            }
        }
    }
    Ok(out)
}
