//! The right-hand side of a product, packed once (at model load) into the panel layout the
//! micro-kernels read: `NR`-column panels, each stored row after row over the whole of `k`, so a
//! micro-kernel streams one contiguous `[kc, NR]` slab per call and the batch-1 case reads the
//! weights front to back exactly once.

use std::sync::Arc;

use super::NR;
use crate::backend::cpu::mapped::MappedFile;
use crate::backend::cpu::qgemv::QuantRows;

/// One `NR`-wide row of a panel, aligned to a cache line so that no vector load of packed
/// weights ever straddles two lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct PanelRow(pub [f32; NR]);

/// A `[k, n]` right-hand-side matrix in panel layout: panel `p` holds columns
/// `p * NR .. p * NR + NR` as `k` rows of `NR` values; columns past `n` in the last panel are 0.
#[derive(Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    /// `[n.div_ceil(NR), k, NR]`
    data: PanelStore,
    /// The quantised rows the values were dequantised from, where the model file had them
    /// (small batches read these instead of the panels; see [`crate::backend::cpu::qgemv`]).
    quant: Option<QuantRows>,
}

/// Where a packed matrix's panel rows live.
#[derive(Clone)]
enum PanelStore {
    /// Packed by this process.
    Owned(Vec<PanelRow>),
    /// A range of a read-only mapped file (the packed-weight cache).
    Mapped(MappedPanels),
}

/// `rows` panel rows at byte `offset` of a mapping, which they keep alive.
#[derive(Clone)]
struct MappedPanels {
    map: Arc<MappedFile>,
    offset: usize,
    rows: usize,
}

impl PanelStore {
    fn rows(&self) -> &[PanelRow] {
        match self {
            PanelStore::Owned(rows) => rows,
            PanelStore::Mapped(m) => {
                // SAFETY: `PackedMatrix::from_mapped` checked that the range lies inside the
                // mapping and that its start is 64-byte aligned (the mapping starts on a page),
                // and PanelRow is plain f32 data, for which every bit pattern is valid. The
                // mapping is read-only and lives as long as `m.map`, which `self` holds.
                unsafe {
                    std::slice::from_raw_parts(
                        m.map.as_ptr().add(m.offset).cast::<PanelRow>(),
                        m.rows,
                    )
                }
            }
        }
    }
}

impl PackedMatrix {
    /// Packs `w` stored row-major as `[k, n]` (the product is `x @ w`; HF GPT-2 `Conv1D`
    /// weights are stored this way).
    ///
    /// Panics if `w.len() != k * n`.
    pub fn from_k_by_n(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(
            w.len(),
            k * n,
            "PackedMatrix::from_k_by_n: w has {} values, expected k * n = {k} * {n}",
            w.len()
        );
        Self::from_rows(k, n, |j0, cols, kk, row| {
            let src = &w[kk * n + j0..kk * n + j0 + cols];
            match <&[f32; NR]>::try_from(src) {
                Ok(full) => *row = *full, // a fixed-size copy: four vector moves, no memmove call
                Err(_) => row[..cols].copy_from_slice(src),
            }
        })
    }

    /// Packs `w` stored row-major as `[n, k]` (the product is `x @ wᵀ`: torch `nn.Linear`
    /// weights, and the tied unembedding whose rows are tokens).
    ///
    /// Panics if `w.len() != n * k`.
    pub fn from_n_by_k(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(
            w.len(),
            n * k,
            "PackedMatrix::from_n_by_k: w has {} values, expected n * k = {n} * {k}",
            w.len()
        );
        // A panel row gathers one value from each of the panel's `cols` source rows, which
        // are read side by side, front to back.
        Self::from_rows(k, n, |j0, cols, kk, row| {
            for (jj, v) in row[..cols].iter_mut().enumerate() {
                *v = w[(j0 + jj) * k + kk];
            }
        })
    }

    /// Builds the panels row by row in storage order: `fill(j0, cols, kk, row)` writes the
    /// first `cols` values of row `kk` of the panel starting at column `j0` into a zeroed
    /// `row` (the rest stay zero). Each value is written once, straight into the buffer,
    /// which is on huge pages when large (see `huge_pages`).
    fn from_rows(k: usize, n: usize, fill: impl Fn(usize, usize, usize, &mut [f32; NR])) -> Self {
        let panels = n.div_ceil(NR);
        // With k == 0 there is nothing to store, but keep one (unused) row per panel so that
        // `panel_rows` and `chunks_exact(k.max(1))` stay well defined.
        let rows = panels * k.max(1);
        let mut data = super::super::huge_pages::empty_vec(rows);
        for p in 0..panels {
            let (j0, cols) = (p * NR, NR.min(n - p * NR));
            data.extend((0..k.max(1)).map(|kk| {
                let mut row = [0.0; NR];
                if kk < k {
                    fill(j0, cols, kk, &mut row);
                }
                PanelRow(row)
            }));
        }
        Self {
            k,
            n,
            data: PanelStore::Owned(data),
            quant: None,
        }
    }

    /// The packed `[k, n]` matrix whose panel rows are the bytes `offset ..` of `map`, as
    /// [`PackedMatrix::packed_bytes`] wrote them (the packed-weight cache). `None` when the
    /// range does not fit the mapping or does not start on a 64-byte boundary.
    pub fn from_mapped(map: Arc<MappedFile>, offset: usize, k: usize, n: usize) -> Option<Self> {
        let rows = n.div_ceil(NR).checked_mul(k.max(1))?;
        let bytes = rows.checked_mul(std::mem::size_of::<PanelRow>())?;
        let aligned =
            (map.as_ptr() as usize + offset).is_multiple_of(std::mem::align_of::<PanelRow>());
        if !aligned || offset.checked_add(bytes)? > map.len() {
            return None;
        }
        let data = PanelStore::Mapped(MappedPanels { map, offset, rows });
        Some(Self {
            k,
            n,
            data,
            quant: None,
        })
    }

    /// The packed storage as bytes, in the layout [`PackedMatrix::from_mapped`] reads.
    pub fn as_bytes(&self) -> &[u8] {
        let rows = self.data.rows();
        // SAFETY: PanelRow is [f32; NR] with no padding (asserted below the impl), so its
        // rows are `packed_bytes()` initialised bytes.
        unsafe { std::slice::from_raw_parts(rows.as_ptr().cast::<u8>(), self.packed_bytes()) }
    }

    /// The inner (reduction) dimension: rows of `W` in `x @ W`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The output dimension: columns of `W` in `x @ W`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Bytes of packed storage (what a batch-1 product streams from memory).
    pub fn packed_bytes(&self) -> usize {
        std::mem::size_of_val(self.data.rows())
    }

    /// Element `W[row, col]` of the logical `[k, n]` matrix (for debugging and tests).
    ///
    /// Panics if `row >= k` or `col >= n`.
    pub fn get(&self, row: usize, col: usize) -> f32 {
        assert!(
            row < self.k && col < self.n,
            "PackedMatrix::get({row}, {col}) out of bounds for a [{}, {}] matrix",
            self.k,
            self.n
        );
        self.data.rows()[(col / NR) * self.k + row].0[col % NR]
    }

    /// Column `col` of the logical `[k, n]` matrix into `out` (`k` values).
    ///
    /// Panics if `col >= n` or `out.len() != k`.
    pub fn column_into(&self, col: usize, out: &mut [f32]) {
        assert!(
            col < self.n && out.len() == self.k,
            "PackedMatrix::column_into: bad column or length"
        );
        let panel = &self.data.rows()[(col / NR) * self.k..(col / NR + 1) * self.k];
        for (v, row) in out.iter_mut().zip(panel) {
            *v = row.0[col % NR];
        }
    }

    /// Unpacks to a row-major `[k, n]` matrix (for debugging and tests).
    pub fn to_k_by_n(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.k * self.n]; // [k, n]
        for kk in 0..self.k {
            for j in 0..self.n {
                out[kk * self.n + j] = self.get(kk, j);
            }
        }
        out
    }

    /// Attaches the quantised rows these values were dequantised from. They must decode to
    /// exactly the packed values (the loader's dequantisation of the same bytes): a product of
    /// at most [`crate::backend::cpu::qgemv::MAX_ROWS`] rows then reads them instead.
    ///
    /// Panics if their shape is not this matrix's `(k, n)`.
    pub fn attach_quantized(&mut self, rows: QuantRows) {
        assert_eq!(
            rows.shape(),
            (self.k, self.n),
            "PackedMatrix::attach_quantized: quantised rows of another shape"
        );
        self.quant = Some(rows);
    }

    /// Removes and returns the attached quantised rows: every product then reads the packed
    /// values (tests and benchmarks compare the two).
    pub fn detach_quantized(&mut self) -> Option<QuantRows> {
        self.quant.take()
    }

    /// The attached quantised rows, if any.
    pub fn quantized(&self) -> Option<&QuantRows> {
        self.quant.as_ref()
    }

    /// Number of `NR`-wide panels.
    pub(super) fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Rows `k0 .. k0 + kc` of panel `p` as one contiguous slice. `[kc, NR]`
    pub(super) fn panel_rows(&self, p: usize, k0: usize, kc: usize) -> &[f32] {
        let rows = &self.data.rows()[p * self.k + k0..p * self.k + k0 + kc];
        // SAFETY: PanelRow is repr(C) around [f32; NR] with size exactly NR * 4 (64 bytes, which
        // its 64-byte alignment does not pad), so `kc` consecutive rows are `kc * NR` f32 values
        // laid out contiguously, inside the borrowed `rows`.
        unsafe { std::slice::from_raw_parts(rows.as_ptr().cast::<f32>(), kc * NR) }
    }
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("panels", &self.panels())
            .field("quant", &self.quant)
            .finish()
    }
}

const _: () = assert!(std::mem::size_of::<PanelRow>() == NR * 4);
