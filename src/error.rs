//! The one error type every fallible hooklens call returns.

use std::fmt;
use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, HookLensError>;

/// Everything that can go wrong in hooklens, each variant with enough context for a message
/// that says what to do. Nothing in the library panics on bad input; it returns one of these.
#[derive(Debug)]
pub enum HookLensError {
    /// A file could not be opened or read.
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An output file could not be created or written.
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A model or data file is malformed or truncated.
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A tensor the architecture needs is absent from the weights file.
    MissingTensor {
        /// The file searched.
        path: PathBuf,
        /// The tensor name that was expected.
        name: String,
    },
    /// A tensor exists but its shape disagrees with the configuration.
    TensorShape {
        /// The file involved.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape stored in the file.
        found: Vec<usize>,
    },
    /// A feature (architecture, dtype, quantisation type, ...) hooklens does not support.
    Unsupported {
        /// What is unsupported, in words.
        what: String,
    },
    /// The model configuration is inconsistent or missing a field.
    Config {
        /// What is wrong.
        message: String,
    },
    /// A hook name that does not exist for this model.
    UnknownHook {
        /// The name as the user gave it.
        name: String,
        /// The nearest valid names.
        suggestions: Vec<String>,
    },
    /// A hook tried to give an activation a different shape.
    HookShape {
        /// The hook point.
        name: String,
        /// The shape of the activation at that slot.
        expected: Vec<usize>,
        /// The shape the hook tried to write.
        found: Vec<usize>,
    },
    /// A user hook reported an error of its own.
    Hook {
        /// The hook point.
        name: String,
        /// The hook's message.
        message: String,
    },
    /// A token id is not in the vocabulary.
    TokenOutOfRange {
        /// The offending id.
        token: u32,
        /// Its (batch, position).
        at: (usize, usize),
        /// The vocabulary size.
        vocab: usize,
    },
    /// A sequence is longer than the model's context.
    SequenceTooLong {
        /// The sequence length requested.
        len: usize,
        /// The model's context length.
        n_ctx: usize,
    },
    /// Any other invalid argument (empty batch, ragged batch, bad layer index, ...).
    Input {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The tokenizer failed to load or to encode/decode.
    Tokenizer {
        /// The tokenizer's message.
        message: String,
    },
}

impl HookLensError {
    /// Shorthand for [`HookLensError::Input`].
    pub fn input(message: impl Into<String>) -> Self {
        HookLensError::Input {
            message: message.into(),
        }
    }

    /// Shorthand for [`HookLensError::Config`].
    pub fn config(message: impl Into<String>) -> Self {
        HookLensError::Config {
            message: message.into(),
        }
    }

    /// Shorthand for [`HookLensError::Format`].
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        HookLensError::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`HookLensError::Unsupported`].
    pub fn unsupported(what: impl Into<String>) -> Self {
        HookLensError::Unsupported { what: what.into() }
    }

    /// Shorthand for [`HookLensError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HookLensError::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`HookLensError::Write`].
    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HookLensError::Write {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for HookLensError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookLensError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            HookLensError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            HookLensError::Format { path, message } => {
                write!(f, "{}: {message}", path.display())
            }
            HookLensError::MissingTensor { path, name } => write!(
                f,
                "{}: tensor `{name}` is missing (is this a complete checkpoint of the right architecture?)",
                path.display()
            ),
            HookLensError::TensorShape {
                path,
                name,
                expected,
                found,
            } => write!(
                f,
                "{}: tensor `{name}` has shape {found:?} but the config implies {expected:?}",
                path.display()
            ),
            HookLensError::Unsupported { what } => write!(f, "unsupported: {what}"),
            HookLensError::Config { message } => write!(f, "bad model config: {message}"),
            HookLensError::UnknownHook { name, suggestions } => {
                write!(f, "unknown hook point `{name}`")?;
                if !suggestions.is_empty() {
                    write!(f, "; did you mean {}?", suggestions.join(", "))?;
                }
                write!(f, " (`hooklens hooks` lists them all)")
            }
            HookLensError::HookShape {
                name,
                expected,
                found,
            } => write!(
                f,
                "hook at `{name}` tried to change the activation shape from {expected:?} to {found:?}; hooks may change values, not shapes"
            ),
            HookLensError::Hook { name, message } => write!(f, "hook at `{name}` failed: {message}"),
            HookLensError::TokenOutOfRange { token, at, vocab } => write!(
                f,
                "token id {token} at batch {}, position {} is outside the vocabulary (size {vocab})",
                at.0, at.1
            ),
            HookLensError::SequenceTooLong { len, n_ctx } => write!(
                f,
                "sequence of {len} tokens is longer than the model's context of {n_ctx} tokens"
            ),
            HookLensError::Input { message } => write!(f, "{message}"),
            HookLensError::Tokenizer { message } => write!(f, "tokenizer: {message}"),
        }
    }
}

impl std::error::Error for HookLensError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HookLensError::Io { source, .. } | HookLensError::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}
