//! Reusing a `Vec<f32>`'s allocation for a buffer of a new size.

/// Makes `v` `len` zeros, reusing its allocation.
pub fn zeroed(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}
