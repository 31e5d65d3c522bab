//! Models: load, free, dimensions, tokenizing.

use std::os::raw::{c_char, c_int};

use super::args::{c_opt_text, c_text, handle, out_ptr};
use super::boundary::{free_handle, guard};
use super::status::{hl_status, Failure};
use crate::device::Device;
use crate::model::known::resolve_model_arg;
use crate::model::Model;

/// A loaded model (opaque). Made by `hl_model_load`, freed by `hl_model_free`.
#[allow(non_camel_case_types)]
pub struct hl_model {
    /// The model.
    pub(crate) model: Model,
}

/// The model's calls read it only, so it may be shared between threads.
const _: fn() = || {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<Model>();
};

/// Loads a model: an HF checkpoint directory, a `.gguf` file, a known model name
/// (`"smollm2-135m"`, looked up in `$HOOKLENS_HOME`), or NULL for the default model. `device`
/// is `"cpu"`, `"auto"` (the CPU until the CUDA backend is verified on a GPU) or NULL (auto);
/// `"cuda"` / `"cuda:N"` select the experimental CUDA backend and fail with
/// `HL_ERR_UNSUPPORTED`, naming what is missing, where CUDA is not usable. On success
/// `*out` is a new model the caller owns and frees with `hl_model_free`; on failure `*out` is
/// set to NULL.
///
/// # Safety
/// `path_or_name` and `device` are NULL or NUL-terminated strings; `out` points to writable
/// memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hl_model_load(
    path_or_name: *const c_char,
    device: *const c_char,
    out: *mut *mut hl_model,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's guarantees on `out`, `path_or_name` and `device`.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = std::ptr::null_mut();
        // SAFETY: as above.
        let (arg, device) = unsafe {
            (
                c_opt_text(path_or_name, "path_or_name")?,
                c_opt_text(device, "device")?,
            )
        };
        let device = Device::parse(device.unwrap_or("auto"))?;
        let model = Model::load_on(&resolve_model_arg(arg)?, device)?;
        *out = Box::into_raw(Box::new(hl_model { model }));
        Ok(())
    })
}

/// Frees a model. NULL does nothing. Every call using the model must have returned, and the
/// caches made from it stay valid (they own their data).
///
/// # Safety
/// `model` is NULL or a model from `hl_model_load` not freed yet; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn hl_model_free(model: *mut hl_model) {
    // SAFETY: hl_model_load made the pointer with Box::into_raw; the caller frees it once.
    unsafe { free_handle(model) };
}

/// The model's layer count, attention heads per layer, residual width and vocabulary size.
/// Each out-pointer may be NULL when that value is not wanted.
///
/// # Safety
/// `model` is NULL or a live model; each out-pointer is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hl_model_dims(
    model: *const hl_model,
    n_layers: *mut i64,
    n_heads: *mut i64,
    d_model: *mut i64,
    d_vocab: *mut i64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller passes NULL or a live model.
        let cfg = unsafe { handle(model, "model") }?.model.config();
        let values = [cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_vocab];
        for (p, v) in [n_layers, n_heads, d_model, d_vocab]
            .into_iter()
            .zip(values)
        {
            // SAFETY: each out-pointer is NULL (skipped) or writable, as the caller promises.
            if let Some(slot) = unsafe { p.as_mut() } {
                *slot = v as i64;
            }
        }
        Ok(())
    })
}

/// Tokenizes `text` (TransformerLens' `to_tokens`: BOS first when `prepend_bos` is nonzero).
/// `*n_out` is set to the number of ids even when `capacity` is too small, in which case
/// nothing is written and the call fails with `HL_ERR_BUFFER_TOO_SMALL` (so a call with
/// capacity 0 and `ids_out` NULL asks for the size).
///
/// # Safety
/// `model` is NULL or a live model; `text` is NULL or a NUL-terminated string; `ids_out` is
/// NULL or has room for `capacity` ids; `n_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hl_tokenize(
    model: *const hl_model,
    text: *const c_char,
    prepend_bos: c_int,
    ids_out: *mut u32,
    capacity: usize,
    n_out: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's guarantees on each pointer.
        let (model, text, n_out) = unsafe {
            (
                handle(model, "model")?,
                c_text(text, "text")?,
                out_ptr(n_out, "n_out")?,
            )
        };
        let ids = model.model.tokenizer()?.to_tokens(text, prepend_bos != 0)?;
        *n_out = ids.len();
        if capacity < ids.len() {
            return Err(Failure::new(
                hl_status::HL_ERR_BUFFER_TOO_SMALL,
                format!(
                    "the text is {} tokens but capacity is {capacity}",
                    ids.len()
                ),
            ));
        }
        if ids_out.is_null() {
            return Err(Failure::null("ids_out"));
        }
        // SAFETY: non-NULL with room for `capacity >= ids.len()` ids (the caller's promise).
        unsafe { std::ptr::copy_nonoverlapping(ids.as_ptr(), ids_out, ids.len()) };
        Ok(())
    })
}
