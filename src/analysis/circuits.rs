//! The per-head OV and QK circuits as [`FactoredMatrix`]es, as TL's `model.OV` / `model.QK`
//! (and `model.blocks[l].attn.OV` / `.QK` for one layer).

use super::factored::{transpose_last, FactoredMatrix};
use crate::error::{HookLensError, Result};
use crate::model::Model;

impl Model {
    /// The OV circuit `W_V @ W_O` per head, factored (TL's `OV`): `a` = `W_V`
    /// `[H, d_model, d_head]`, `b` = `W_O` `[H, d_head, d_model]` for one layer, or all layers
    /// stacked (`[L, H, ...]`) for `None`. Grouped key/value heads are repeated for every query
    /// head, as TL's `W_V`.
    pub fn ov(&self, layer: Option<usize>) -> Result<FactoredMatrix> {
        let prefix = self.circuit_prefix(layer)?;
        let v = self.tl_weight(&format!("{prefix}W_V"))?; // [.., H, d_model, d_head]
        let o = self.tl_weight(&format!("{prefix}W_O"))?; // [.., H, d_head, d_model]
        FactoredMatrix::new(v, o)
    }

    /// The QK circuit `W_Q @ W_Kᵀ` per head, factored (TL's `QK`): `a` = `W_Q`
    /// `[H, d_model, d_head]`, `b` = `W_K` transposed `[H, d_head, d_model]` for one layer, or
    /// all layers stacked (`[L, H, ...]`) for `None`. Grouped keys are repeated for every query
    /// head, as TL's `W_K`.
    pub fn qk(&self, layer: Option<usize>) -> Result<FactoredMatrix> {
        let prefix = self.circuit_prefix(layer)?;
        let q = self.tl_weight(&format!("{prefix}W_Q"))?; // [.., H, d_model, d_head]
        let k = self.tl_weight(&format!("{prefix}W_K"))?; // [.., H, d_model, d_head]
        FactoredMatrix::new(q, transpose_last(&k))
    }

    /// The weight-name prefix of one layer's attention (`blocks.{l}.attn.`), or none for all.
    fn circuit_prefix(&self, layer: Option<usize>) -> Result<String> {
        let n = self.config().n_layers;
        match layer {
            None => Ok(String::new()),
            Some(l) if l < n => Ok(format!("blocks.{l}.attn.")),
            Some(l) => Err(HookLensError::input(format!(
                "layer {l} is out of range for a model of {n} layers"
            ))),
        }
    }
}
