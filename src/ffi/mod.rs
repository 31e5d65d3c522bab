//! The C ABI: `include/hooklens.h` is generated from this module (cbindgen; the test
//! `tests/c_header.rs` fails when the checked-in header is stale).
//!
//! Conventions every function follows (`docs/c-abi.md` has the long form):
//! - Handles (`hl_model`, `hl_cache`) are opaque; each has a `_free` function, and freeing
//!   NULL does nothing.
//! - Every `int`-returning function returns 0 ([`hl_status::HL_OK`]) on success and a nonzero
//!   [`hl_status`] on failure, with the message in [`hl_last_error`] (thread-local).
//! - Nothing unwinds into C: a panic (a bug) is caught at the boundary and returned as
//!   [`hl_status::HL_ERR_PANIC`].
//! - A model may be used from several threads at once; a cache is read-only after it is made.

// The header lists the items module by module in this order (status codes, the library,
// models, passes, hooks, caches, sweeps), hence one group per line.
mod status;

mod boundary;

mod model;

mod run;

mod hook;

mod cache;

mod sweep_json;

mod args;
mod sweep_request;

pub use boundary::{hl_last_error, hl_set_threads, hl_string_free, hl_version};
pub use cache::{
    hl_cache, hl_cache_count, hl_cache_free, hl_cache_get, hl_cache_name, hl_run_with_cache,
};
pub use hook::{hl_hook_fn, CHook, CHookFn};
pub use model::{hl_model, hl_model_dims, hl_model_free, hl_model_load, hl_tokenize};
pub use run::{hl_run_logits, hl_run_logits_padded, hl_run_with_hook};
pub use status::hl_status;
pub use sweep_json::hl_sweep_json;
