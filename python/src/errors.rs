//! The Python exception classes and the mapping of library errors onto them.

use hooklens::HookLensError as EngineError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    hooklens,
    HookLensError,
    PyException,
    "Base class of every error hooklens raises; the message is the engine's."
);
create_exception!(
    hooklens,
    UnknownHookError,
    HookLensError,
    "A hook name, short form or alias that names no hook point of this model; the message lists the nearest names."
);
create_exception!(
    hooklens,
    HookShapeError,
    HookLensError,
    "A hook returned an array whose shape is not the activation's."
);
create_exception!(
    hooklens,
    TokenError,
    HookLensError,
    "A token id outside the vocabulary, or a sequence longer than the context."
);
create_exception!(
    hooklens,
    ModelLoadError,
    HookLensError,
    "A model file or directory that cannot be read or is malformed."
);
create_exception!(
    hooklens,
    UnsupportedError,
    HookLensError,
    "A feature, file type or device this version does not support (e.g. device=\"cuda\")."
);
create_exception!(
    hooklens,
    CacheFileError,
    HookLensError,
    "An activation cache file that cannot be read, or is not a hooklens cache, or is malformed."
);
create_exception!(
    hooklens,
    InputError,
    HookLensError,
    "Any other invalid argument (ragged batch, bad layer index, uncached point, ...)."
);

/// The Python exception for a library error, carrying the library's message.
pub fn to_py(err: EngineError) -> PyErr {
    let msg = err.to_string();
    match err {
        EngineError::UnknownHook { .. } => UnknownHookError::new_err(msg),
        EngineError::HookShape { .. } => HookShapeError::new_err(msg),
        EngineError::TokenOutOfRange { .. } | EngineError::SequenceTooLong { .. } => {
            TokenError::new_err(msg)
        }
        EngineError::Io { .. }
        | EngineError::Format { .. }
        | EngineError::MissingTensor { .. }
        | EngineError::TensorShape { .. }
        | EngineError::Config { .. } => ModelLoadError::new_err(msg),
        EngineError::Unsupported { .. } => UnsupportedError::new_err(msg),
        _ => InputError::new_err(msg),
    }
}

/// `Result<T, HookLensError>` to `PyResult<T>`.
pub trait IntoPyResult<T> {
    /// Maps the error with [`to_py`].
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for hooklens::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// An [`InputError`] with a message of the bindings' own.
pub fn input_error(msg: impl Into<String>) -> PyErr {
    InputError::new_err(msg.into())
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("HookLensError", py.get_type::<HookLensError>())?;
    m.add("UnknownHookError", py.get_type::<UnknownHookError>())?;
    m.add("HookShapeError", py.get_type::<HookShapeError>())?;
    m.add("TokenError", py.get_type::<TokenError>())?;
    m.add("ModelLoadError", py.get_type::<ModelLoadError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("CacheFileError", py.get_type::<CacheFileError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    Ok(())
}
