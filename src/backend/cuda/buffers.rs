//! Device buffers of the CUDA backend: activations that may be empty and are resized in
//! place, prepared weight matrices, row layouts and rotary tables in device memory.

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut};

/// An activation buffer: `len` values in an allocation of at least that many (none when the
/// buffer has never held a value).
#[derive(Clone, Default)]
pub struct DevBuf {
    /// The allocation.
    pub data: Option<CudaSlice<f32>>,
    /// Values in use.
    pub len: usize,
}

impl std::fmt::Debug for DevBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevBuf({} values)", self.len)
    }
}

impl DevBuf {
    /// The allocation, if the buffer holds values.
    pub fn slice(&self) -> Option<&CudaSlice<f32>> {
        self.data.as_ref().filter(|_| self.len > 0)
    }

    /// The allocation, writable, if the buffer holds values.
    pub fn slice_mut(&mut self) -> Option<&mut CudaSlice<f32>> {
        let len = self.len;
        self.data.as_mut().filter(|_| len > 0)
    }

    /// The values in use, if any.
    pub fn view(&self) -> Option<CudaView<'_, f32>> {
        self.slice().map(|s| s.slice(0..self.len))
    }

    /// The values in use, writable, if any.
    pub fn view_mut(&mut self) -> Option<CudaViewMut<'_, f32>> {
        let len = self.len;
        self.slice_mut().map(|s| s.slice_mut(0..len))
    }
}

/// A weight matrix `[k, n]`, row-major, in device memory.
#[derive(Clone)]
pub struct DevMatrix {
    /// The values, `[k, n]`; `None` when the upload failed (the failure is recorded and
    /// reported by `Backend::check`, which `Engine::new` calls).
    pub data: Option<CudaSlice<f32>>,
    /// Rows (input width).
    pub k: usize,
    /// Columns (output width).
    pub n: usize,
}

impl std::fmt::Debug for DevMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevMatrix[{}, {}]", self.k, self.n)
    }
}

/// A row layout as the attention and K/V kernels read it: per packed row its sequence,
/// absolute position and index within the sequence; per sequence its first row and count.
pub struct DevRows {
    /// `[rows]` each.
    pub row_seq: Option<CudaSlice<i32>>,
    /// Absolute positions. `[rows]`
    pub row_pos: Option<CudaSlice<i32>>,
    /// Index of the row within its sequence. `[rows]`
    pub row_idx: Option<CudaSlice<i32>>,
    /// First packed row of each sequence. `[batch]`
    pub seq_off: Option<CudaSlice<i32>>,
    /// Rows of each sequence. `[batch]`
    pub seq_n: Option<CudaSlice<i32>>,
    /// 1 where a sequence computes fewer than every position. `[batch]`
    pub partial: Option<CudaSlice<i32>>,
    /// Packed rows.
    pub rows: usize,
    /// Sequences.
    pub batch: usize,
    /// Positions per sequence.
    pub seq_len: usize,
}

/// The real keys of each sequence of a padded pass: `lo[s] <= j < hi[s]`. `[batch]` each
pub struct DevKeyMask {
    /// First real position of each sequence.
    pub lo: Option<CudaSlice<i32>>,
    /// One past the last real position of each sequence.
    pub hi: Option<CudaSlice<i32>>,
}

/// Rotary cos/sin tables in device memory, each `[seq, half]`.
pub struct DevRotary {
    /// Cosines.
    pub cos: Option<CudaSlice<f32>>,
    /// Sines.
    pub sin: Option<CudaSlice<f32>>,
    /// Half the head width.
    pub half: usize,
}
