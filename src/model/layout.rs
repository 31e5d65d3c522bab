//! The row layout lives in [`crate::layout`] (kernels read it, so it does not belong to the
//! model); re-exported here for the paths that named it under `model`.

pub use crate::layout::{RowLayout, SeqRows};
