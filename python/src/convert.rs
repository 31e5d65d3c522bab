//! Python values to the library's inputs (token batches, residual streams, options), and
//! outputs back to numpy.

use hooklens::{Model, Output, PaddingSide, ReturnType, Tensor, TokenBatch};
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

/// Text, a list of texts (of any token lengths: shorter ones are padded with the model's pad
/// id on `side`, as TL's `to_tokens`), or integer token ids `[pos]` / `[batch, pos]`.
pub fn padded_token_batch(
    model: &Model,
    input: &Bound<'_, PyAny>,
    prepend_bos: bool,
    side: PaddingSide,
) -> PyResult<TokenBatch> {
    TokenBatch::padded(
        &token_rows(model, input, prepend_bos)?,
        side,
        model.pad_id(),
    )
    .py_err()
}

/// TL's `padding_side`: "left", "right", or None (TL's default, "right").
pub fn padding_side(value: Option<&str>) -> PyResult<PaddingSide> {
    value.map_or(Ok(PaddingSide::Right), |s| s.parse().py_err())
}

/// TL's `attention_mask` (integers or booleans, 1 at real positions, 0 at pads) for the
/// batch `tokens`, as that batch with the mask's spans. // mask: [batch, pos]
pub fn masked_batch(tokens: &TokenBatch, mask: &Bound<'_, PyAny>) -> PyResult<TokenBatch> {
    let np = mask.py().import("numpy")?;
    let arr = np.call_method1("asarray", (mask,))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    let (batch, seq) = (tokens.batch(), tokens.seq());
    let fits = shape == [batch, seq] || (batch == 1 && shape == [seq]);
    if !"iub".contains(kind.as_str()) || !fits {
        return Err(input_error(format!(
            "attention_mask must be an integer array of the tokens' shape [{batch}, {seq}], \
             got dtype {} and shape {shape:?}",
            arr.getattr("dtype")?.str()?
        )));
    }
    let arr = np.call_method1("ascontiguousarray", (arr, "int64"))?;
    let arr = arr.downcast_into::<PyArrayDyn<i64>>()?;
    let values: Vec<u8> = (arr.readonly().as_slice()?.iter())
        .map(|&v| match v {
            0 | 1 => Ok(v as u8),
            other => Err(input_error(format!(
                "attention_mask holds {other}: expected 0 (pad) or 1 (real)"
            ))),
        })
        .collect::<PyResult<_>>()?;
    tokens.with_attention_mask(&values).py_err()
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

/// A token batch's ids (pads included) as an int64 numpy array `[batch, pos]`.
pub fn batch_to_numpy(py: Python<'_>, tokens: &TokenBatch) -> PyResult<PyObject> {
    let rows: Vec<Vec<u32>> = (0..tokens.batch())
        .map(|b| tokens.row(b).to_vec())
        .collect();
    rows_to_numpy(py, &rows)
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
