//! The weights under TransformerLens' names and in its shapes: `model.W_Q` and the other
//! `HookedTransformer` properties, and `model.tl_weight(name)` for any name the library takes.

use hooklens::FactoredMatrix;
use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;

use crate::convert::tensor_to_numpy;
use crate::errors::IntoPyResult;
use crate::model::ModelPy;

impl ModelPy {
    /// A weight under its TL name as a float32 numpy array (a fresh copy), or the library's
    /// error mapped as every other error (an `InputError` for a name the model lacks).
    pub(crate) fn weight_array(&self, py: Python<'_>, name: &str) -> PyResult<PyObject> {
        let t = py.allow_threads(|| self.model.tl_weight(name)).py_err()?;
        tensor_to_numpy(py, t)
    }

    /// [`ModelPy::weight_array`] for a property: a weight the model lacks (`W_pos` of a rotary
    /// model, `W_gate` of an ungated MLP: the library's input error) is an `AttributeError`,
    /// so `hasattr` is false; any other error (a model on a device) is raised as it is.
    fn weight_attr(&self, py: Python<'_>, name: &str) -> PyResult<PyObject> {
        self.weight_array(py, name).map_err(|e| {
            if !e.is_instance_of::<crate::errors::InputError>(py) {
                return e;
            }
            let msg = e.value(py).to_string();
            match msg.starts_with(name) {
                true => PyAttributeError::new_err(msg),
                false => PyAttributeError::new_err(format!("{name}: {msg}")),
            }
        })
    }
}

#[pymethods]
impl ModelPy {
    /// A weight under any TL name the engine takes, as float32: `W_E`, `W_pos`, `W_U`,
    /// `b_U`, `ln_final.w`, `ln_final.b`, the stacked `W_Q` ... `b_out`, `_W_K`, `_W_V`, and
    /// per layer `blocks.{l}.attn.W_Q`, `blocks.{l}.attn.OV`, `blocks.{l}.ln1.w`, ...
    /// Biases a model lacks are zeros, as in TL; a weight it lacks raises `InputError`.
    fn tl_weight(&self, py: Python<'_>, name: &str) -> PyResult<PyObject> {
        self.weight_array(py, name)
    }

    /// The OV circuits as TL's `FactoredMatrix(W_V, W_O)`, `[n_layers, n_heads, d_model,
    /// d_model]` factored through `d_head` (`model.OV[layer, head]` for one head).
    #[getter(OV)]
    fn ov(&self, py: Python<'_>) -> PyResult<PyObject> {
        let fm = py.allow_threads(|| self.model.ov(None)).py_err()?;
        factored_to_py(py, fm)
    }

    /// The QK circuits as TL's `FactoredMatrix(W_Q, W_K.swapaxes(-2, -1))`, `[n_layers,
    /// n_heads, d_model, d_model]` factored through `d_head`.
    #[getter(QK)]
    fn qk(&self, py: Python<'_>) -> PyResult<PyObject> {
        let fm = py.allow_threads(|| self.model.qk(None)).py_err()?;
        factored_to_py(py, fm)
    }
}

/// A library `FactoredMatrix` as the Python `hooklens.FactoredMatrix` over float32 copies of
/// its factors.
fn factored_to_py(py: Python<'_>, fm: FactoredMatrix) -> PyResult<PyObject> {
    let (a, b) = fm.into_parts();
    let (a, b) = (tensor_to_numpy(py, a)?, tensor_to_numpy(py, b)?);
    let class = py.import("hooklens._factored")?.getattr("FactoredMatrix")?;
    Ok(class.call1((a, b))?.unbind())
}

/// Read-only properties, one per TL name, each a float32 array computed on access.
macro_rules! weight_properties {
    ($($(#[doc = $doc:expr])* $name:ident => $fn:ident;)*) => {
        #[pymethods]
        impl ModelPy {
            $(
                $(#[doc = $doc])*
                #[getter($name)]
                fn $fn(&self, py: Python<'_>) -> PyResult<PyObject> {
                    self.weight_attr(py, stringify!($name))
                }
            )*
        }
    };
}

weight_properties! {
    /// The token embedding. `[d_vocab, d_model]`
    W_E => w_e;
    /// The learned positional embedding (`AttributeError` for rotary models). `[n_ctx, d_model]`
    W_pos => w_pos;
    /// The unembedding. `[d_model, d_vocab]`
    W_U => w_u;
    /// The unembedding bias (zeros where the model has none). `[d_vocab]`
    b_U => b_u;
    /// Queries. `[n_layers, n_heads, d_model, d_head]`
    W_Q => w_q;
    /// Keys, repeated for every query head of a key/value group as TL. `[n_layers, n_heads, d_model, d_head]`
    W_K => w_k;
    /// Values, repeated for every query head of a key/value group as TL. `[n_layers, n_heads, d_model, d_head]`
    W_V => w_v;
    /// The attention output. `[n_layers, n_heads, d_head, d_model]`
    W_O => w_o;
    /// Query biases (zeros where the model has none). `[n_layers, n_heads, d_head]`
    b_Q => b_q;
    /// Key biases, repeated as `W_K`. `[n_layers, n_heads, d_head]`
    b_K => b_k;
    /// Value biases, repeated as `W_V`. `[n_layers, n_heads, d_head]`
    b_V => b_v;
    /// The attention output bias. `[n_layers, d_model]`
    b_O => b_o;
    /// The MLP input. `[n_layers, d_model, d_mlp]`
    W_in => w_in;
    /// The MLP gate (`AttributeError` for an ungated MLP). `[n_layers, d_model, d_mlp]`
    W_gate => w_gate;
    /// The MLP output. `[n_layers, d_mlp, d_model]`
    W_out => w_out;
    /// The MLP input bias. `[n_layers, d_mlp]`
    b_in => b_in;
    /// The MLP output bias. `[n_layers, d_model]`
    b_out => b_out;
}
