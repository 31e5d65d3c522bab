//! Status codes and the failure every entry point reports through them.

use std::os::raw::c_int;

use crate::error::HookLensError;

/// The status every `int`-returning function gives: 0 on success, one of the others on
/// failure (the message is in `hl_last_error()`). A hook callback's own nonzero return is
/// passed back unchanged instead, so callbacks should use values outside this list (e.g. 100
/// and up) to tell their aborts apart.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum hl_status {
    /// Success.
    HL_OK = 0,
    /// A pointer that must not be NULL was NULL.
    HL_ERR_NULL = 1,
    /// A bad argument: a zero or overflowing size, text that is not UTF-8, ...
    HL_ERR_ARGUMENT = 2,
    /// An output buffer is too small; the size needed is reported (through `n_out`, or in the
    /// message).
    HL_ERR_BUFFER_TOO_SMALL = 3,
    /// A file could not be read or written.
    HL_ERR_IO = 4,
    /// A model file is malformed, truncated, or does not fit its configuration.
    HL_ERR_MODEL_FILE = 5,
    /// Something this version does not support (a CUDA device, an architecture, a dtype).
    HL_ERR_UNSUPPORTED = 6,
    /// A hook name or regex names no hook point; the message lists the nearest names.
    HL_ERR_UNKNOWN_HOOK = 7,
    /// Invalid input: a token id out of range, a sequence longer than the context, a bad
    /// sweep option, a tokenizer failure, ...
    HL_ERR_INPUT = 8,
    /// A hook or intervention tried an edit the engine refuses (a shape change).
    HL_ERR_HOOK = 9,
    /// A JSON request that does not parse or does not fit the schema (an unknown key, a
    /// missing or mistyped value).
    HL_ERR_JSON = 10,
    /// A bug in hooklens: a panic caught at the boundary.
    HL_ERR_PANIC = 11,
}

/// A failed call: the status returned and the message kept for `hl_last_error()`.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What the call returns.
    pub status: c_int,
    /// What `hl_last_error()` says.
    pub message: String,
}

impl Failure {
    /// A failure with a status of the list.
    pub fn new(status: hl_status, message: impl Into<String>) -> Self {
        Failure {
            status: status as c_int,
            message: message.into(),
        }
    }

    /// A required pointer argument was NULL.
    pub fn null(what: &str) -> Self {
        Failure::new(hl_status::HL_ERR_NULL, format!("{what} is NULL"))
    }
}

impl From<HookLensError> for Failure {
    fn from(e: HookLensError) -> Self {
        let status = match &e {
            HookLensError::Io { .. } | HookLensError::Write { .. } => hl_status::HL_ERR_IO,
            HookLensError::Format { .. }
            | HookLensError::MissingTensor { .. }
            | HookLensError::TensorShape { .. }
            | HookLensError::Config { .. } => hl_status::HL_ERR_MODEL_FILE,
            HookLensError::Unsupported { .. } => hl_status::HL_ERR_UNSUPPORTED,
            HookLensError::UnknownHook { .. } => hl_status::HL_ERR_UNKNOWN_HOOK,
            HookLensError::HookShape { .. } | HookLensError::Hook { .. } => hl_status::HL_ERR_HOOK,
            HookLensError::TokenOutOfRange { .. }
            | HookLensError::SequenceTooLong { .. }
            | HookLensError::Input { .. }
            | HookLensError::Tokenizer { .. } => hl_status::HL_ERR_INPUT,
        };
        Failure::new(status, e.to_string())
    }
}

/// What the entry points' bodies return.
pub(crate) type FfiResult<T> = std::result::Result<T, Failure>;
