"""TransformerLens' ``FactoredMatrix`` over numpy: a batch of matrices kept as ``A @ B``.

``model.OV`` is ``FactoredMatrix(W_V, W_O)`` and ``model.QK`` is
``FactoredMatrix(W_Q, W_K.swapaxes(-2, -1))``, both ``[n_layers, n_heads, d_model, d_model]``
factored through ``d_head``. As in TL, the SVD, the norm and the eigenvalues come from the
small ``d_head``-sized problem, never from the ``d_model x d_model`` product; they are
computed in float64 and returned in the factors' dtype (complex for the eigenvalues).
"""

import numpy as np

from hooklens._hooklens import InputError


def _swap(x):
    """The last two axes swapped."""
    return np.swapaxes(x, -1, -2)


class FactoredMatrix:
    """``A @ B`` kept factored: ``A`` ``[..., ldim, mdim]``, ``B`` ``[..., mdim, rdim]``, leading
    axes broadcast against each other as in TL. The product is ``[..., ldim, rdim]``."""

    # numpy's ``array @ fm`` then defers to ``fm.__rmatmul__`` instead of iterating over fm.
    __array_ufunc__ = None

    def __init__(self, A, B):
        A, B = np.asarray(A), np.asarray(B)
        if A.ndim < 2 or B.ndim < 2 or A.shape[-1] != B.shape[-2]:
            raise InputError(
                "FactoredMatrix factors must be [..., ldim, mdim] and [..., mdim, rdim], "
                f"got {A.shape} and {B.shape}"
            )
        self.ldim, self.mdim, self.rdim = A.shape[-2], A.shape[-1], B.shape[-1]
        self.has_leading_dims = A.ndim > 2 or B.ndim > 2
        try:
            lead = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        except ValueError as e:
            raise InputError(
                f"FactoredMatrix: cannot broadcast the leading axes of {A.shape} and {B.shape}"
            ) from e
        self.shape = tuple(lead) + (self.ldim, self.rdim)
        self.A = np.broadcast_to(A, tuple(lead) + (self.ldim, self.mdim))
        self.B = np.broadcast_to(B, tuple(lead) + (self.mdim, self.rdim))
        self._svd = None

    # ---- products -----------------------------------------------------------------------

    def __matmul__(self, other):
        """``self @ other``: a vector gives a vector, a matrix or a FactoredMatrix a
        FactoredMatrix (multiplied into the cheaper side, as TL)."""
        if isinstance(other, FactoredMatrix):
            return (self @ other.A) @ other.B
        other = np.asarray(other)
        if other.ndim < 2:
            return (self.A @ (self.B @ other[..., None]))[..., 0]
        if other.shape[-2] != self.rdim:
            raise InputError(
                f"right matrix must match on the inner axis: self {self.shape}, "
                f"other {other.shape}"
            )
        if self.rdim > self.mdim:
            return FactoredMatrix(self.A, self.B @ other)
        return FactoredMatrix(self.AB, other)

    def __rmatmul__(self, other):
        """``other @ self`` for an array (a vector gives a vector)."""
        other = np.asarray(other)
        if other.shape[-1:] != (self.ldim,):
            raise InputError(
                f"left matrix must match on the inner axis: self {self.shape}, "
                f"other {other.shape}"
            )
        if other.ndim < 2:
            return ((other[None, :] @ self.A) @ self.B)[..., 0, :]
        if self.ldim > self.mdim:
            return FactoredMatrix(other @ self.A, self.B)
        return FactoredMatrix(other, self.AB)

    def __mul__(self, scalar):
        """Scalar multiplication (of ``A``)."""
        if np.size(scalar) != 1:
            raise InputError("use @ for matrix products; * takes a scalar")
        return FactoredMatrix(self.A * scalar, self.B)

    __rmul__ = __mul__

    @property
    def AB(self):
        """The product, multiplied out. ``[..., ldim, rdim]``"""
        return self.A @ self.B

    @property
    def BA(self):
        """The reverse product ``B @ A`` (square matrices only). ``[..., mdim, mdim]``"""
        if self.rdim != self.ldim:
            raise InputError(f"BA needs ldim == rdim, the shape is {self.shape}")
        return self.B @ self.A

    @property
    def T(self):
        """The transpose, still factored. ``[..., rdim, ldim]``"""
        return FactoredMatrix(_swap(self.B), _swap(self.A))

    @property
    def pair(self):
        """``(A, B)``."""
        return (self.A, self.B)

    # ---- decompositions -----------------------------------------------------------------

    def svd(self):
        """``(U, S, Vh)`` with ``U @ diag(S) @ Vh.T == AB`` (TL's convention: ``Vh`` is
        ``[..., rdim, r]``, not transposed), from the SVDs of both factors and of their small
        core, as TL. ``r = min(ldim, mdim, rdim)``."""
        if self._svd is None:
            a, b = self.A.astype(np.float64), self.B.astype(np.float64)
            ua, sa, vha = np.linalg.svd(a, full_matrices=False)
            ub, sb, vhb = np.linalg.svd(b, full_matrices=False)
            middle = (sa[..., :, None] * vha) @ ub * sb[..., None, :]
            um, sm, vhm = np.linalg.svd(middle, full_matrices=False)
            dt = np.result_type(self.A.dtype, self.B.dtype, np.float32)
            u, vh = ua @ um, _swap(vhb) @ _swap(vhm)
            self._svd = (u.astype(dt), sm.astype(dt), vh.astype(dt))
        return self._svd

    @property
    def U(self):
        """The left singular vectors. ``[..., ldim, r]``"""
        return self.svd()[0]

    @property
    def S(self):
        """The singular values, descending. ``[..., r]``"""
        return self.svd()[1]

    @property
    def Vh(self):
        """The right singular vectors, as columns (TL's convention). ``[..., rdim, r]``"""
        return self.svd()[2]

    @property
    def eigenvalues(self):
        """The eigenvalues of ``BA`` (those of ``AB`` apart from zeros), complex, in
        ``numpy.linalg.eigvals`` order. ``[..., mdim]``"""
        ba = self.BA
        dt = np.result_type(ba.dtype, np.complex64)
        return np.linalg.eigvals(ba.astype(np.float64)).astype(dt)

    def norm(self):
        """The Frobenius norm of each matrix, ``sqrt(sum(S**2))``. ``[...]``"""
        s = self.S.astype(np.float64)
        return np.sqrt((s * s).sum(-1)).astype(self.S.dtype)

    def collapse_l(self):
        """``diag(S) @ Vh.T``: the product without its left orthogonal factor. ``[..., r, rdim]``"""
        return self.S[..., :, None] * _swap(self.Vh)

    def collapse_r(self):
        """``U @ diag(S)``: the product without its right orthogonal factor. ``[..., ldim, r]``"""
        return self.U * self.S[..., None, :]

    def make_even(self):
        """The same matrix as ``(U sqrt(S), sqrt(S) Vh.T)``: each factor takes half the
        singular values."""
        root = np.sqrt(self.S)
        return FactoredMatrix(self.U * root[..., None, :], root[..., :, None] * _swap(self.Vh))

    # ---- indexing and shape -------------------------------------------------------------

    def __getitem__(self, idx):
        """Indexing, as TL: the leading axes, then (an int or slice each) rows and columns."""
        if not isinstance(idx, tuple):
            idx = (idx,)
        length = len([i for i in idx if i is not None])
        if length <= len(self.shape) - 2:
            return FactoredMatrix(self.A[idx], self.B[idx])
        if length == len(self.shape) - 1:
            idx = _int_to_slice(idx, -1)
            return FactoredMatrix(self.A[idx], self.B[idx[:-1]])
        if length == len(self.shape):
            idx = _int_to_slice(_int_to_slice(idx, -1), -2)
            return FactoredMatrix(self.A[idx[:-1]], self.B[idx[:-2] + (slice(None), idx[-1])])
        raise InputError(f"{idx} is too long an index for a FactoredMatrix of shape {self.shape}")

    def get_corner(self, k=3):
        """The product's corner: every axis cut to its first ``k`` entries."""
        lead = tuple(slice(k) for _ in range(self.ndim - 2))
        return self.A[lead + (slice(k), slice(None))] @ self.B[lead + (slice(None), slice(k))]

    @property
    def ndim(self):
        """The number of axes of the product."""
        return len(self.shape)

    def unsqueeze(self, k):
        """A new leading axis at ``k`` (counted in the factors' axes)."""
        return FactoredMatrix(np.expand_dims(self.A, k), np.expand_dims(self.B, k))

    def __repr__(self):
        return f"FactoredMatrix: Shape({self.shape}), Hidden Dim({self.mdim})"


def _int_to_slice(idx, pos):
    """``idx`` with an int at ``pos`` made a one-long slice (so the axis is kept)."""
    idx = list(idx)
    if isinstance(idx[pos], (int, np.integer)):
        idx[pos] = slice(idx[pos], idx[pos] + 1)
    return tuple(idx)
