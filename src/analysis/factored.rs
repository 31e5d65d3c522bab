//! TransformerLens' `FactoredMatrix`: a batch of matrices kept as the product `A @ B` of two
//! thinner factors (the per-head OV circuit `W_V @ W_O`, the QK circuit `W_Q @ W_Kᵀ`), with the
//! product's norm and singular values computed from the `k x k`-sized problem instead of the
//! `m x n` product.

mod linalg;

use crate::error::{HookLensError, Result};
use crate::tensor::Tensor;

/// `A @ B` over leading batch dimensions, kept factored: `a` `[..., m, k]`, `b` `[..., k, n]`
/// with the same leading dimensions. The matrix it stands for is `[..., m, n]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FactoredMatrix {
    /// The left factor. `[..., m, k]`
    a: Tensor,
    /// The right factor. `[..., k, n]`
    b: Tensor,
}

impl FactoredMatrix {
    /// The factored product of `a` `[..., m, k]` and `b` `[..., k, n]`: an input error unless
    /// both have at least two axes, the same leading axes and the same inner size `k`.
    pub fn new(a: Tensor, b: Tensor) -> Result<Self> {
        let (ra, rb) = (a.shape.len(), b.shape.len());
        if ra < 2 || rb < 2 {
            return Err(HookLensError::input(format!(
                "FactoredMatrix factors need at least two axes, got {:?} and {:?}",
                a.shape, b.shape
            )));
        }
        if a.shape[..ra - 2] != b.shape[..rb - 2] || a.shape[ra - 1] != b.shape[rb - 2] {
            return Err(HookLensError::input(format!(
                "FactoredMatrix factors must be [..., m, k] and [..., k, n] with the same \
                 leading axes, got {:?} and {:?}",
                a.shape, b.shape
            )));
        }
        Ok(FactoredMatrix { a, b })
    }

    /// The left factor. `[..., m, k]`
    pub fn a(&self) -> &Tensor {
        &self.a
    }

    /// The right factor. `[..., k, n]`
    pub fn b(&self) -> &Tensor {
        &self.b
    }

    /// The two factors, `(a, b)`.
    pub fn into_parts(self) -> (Tensor, Tensor) {
        (self.a, self.b)
    }

    /// The leading (batch) axes. `[...]`
    pub fn batch_shape(&self) -> &[usize] {
        &self.a.shape[..self.a.shape.len() - 2]
    }

    /// The shape of the product, `[..., m, n]`, as TL's `shape`.
    pub fn shape(&self) -> Vec<usize> {
        let (m, _, n) = self.dims();
        let mut s = self.batch_shape().to_vec();
        s.extend([m, n]);
        s
    }

    /// `(m, k, n)`: rows, inner size, columns.
    pub fn dims(&self) -> (usize, usize, usize) {
        let r = self.a.shape.len();
        (
            self.a.shape[r - 2],
            self.a.shape[r - 1],
            self.b.shape[r - 1],
        )
    }

    /// The number of matrices (the product of the leading axes).
    fn batch(&self) -> usize {
        self.batch_shape().iter().product()
    }

    /// Matrix `i` of the batch: its `a` `[m, k]` and `b` `[k, n]` values.
    fn pair(&self, i: usize) -> (&[f32], &[f32]) {
        let (m, k, n) = self.dims();
        (
            &self.a.data[i * m * k..][..m * k],
            &self.b.data[i * k * n..][..k * n],
        )
    }

    /// One value or vector per matrix of the batch, stacked under the leading axes.
    fn per_matrix(&self, tail: &[usize], f: impl Fn(&[f32], &[f32]) -> Vec<f32>) -> Tensor {
        let data = (0..self.batch())
            .flat_map(|i| {
                let (a, b) = self.pair(i);
                f(a, b)
            })
            .collect();
        let mut shape = self.batch_shape().to_vec();
        shape.extend(tail);
        Tensor { data, shape }
    }

    /// The product `A @ B`, multiplied out (TL's `AB`). `[..., m, n]`
    pub fn ab(&self) -> Tensor {
        let (m, k, n) = self.dims();
        self.per_matrix(&[m, n], |a, b| linalg::matmul(a, b, (m, k, n)))
    }

    /// The reverse product `B @ A` (TL's `BA`), an input error unless the matrix is square
    /// (`m == n`). `[..., k, k]`
    pub fn ba(&self) -> Result<Tensor> {
        let (m, k, n) = self.dims();
        if m != n {
            return Err(HookLensError::input(format!(
                "BA needs a square FactoredMatrix, this one is {:?}",
                self.shape()
            )));
        }
        Ok(self.per_matrix(&[k, k], |a, b| linalg::matmul(b, a, (k, n, k))))
    }

    /// The transpose `Bᵀ @ Aᵀ`, still factored (TL's `T`). `[..., n, m]`
    pub fn transpose(&self) -> FactoredMatrix {
        FactoredMatrix {
            a: transpose_last(&self.b), // [..., n, k]
            b: transpose_last(&self.a), // [..., k, m]
        }
    }

    /// The Frobenius norm of each product, from the two `k x k` Gram matrices
    /// (`sqrt(trace((AᵀA)(BBᵀ)))`), never forming `A @ B` (TL's `norm()`). `[...]`
    pub fn norm(&self) -> Tensor {
        let dims = self.dims();
        self.per_matrix(&[], |a, b| vec![linalg::frobenius(a, b, dims) as f32])
    }

    /// The singular values of each product, descending (TL's `S`), from Householder QRs of
    /// both factors and a one-sided Jacobi SVD of the small core. `[..., min(m, k, n)]`
    pub fn singular_values(&self) -> Tensor {
        let (m, k, n) = self.dims();
        let r = m.min(k).min(n);
        self.per_matrix(&[r], |a, b| linalg::singular_values(a, b, (m, k, n)))
    }

    /// TL's `get_corner(c)`: every axis cut to its first `c` entries, the product formed only
    /// there (`A[..., :c, :] @ B[..., :, :c]`). `[min(c, d0), ..., min(c, m), min(c, n)]`
    pub fn get_corner(&self, c: usize) -> Tensor {
        let (m, k, n) = self.dims();
        let (cm, cn) = (c.min(m), c.min(n));
        let lead: Vec<usize> = self.batch_shape().iter().map(|&d| d.min(c)).collect();
        let count: usize = lead.iter().product();
        let mut data = Vec::with_capacity(count * cm * cn); // [lead..., cm, cn]
        for flat in 0..count {
            let (a, b) = self.pair(self.batch_index(&lead, flat));
            let b_cut: Vec<f32> = (0..k).flat_map(|t| b[t * n..][..cn].to_vec()).collect();
            data.extend(linalg::matmul(&a[..cm * k], &b_cut, (cm, k, cn)));
        }
        let mut shape = lead;
        shape.extend([cm, cn]);
        Tensor { data, shape }
    }

    /// The batch position of entry `flat` of a row-major grid `lead` (each axis at most the
    /// matching leading axis).
    fn batch_index(&self, lead: &[usize], mut flat: usize) -> usize {
        let full = self.batch_shape();
        let (mut index, mut stride) = (0, 1);
        for (&l, &f) in lead.iter().zip(full).rev() {
            index += (flat % l) * stride;
            flat /= l;
            stride *= f;
        }
        index
    }

    /// Entry `i` of the first leading axis (`ov.index(layer)?.index(head)?`), an input error
    /// when there is no leading axis or `i` is out of range. `[..., m, k]` / `[..., k, n]`
    pub fn index(&self, i: usize) -> Result<FactoredMatrix> {
        let Some(&len) = self.batch_shape().first() else {
            return Err(HookLensError::input(
                "index: this FactoredMatrix has no leading axis",
            ));
        };
        if i >= len {
            return Err(HookLensError::input(format!(
                "index {i} is out of range for a leading axis of {len}"
            )));
        }
        let pick = |t: &Tensor| {
            let per = t.numel() / len;
            Tensor {
                data: t.data[i * per..][..per].to_vec(),
                shape: t.shape[1..].to_vec(),
            }
        };
        Ok(FactoredMatrix {
            a: pick(&self.a),
            b: pick(&self.b),
        })
    }
}

/// A tensor of at least two axes with its last two swapped. `[..., c, r]` from `[..., r, c]`
pub(crate) fn transpose_last(t: &Tensor) -> Tensor {
    let r = t.shape.len();
    let (rows, cols) = (t.shape[r - 2], t.shape[r - 1]);
    let data = t
        .data
        .chunks((rows * cols).max(1))
        .flat_map(|m| crate::model::weights::transpose(m, rows, cols))
        .collect();
    let mut shape = t.shape.clone();
    shape.swap(r - 2, r - 1);
    Tensor { data, shape }
}
