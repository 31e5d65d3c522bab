//! Activation caches: made by a pass, read by name, freed by the caller.

use std::ffi::CString;
use std::os::raw::{c_char, c_int};

use super::args::{c_opt_text, c_text, handle, out_ptr, token_batch};
use super::boundary::{free_handle, guard};
use super::model::hl_model;
use super::status::{hl_status, Failure};
use crate::hooks::{ActivationCache, NamesFilter};
use crate::model::input::{ReturnType, RunOptions};

/// Cached activations of one pass (opaque). Made by `hl_run_with_cache`, freed by
/// `hl_cache_free`; read-only, so several threads may read one cache at once.
#[allow(non_camel_case_types)]
pub struct hl_cache {
    /// The activations.
    cache: ActivationCache,
    /// Each entry's shape as C reads it, in the cache's firing order.
    shapes: Vec<Vec<i64>>,
    /// Each entry's TL name as a C string, in the same order.
    names: Vec<CString>,
}

impl hl_cache {
    fn new(cache: ActivationCache) -> Self {
        let shapes = cache
            .iter()
            .map(|(_, t)| t.shape.iter().map(|&d| d as i64).collect())
            .collect();
        let names = cache
            .names()
            .into_iter()
            .map(|n| CString::new(n).unwrap_or_default())
            .collect();
        hl_cache {
            cache,
            shapes,
            names,
        }
    }
}

/// Runs `tokens` (`batch` rows of `seq` ids) and caches the activations of every default
/// hook point (`names_regex` NULL), or of every hook point, opt-in ones included, whose name
/// or TL 4.x alias `names_regex` matches (a regex matching none fails with
/// `HL_ERR_UNKNOWN_HOOK`, naming the nearest names). No logits are computed. On success
/// `*out` is a new cache the caller owns and frees with `hl_cache_free`; on failure it is
/// NULL.
///
/// # Safety
/// `model` is NULL or a live model; `tokens` is NULL or holds `batch * seq` ids;
/// `names_regex` is NULL or a NUL-terminated string; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hl_run_with_cache(
    model: *const hl_model,
    tokens: *const u32,
    batch: usize,
    seq: usize,
    names_regex: *const c_char,
    out: *mut *mut hl_cache,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's guarantees on each pointer.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = std::ptr::null_mut();
        // SAFETY: as above.
        let (model, tokens, regex) = unsafe {
            (
                &handle(model, "model")?.model,
                token_batch(tokens, batch, seq)?,
                c_opt_text(names_regex, "names_regex")?,
            )
        };
        let filter = match regex {
            None => NamesFilter::All,
            Some(pattern) => NamesFilter::regex_matching(pattern, model.config())?,
        };
        let opts = RunOptions::returning(ReturnType::None);
        let (_, cache) = model.run_with_cache(&tokens, &filter, &opts)?;
        *out = Box::into_raw(Box::new(hl_cache::new(cache)));
        Ok(())
    })
}

/// The activation cached at `name` (a full TL name, a TL 4.x alias or a short form such as
/// `"z0"`): `*data` points to its values, row-major, batch first, with `*ndim` axes of sizes
/// `(*shape)[0..*ndim]`. Both pointers belong to the cache and stay valid until
/// `hl_cache_free`; do not write through them. A name that is not a hook point fails with
/// `HL_ERR_UNKNOWN_HOOK`; a valid one that was not cached with `HL_ERR_INPUT`.
///
/// # Safety
/// `cache` is NULL or a live cache; `name` is NULL or a NUL-terminated string; `data`,
/// `shape` and `ndim` are writable.
#[no_mangle]
pub unsafe extern "C" fn hl_cache_get(
    cache: *const hl_cache,
    name: *const c_char,
    data: *mut *const f32,
    shape: *mut *const i64,
    ndim: *mut c_int,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's guarantees on each pointer.
        let (cache, name, data, shape, ndim) = unsafe {
            (
                handle(cache, "cache")?,
                c_text(name, "name")?,
                out_ptr(data, "data")?,
                out_ptr(shape, "shape")?,
                out_ptr(ndim, "ndim")?,
            )
        };
        let tensor = cache.cache.get(name)?;
        let index = cache
            .cache
            .iter()
            .position(|(_, t)| std::ptr::eq(t, tensor))
            .ok_or_else(|| Failure::new(hl_status::HL_ERR_PANIC, "cache entry without a shape"))?;
        *data = tensor.data.as_ptr();
        *shape = cache.shapes[index].as_ptr();
        *ndim = cache.shapes[index].len() as c_int;
        Ok(())
    })
}

/// The number of activations in the cache (0 for NULL).
///
/// # Safety
/// `cache` is NULL or a live cache.
#[no_mangle]
pub unsafe extern "C" fn hl_cache_count(cache: *const hl_cache) -> usize {
    // SAFETY: the caller passes NULL or a live cache.
    unsafe { cache.as_ref() }.map_or(0, |c| c.names.len())
}

/// The TL name of the `index`-th cached activation, in firing order (a string owned by the
/// cache, valid until `hl_cache_free`), or NULL when `cache` is NULL or `index` is out of
/// range.
///
/// # Safety
/// `cache` is NULL or a live cache.
#[no_mangle]
pub unsafe extern "C" fn hl_cache_name(cache: *const hl_cache, index: usize) -> *const c_char {
    // SAFETY: the caller passes NULL or a live cache.
    let names = unsafe { cache.as_ref() }.map(|c| &c.names);
    names
        .and_then(|n| n.get(index))
        .map_or(std::ptr::null(), |n| n.as_ptr())
}

/// Frees a cache and every pointer `hl_cache_get` / `hl_cache_name` gave out of it. NULL does
/// nothing.
///
/// # Safety
/// `cache` is NULL or a cache from `hl_run_with_cache` not freed yet; it is invalid
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn hl_cache_free(cache: *mut hl_cache) {
    // SAFETY: hl_run_with_cache made the pointer with Box::into_raw; the caller frees it once.
    unsafe { free_handle(cache) };
}
