//! Model description, weight loading and the forward pass.

pub mod gguf;
