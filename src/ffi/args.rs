//! Reading C arguments: NULL checks, UTF-8 text, and slices of caller memory with checked
//! sizes. Each helper turns a bad argument into a [`Failure`] naming the parameter.

use std::ffi::CStr;
use std::os::raw::c_char;

use super::status::{hl_status, Failure, FfiResult};
use crate::model::input::TokenBatch;

/// A required NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn c_text<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string living for 'a.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| {
        Failure::new(
            hl_status::HL_ERR_ARGUMENT,
            format!("{what} is not valid UTF-8"),
        )
    })
}

/// An optional NUL-terminated UTF-8 string (NULL is `None`).
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn c_opt_text<'a>(p: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's guarantee is passed on.
    unsafe { c_text(p, what) }.map(Some)
}

/// A required reference from a pointer to a live object.
///
/// # Safety
/// `p` is NULL or points to a valid `T` that is not written while `'a` lasts.
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> FfiResult<&'a T> {
    // SAFETY: `as_ref` checks NULL; validity is the caller's guarantee.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// A required out-pointer, as a mutable reference.
///
/// # Safety
/// `p` is NULL or points to writable memory for a `T`, not otherwise used while `'a` lasts.
pub(crate) unsafe fn out_ptr<'a, T>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    // SAFETY: `as_mut` checks NULL; validity is the caller's guarantee.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::null(what))
}

/// `batch * seq` token ids as a batch of `batch` rows of `seq` tokens, both at least 1.
///
/// # Safety
/// `tokens` is NULL or points to `batch * seq` readable `u32`s.
pub(crate) unsafe fn token_batch(
    tokens: *const u32,
    batch: usize,
    seq: usize,
) -> FfiResult<TokenBatch> {
    if tokens.is_null() {
        return Err(Failure::null("tokens"));
    }
    let n = batch.checked_mul(seq).filter(|&n| n > 0).ok_or_else(|| {
        Failure::new(
            hl_status::HL_ERR_ARGUMENT,
            format!("batch ({batch}) and seq ({seq}) must be at least 1 and their product fit in memory"),
        )
    })?;
    // SAFETY: non-NULL, and the caller guarantees `batch * seq` readable ids.
    let ids = unsafe { std::slice::from_raw_parts(tokens, n) }; // [batch, seq]
    let rows: Vec<&[u32]> = ids.chunks_exact(seq).collect();
    Ok(TokenBatch::from_rows(&rows)?)
}

/// As [`token_batch`], with TransformerLens' attention mask of `batch * seq` bytes (1 at
/// real positions, 0 at pads) as the batch's real spans
/// ([`TokenBatch::with_attention_mask`]).
///
/// # Safety
/// As [`token_batch`]; `mask` is NULL or points to `batch * seq` readable bytes.
pub(crate) unsafe fn masked_token_batch(
    tokens: *const u32,
    batch: usize,
    seq: usize,
    mask: *const u8,
) -> FfiResult<TokenBatch> {
    // SAFETY: the caller's guarantee on `tokens`.
    let tokens = unsafe { token_batch(tokens, batch, seq) }?;
    if mask.is_null() {
        return Err(Failure::null("attention_mask"));
    }
    // SAFETY: non-NULL, and the caller guarantees `batch * seq` readable bytes (a product
    // `token_batch` checked).
    let mask = unsafe { std::slice::from_raw_parts(mask, batch * seq) }; // [batch, seq]
    Ok(tokens.with_attention_mask(mask)?)
}

/// A caller's output buffer of `len` floats, which must hold `needed`.
///
/// # Safety
/// `p` is NULL or points to `len` writable `f32`s not otherwise used while `'a` lasts.
pub(crate) unsafe fn out_floats<'a>(
    p: *mut f32,
    len: usize,
    needed: usize,
    what: &str,
) -> FfiResult<&'a mut [f32]> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    if len < needed {
        return Err(Failure::new(
            hl_status::HL_ERR_BUFFER_TOO_SMALL,
            format!("{what} holds {len} floats but {needed} are needed"),
        ));
    }
    // SAFETY: non-NULL, and the caller guarantees `len` writable floats.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}
