//! Hook points, selection by name, hook functions and the activation cache.

pub mod alias;
pub mod cache;
pub mod cache_file;
pub mod intervention;
pub mod point;
pub mod registry;
pub mod select;
mod values;

pub use cache::{ActivationCache, NamesFilter};
pub use cache_file::{CacheSource, SavedCache, CACHE_FORMAT};
pub use intervention::{Intervention, Op};
pub use point::{hook_points, HookKind, HookPoint};
pub use registry::{ActivationMut, HookContext, Hooks};
pub use select::HookSelector;
