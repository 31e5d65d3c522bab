//! Forward passes: logits, and logits with a C hook callback.

use std::cell::Cell;
use std::os::raw::{c_char, c_int, c_void};

use super::args::{c_text, handle, masked_token_batch, out_floats, token_batch};
use super::boundary::guard;
use super::hook::{hl_hook_fn, select_points, CHook};
use super::model::hl_model;
use super::status::{Failure, FfiResult};
use crate::hooks::Hooks;
use crate::model::input::{RunOptions, TokenBatch};
use crate::model::Model;

/// Checks the batch against the model and the output buffer against `[batch, seq, d_vocab]`.
///
/// # Safety
/// `logits_out` is NULL or has room for `logits_len` floats.
unsafe fn logits_buffer<'a>(
    model: &Model,
    tokens: &TokenBatch,
    logits_out: *mut f32,
    logits_len: usize,
) -> FfiResult<&'a mut [f32]> {
    tokens.validate(model.config())?;
    // logits_out: [batch, seq, d_vocab]
    let needed = tokens.ids().len() * model.config().d_vocab;
    // SAFETY: the caller's guarantee on `logits_out`.
    unsafe { out_floats(logits_out, logits_len, needed, "logits_out") }
}

/// Runs the pass and copies the logits into `dest`.
fn run_into(
    model: &Model,
    tokens: &TokenBatch,
    hooks: Option<&mut Hooks<'_>>,
    dest: &mut [f32],
) -> FfiResult<()> {
    let opts = RunOptions::default();
    let out = match hooks {
        Some(hooks) => model.run_with_hooks(tokens, hooks, &opts)?,
        None => model.forward(tokens, &opts)?,
    };
    let logits = out
        .logits
        .ok_or_else(|| Failure::from(crate::HookLensError::input("no logits")))?;
    dest[..logits.data.len()].copy_from_slice(&logits.data); // [batch, seq, d_vocab]
    Ok(())
}

/// Runs `tokens` (`batch` rows of `seq` ids, row-major) and writes the logits at every
/// position to `logits_out`, `[batch, seq, d_vocab]` row-major. `logits_len` is the buffer's
/// length in floats; one shorter than `batch * seq * d_vocab` fails with
/// `HL_ERR_BUFFER_TOO_SMALL` before any work (the message gives the size needed). Safe to
/// call from several threads at once on one model.
///
/// # Safety
/// `model` is NULL or a live model; `tokens` is NULL or holds `batch * seq` ids;
/// `logits_out` is NULL or has room for `logits_len` floats.
#[no_mangle]
pub unsafe extern "C" fn hl_run_logits(
    model: *const hl_model,
    tokens: *const u32,
    batch: usize,
    seq: usize,
    logits_out: *mut f32,
    logits_len: usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's guarantee on `tokens`.
        let read = || unsafe { token_batch(tokens, batch, seq) };
        // SAFETY: the caller's guarantees on `model` and `logits_out`.
        unsafe { logits_of(model, read, logits_out, logits_len) }
    })
}

/// As `hl_run_logits`, for a padded batch: `attention_mask` holds TransformerLens'
/// attention mask, `batch * seq` bytes row-major (`[batch, seq]`): 1 at a real position,
/// 0 at a pad. Pads are never attended to, positions count from each row's first real token
/// and a left-pad query's attention pattern is all zeros, as TL's `forward(tokens,
/// attention_mask=mask)`; the logits at real positions are those of each row run alone. Pads
/// may hold any id of the vocabulary. Each row's 1s must be one run, and every padded row
/// padded on one side (all rows' pads first, or all rows' pads last); another mask (a gap,
/// pads on both sides, a row without 1s, a value other than 0 and 1) fails with
/// `HL_ERR_INPUT`. A mask of 1s only is `hl_run_logits`.
///
/// # Safety
/// As `hl_run_logits`; `attention_mask` is NULL or holds `batch * seq` bytes.
#[no_mangle]
pub unsafe extern "C" fn hl_run_logits_padded(
    model: *const hl_model,
    tokens: *const u32,
    batch: usize,
    seq: usize,
    attention_mask: *const u8,
    logits_out: *mut f32,
    logits_len: usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's guarantees on `tokens` and `attention_mask`.
        let read = || unsafe { masked_token_batch(tokens, batch, seq, attention_mask) };
        // SAFETY: the caller's guarantees on `model` and `logits_out`.
        unsafe { logits_of(model, read, logits_out, logits_len) }
    })
}

/// The body of `hl_run_logits` and `hl_run_logits_padded`: the model, then the tokens
/// `read` reads, then the logits of the pass into `logits_out`.
///
/// # Safety
/// `model` is NULL or a live model; `read` is safe to call (its pointers are valid);
/// `logits_out` is NULL or has room for `logits_len` floats.
unsafe fn logits_of(
    model: *const hl_model,
    read: impl FnOnce() -> FfiResult<TokenBatch>,
    logits_out: *mut f32,
    logits_len: usize,
) -> FfiResult<()> {
    // SAFETY: the caller's guarantee on `model`.
    let model = &unsafe { handle(model, "model") }?.model;
    let tokens = read()?;
    // SAFETY: the caller's guarantee on `logits_out`.
    let dest = unsafe { logits_buffer(model, &tokens, logits_out, logits_len) }?;
    run_into(model, &tokens, None, dest)
}

/// As `hl_run_logits`, with `fn` called at every hook point `selector` names: a full
/// TransformerLens name (`"blocks.0.attn.hook_z"`, a TL 4.x alias, or a short form such as
/// `"z0"`), else a regex matched against every hook name, opt-in points included (`"hook_z$"`
/// matches each layer's `attn.hook_z`). A selector naming no point fails with
/// `HL_ERR_UNKNOWN_HOOK` and the nearest names in the message. `fn` gets the engine's own
/// buffer (see `hl_hook_fn`) and is called on this thread, in firing order; a nonzero return
/// stops the pass and is returned as it is (the message names the hook point). `logits_out`
/// is written only when the pass completes.
///
/// # Safety
/// As `hl_run_logits`; `selector` is NULL or a NUL-terminated string; `fn` is NULL or a
/// function following `hl_hook_fn`'s contract; `user` is passed to it untouched.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn hl_run_with_hook(
    model: *const hl_model,
    tokens: *const u32,
    batch: usize,
    seq: usize,
    selector: *const c_char,
    r#fn: hl_hook_fn,
    user: *mut c_void,
    logits_out: *mut f32,
    logits_len: usize,
) -> c_int {
    let aborted = Cell::new(0);
    let status = guard(|| {
        // SAFETY: the caller's guarantees on each pointer.
        let (model, tokens, selector) = unsafe {
            (
                &handle(model, "model")?.model,
                token_batch(tokens, batch, seq)?,
                c_text(selector, "selector")?,
            )
        };
        let fun = r#fn.ok_or_else(|| Failure::null("fn"))?;
        let points = select_points(selector, model.config())?;
        // SAFETY: as above.
        let dest = unsafe { logits_buffer(model, &tokens, logits_out, logits_len) }?;
        // SAFETY: the caller's guarantee on `fn` and `user`.
        let hook = unsafe { CHook::new(fun, user) };
        let mut hooks = Hooks::new();
        hook.register(&points, &mut hooks);
        let result = run_into(model, &tokens, Some(&mut hooks), dest);
        drop(hooks);
        aborted.set(hook.aborted());
        result
    });
    match aborted.get() {
        0 => status,
        callback_status => callback_status,
    }
}
