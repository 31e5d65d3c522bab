//! A plain owned f32 tensor, row-major, used for inputs and outputs that leave the engine.

use serde::{Deserialize, Serialize};

use crate::error::{HookLensError, Result};

/// An owned row-major f32 tensor. Deserializing checks that the values fill the shape, as
/// [`Tensor::new`] does (a JSON intervention with a short `data` is an error, not a panic later).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TensorFields")]
pub struct Tensor {
    /// The values, row-major.
    pub data: Vec<f32>,
    /// The shape; `data.len()` is its product.
    pub shape: Vec<usize>,
}

/// A tensor as serialized, before its shape is checked.
#[derive(Deserialize)]
struct TensorFields {
    data: Vec<f32>,
    shape: Vec<usize>,
}

impl TryFrom<TensorFields> for Tensor {
    type Error = HookLensError;

    fn try_from(fields: TensorFields) -> Result<Self> {
        Tensor::new(fields.data, fields.shape)
    }
}

impl Tensor {
    /// A tensor from values and a shape whose product must equal `data.len()` (and fit in
    /// `usize`).
    pub fn new(data: Vec<f32>, shape: Vec<usize>) -> Result<Self> {
        let Some(numel) = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
            return Err(HookLensError::input(format!(
                "shape {shape:?} has more elements than fit in memory"
            )));
        };
        if numel != data.len() {
            return Err(HookLensError::input(format!(
                "{} values do not fill shape {shape:?} ({numel} elements)",
                data.len()
            )));
        }
        Ok(Tensor { data, shape })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The contiguous sub-tensor at a leading index (e.g. `[b, p]` of a `[b, p, d]` tensor).
    pub fn slice(&self, index: &[usize]) -> Result<&[f32]> {
        let (start, len) = sub_range(&self.shape, index)?;
        Ok(&self.data[start..start + len])
    }

    /// The element at a full index.
    pub fn at(&self, index: &[usize]) -> Result<f32> {
        if index.len() != self.shape.len() {
            return Err(HookLensError::input(format!(
                "index {index:?} has {} axes, the tensor has {}",
                index.len(),
                self.shape.len()
            )));
        }
        Ok(self.slice(index)?[0])
    }
}

/// Start and length of the contiguous block at a leading `index` into `shape`.
pub fn sub_range(shape: &[usize], index: &[usize]) -> Result<(usize, usize)> {
    if index.len() > shape.len() {
        return Err(HookLensError::input(format!(
            "index {index:?} has more axes than shape {shape:?}"
        )));
    }
    let mut start = 0;
    for (axis, (&i, &n)) in index.iter().zip(shape).enumerate() {
        if i >= n {
            return Err(HookLensError::input(format!(
                "index {i} is out of range for axis {axis} of shape {shape:?}"
            )));
        }
        start = start * n + i;
    }
    let len: usize = shape[index.len()..].iter().product();
    Ok((start * len, len))
}
