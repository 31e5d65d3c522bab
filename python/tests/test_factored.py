"""`model.OV`, `model.QK` and `hooklens.FactoredMatrix` against TransformerLens 2.18's
`FactoredMatrix` on the random-weight fixtures (tests/fixtures/factored/, written by
scripts/golden/make_factored_refs.py): products, BA, S, norm, eigenvalues, corners, TL's
indexing rules and products with arrays and other factored matrices."""

import numpy as np
import pytest

import hooklens
from conftest import FIXTURES, load_fixture, read_safetensors

NAMES = ["gpt2_tiny", "llama_gqa"]
CIRCUITS = ["OV", "QK"]


def refs(name):
    tensors, meta = read_safetensors(FIXTURES / "factored" / f"{name}.safetensors")
    return tensors, meta


def close(got, want, what, tol=1e-4):
    """`got` within `tol` of the largest magnitude of `want`."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
    d = float(np.abs(got - want).max(initial=0.0))
    assert d <= tol * scale, f"{what}: max |diff| {d} (scale {scale})"


def stored_products(model, tensors, meta, c):
    """(this circuit's product for the stored heads of the stored layer, TL's)."""
    h0, h1 = (int(v) for v in meta["ab_heads"].split(","))
    layer = int(meta["ab_layer"])
    return getattr(model, c)[layer, h0:h1], tensors[f"{c}.AB"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("c", CIRCUITS)
def test_products_ba_and_factors_equal_tl(name, c):
    model, (tensors, meta) = load_fixture(name), refs(name)
    fm = getattr(model, c)
    cfg = model.cfg
    assert isinstance(fm, hooklens.FactoredMatrix)
    assert fm.shape == (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_model)
    assert fm.ndim == 4 and fm.mdim == cfg.d_head
    part, want = stored_products(model, tensors, meta, c)
    close(part.AB, want, f"{name} {c}.AB")
    close(fm.BA, tensors[f"{c}.BA"], f"{name} {c}.BA")
    if c == "OV":
        np.testing.assert_array_equal(fm.A, model.W_V)
        np.testing.assert_array_equal(fm.B, model.W_O)
    else:
        np.testing.assert_array_equal(fm.A, model.W_Q)
        np.testing.assert_array_equal(fm.B, np.swapaxes(model.W_K, -1, -2))


def matched_eigenvalues(got, want):
    """`got` reordered to pair each of `want` (one matrix) with its nearest remaining value."""
    left, out = list(got), []
    for w in want:
        j = int(np.argmin([abs(g - w) for g in left]))
        out.append(left.pop(j))
    return np.array(out)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("c", CIRCUITS)
def test_singular_values_norms_and_eigenvalues_equal_tl(name, c):
    model, (tensors, _) = load_fixture(name), refs(name)
    fm = getattr(model, c)
    close(fm.S, tensors[f"{c}.S"], f"{name} {c}.S")
    assert np.all(np.diff(fm.S, axis=-1) <= 0), "descending"
    close(fm.norm(), tensors[f"{c}.norm"], f"{name} {c}.norm")
    eig = fm.eigenvalues
    assert np.iscomplexobj(eig) and eig.shape == tensors[f"{c}.eig_re"].shape
    want = tensors[f"{c}.eig_re"] + 1j * tensors[f"{c}.eig_im"].astype(np.complex128)
    flat_got, flat_want = eig.reshape(-1, eig.shape[-1]), want.reshape(-1, want.shape[-1])
    got = np.stack([matched_eigenvalues(g, w) for g, w in zip(flat_got, flat_want)])
    scale = np.abs(flat_want).max()
    assert np.abs(got - flat_want).max() <= 1e-4 * scale, f"{name} {c} eigenvalues"
    assert np.abs(flat_want.imag).max() > 1e-3 * scale, "the fixture has complex pairs"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("c", CIRCUITS)
def test_svd_factors_rebuild_the_product(name, c):
    model, (tensors, meta) = load_fixture(name), refs(name)
    part, ab = stored_products(model, tensors, meta, c)
    u, s, vh = part.svd()
    r = part.mdim
    assert u.shape == ab.shape[:-1] + (r,) and vh.shape == ab.shape[:-1] + (r,)
    close(u @ (s[..., :, None] * np.swapaxes(vh, -1, -2)), ab, f"{name} {c} U S Vh.T")
    eye = np.broadcast_to(np.eye(r), s.shape + (r,))
    close(np.swapaxes(u, -1, -2) @ u, eye, f"{name} {c} U orthonormal")
    close(np.swapaxes(vh, -1, -2) @ vh, eye, f"{name} {c} Vh orthonormal")
    ab64 = ab.astype(np.float64)
    cl, cr = part.collapse_l().astype(np.float64), part.collapse_r().astype(np.float64)
    assert cl.shape == ab.shape[:-2] + (r, ab.shape[-1])
    close(np.swapaxes(cl, -1, -2) @ cl, np.swapaxes(ab64, -1, -2) @ ab64, f"{name} collapse_l")
    close(cr @ np.swapaxes(cr, -1, -2), ab64 @ np.swapaxes(ab64, -1, -2), f"{name} collapse_r")
    close(part.make_even().AB, ab, f"{name} {c} make_even")
    assert part.U is u and part.S is s and part.Vh is vh, "the SVD is computed once"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("c", CIRCUITS)
def test_corners_and_tl_indexing_equal_tl(name, c):
    model, (tensors, _) = load_fixture(name), refs(name)
    fm = getattr(model, c)
    close(fm.get_corner(3), tensors[f"{c}.corner3"], f"{name} {c}.corner3")
    close(fm[0].get_corner(3), tensors[f"{c}.l0.corner3"], f"{name} {c}.l0.corner3")
    close(fm[0].S, tensors[f"{c}.l0.S"], f"{name} {c}.l0.S")
    row = fm[1, 0, 3]  # a row: the index before the last axis keeps it, as TL
    assert row.shape == (1, model.cfg.d_model)
    close(row.AB, tensors[f"{c}.get3"], f"{name} {c}[1, 0, 3]")
    close(fm[1, 0, 3, 5].AB, tensors[f"{c}.get35"], f"{name} {c}[1, 0, 3, 5]")
    close(fm[:, 1].S, tensors[f"{c}.head1.S"], f"{name} {c}[:, 1].S")
    with pytest.raises(hooklens.InputError):
        fm[0, 0, 0, 0, 0]


@pytest.mark.parametrize("name", NAMES)
def test_products_with_arrays_and_factored_matrices_equal_tl(name):
    model, (tensors, _) = load_fixture(name), refs(name)
    ov, qk = model.OV[1, 0], model.QK[0, 1]
    both = ov @ qk
    assert isinstance(both, hooklens.FactoredMatrix)
    close(both.S, tensors["OVQK.S"], f"{name} (OV @ QK).S")
    x = np.linspace(-1, 1, model.cfg.d_model, dtype=np.float32)
    close(ov @ x, tensors["OV.vec_r"], f"{name} OV @ x")
    close(x @ ov, tensors["OV.vec_l"], f"{name} x @ OV")
    right = ov @ model.W_U[:, :5]
    assert isinstance(right, hooklens.FactoredMatrix) and right.shape == (model.cfg.d_model, 5)
    close(right.AB, tensors["OV.WU5"], f"{name} OV @ W_U[:, :5]")
    left = model.W_E[:4] @ ov
    assert isinstance(left, hooklens.FactoredMatrix) and left.shape == (4, model.cfg.d_model)
    close(left.AB, tensors["OV.WE4"], f"{name} W_E[:4] @ OV")
    close(ov.T.AB, ov.AB.T, f"{name} OV.T")
    close((2 * ov).AB, 2 * ov.AB, f"{name} 2 * OV")


def test_bad_shapes_are_input_errors():
    FM = hooklens.FactoredMatrix
    with pytest.raises(hooklens.InputError):
        FM(np.zeros((3, 4)), np.zeros((5, 2)))  # inner sizes differ
    with pytest.raises(hooklens.InputError):
        FM(np.zeros(3), np.zeros((3, 2)))  # a vector
    with pytest.raises(hooklens.InputError):
        FM(np.zeros((2, 3, 4)), np.zeros((3, 4, 2)))  # leading axes do not broadcast
    wide = FM(np.ones((3, 4)), np.ones((4, 5)))
    with pytest.raises(hooklens.InputError):
        wide.BA
    with pytest.raises(hooklens.InputError):
        wide @ np.ones((4, 2))  # needs 5 rows
    with pytest.raises(hooklens.InputError):
        np.ones((2, 4)) @ wide  # needs 3 columns
    # Broadcast leading axes, as TL: one B for a batch of A.
    batch = FM(np.ones((2, 3, 4)), np.ones((4, 5)))
    assert batch.shape == (2, 3, 5) and batch.B.shape == (2, 4, 5)
    assert "Hidden Dim(4)" in repr(batch)
