//! Python values to the library's inputs (token batches, residual streams, options), and
//! outputs back to numpy.

use hooklens::{Model, Output, ReturnType, Tensor, TokenBatch};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{PyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::errors::{input_error, IntoPyResult};

/// Text, a list of texts (equal token lengths), or integer token ids `[pos]` / `[batch, pos]`.
pub fn token_batch(
    model: &Model,
    input: &Bound<'_, PyAny>,
    prepend_bos: bool,
) -> PyResult<TokenBatch> {
    TokenBatch::from_rows(&token_rows(model, input, prepend_bos)?).py_err()
}

/// The token rows of text, a list of texts (any lengths, empty included), or integer ids
/// `[pos]` / `[batch, pos]`.
pub fn token_rows(
    model: &Model,
    input: &Bound<'_, PyAny>,
    prepend_bos: bool,
) -> PyResult<Vec<Vec<u32>>> {
    let texts = match input.downcast::<PyString>() {
        Ok(text) => Some(vec![text.to_str()?.to_string()]),
        Err(_) => text_list(input)?,
    };
    if let Some(texts) = texts {
        let tk = model.tokenizer().py_err()?;
        return texts
            .iter()
            .map(|t| tk.to_tokens(t, prepend_bos))
            .collect::<hooklens::Result<Vec<_>>>()
            .py_err();
    }
    let ids = int_array(input)?;
    let flat = ids_u32(&ids)?;
    match ids.shape().to_vec().as_slice() {
        [] | [_] => Ok(vec![flat]), // one id, or one row
        [batch, seq] => Ok((0..*batch)
            .map(|b| flat[b * seq..(b + 1) * seq].to_vec())
            .collect()),
        other => Err(input_error(format!(
            "token ids must have shape [pos] or [batch, pos], got {other:?}"
        ))),
    }
}

/// The strings of a non-empty list or tuple of strings, else `None`.
fn text_list(input: &Bound<'_, PyAny>) -> PyResult<Option<Vec<String>>> {
    let items: Vec<Bound<'_, PyAny>> = if let Ok(l) = input.downcast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = input.downcast::<PyTuple>() {
        t.iter().collect()
    } else {
        return Ok(None);
    };
    if items.is_empty() || !items[0].is_instance_of::<PyString>() {
        return Ok(None);
    }
    items
        .iter()
        .map(|i| i.extract())
        .collect::<PyResult<_>>()
        .map(Some)
}

/// Any integer array-like as an int64 numpy array.
pub fn int_array<'py>(input: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
    let np = input.py().import("numpy")?;
    let arr = np.call_method1("asarray", (input,))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    let empty = arr.getattr("size")?.extract::<usize>()? == 0; // `np.array([])` is float64
    if kind != "i" && kind != "u" && !empty {
        return Err(input_error(format!(
            "token ids must be integers, got an array of dtype {}",
            arr.getattr("dtype")?.str()?
        )));
    }
    let arr = np.call_method1("ascontiguousarray", (arr, "int64"))?;
    Ok(arr.downcast_into::<PyArrayDyn<i64>>()?)
}

fn ids_u32(ids: &Bound<'_, PyArrayDyn<i64>>) -> PyResult<Vec<u32>> {
    let ro = ids.readonly();
    ro.as_slice()?
        .iter()
        .map(|&v| {
            u32::try_from(v)
                .map_err(|_| input_error(format!("token id {v} is not a valid id (0 to 2^32-1)")))
        })
        .collect()
}

/// A float array-like `[batch, pos, d_model]` as a tensor (the residual of `start_at_layer`).
pub fn float_tensor(input: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let np = input.py().import("numpy")?;
    let arr = np.call_method1("ascontiguousarray", (input, "float32"))?;
    let arr = arr.downcast_into::<PyArrayDyn<f32>>()?;
    let shape = arr.shape().to_vec();
    Tensor::new(arr.readonly().as_slice()?.to_vec(), shape).py_err()
}

/// TL's `return_type`: "logits", "loss", "both" or None.
pub fn return_type(value: Option<&str>) -> PyResult<ReturnType> {
    match value {
        Some("logits") => Ok(ReturnType::Logits),
        Some("loss") => Ok(ReturnType::Loss),
        Some("both") => Ok(ReturnType::Both),
        None => Ok(ReturnType::None),
        Some(other) => Err(input_error(format!(
            "return_type must be \"logits\", \"loss\", \"both\" or None, got {other:?}"
        ))),
    }
}

/// A tensor as a numpy array, moving its values (no copy).
pub fn tensor_to_numpy(py: Python<'_>, t: Tensor) -> PyResult<PyObject> {
    let arr = ArrayD::from_shape_vec(IxDyn(&t.shape), t.data)
        .map_err(|e| input_error(format!("tensor shape: {e}")))?;
    Ok(PyArray::from_owned_array(py, arr).into_any().unbind())
}

/// Rows of equal length as an int64 numpy array `[batch, pos]` (`pos` may be 0).
pub fn rows_to_numpy(py: Python<'_>, rows: &[Vec<u32>]) -> PyResult<PyObject> {
    let seq = rows.first().map_or(0, Vec::len);
    if let Some(b) = rows.iter().position(|r| r.len() != seq) {
        return Err(input_error(format!(
            "sequences in a batch must have equal lengths: row 0 has {seq} tokens, row {b} has {}",
            rows[b].len()
        )));
    }
    let data: Vec<i64> = rows.iter().flatten().map(|&v| v as i64).collect();
    let arr = ArrayD::from_shape_vec(IxDyn(&[rows.len(), seq]), data)
        .map_err(|e| input_error(format!("token shape: {e}")))?;
    Ok(PyArray::from_owned_array(py, arr).into_any().unbind())
}

/// What TL's `forward` returns for `return_type`: logits, the loss (a float, or per token
/// `[batch, pos - 1]`), `(logits, loss)`, None, or the residual when the pass stopped early.
pub fn output_to_py(py: Python<'_>, out: Output, rt: ReturnType) -> PyResult<PyObject> {
    if let Some(resid) = out.residual {
        return tensor_to_numpy(py, resid);
    }
    let loss = match (out.loss_per_token, out.loss) {
        (Some(per_token), _) => Some(tensor_to_numpy(py, per_token)?),
        (None, Some(l)) => Some(l.into_pyobject(py)?.into_any().unbind()),
        _ => None,
    };
    let logits = out.logits.map(|l| tensor_to_numpy(py, l)).transpose()?;
    Ok(match rt {
        ReturnType::Logits => logits.unwrap_or_else(|| py.None()),
        ReturnType::Loss => loss.unwrap_or_else(|| py.None()),
        ReturnType::Both => (logits, loss).into_pyobject(py)?.into_any().unbind(),
        ReturnType::None => py.None(),
    })
}
