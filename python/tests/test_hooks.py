"""Python hooks: views of the engine's buffer, their lifetime, predicates, errors."""

import gc

import numpy as np
import pytest

import hooklens
from conftest import TOL, Reference, load_fixture, max_diff


def address(a):
    return a.__array_interface__["data"][0]


def test_hooks_at_one_point_share_one_buffer_without_copies():
    model = load_fixture("gpt2_tiny")
    toks = Reference("gpt2_tiny").tokens
    seen = []

    def first(z, hook):
        assert isinstance(z, np.ndarray) and z.dtype == np.float32
        assert z.flags.writeable and z.flags.c_contiguous and not z.flags.owndata
        seen.append(address(z))
        z[0, 0, 0, 0] = 123.0

    def second(z, hook):
        seen.append(address(z))
        # The first hook's write is visible: the same memory, not a copy per hook.
        assert z[0, 0, 0, 0] == 123.0

    model.run_with_hooks(toks, fwd_hooks=[("blocks.0.attn.hook_z", first), ("z0", second)])
    assert len(seen) == 2 and seen[0] == seen[1]


def test_a_kept_view_or_slice_becomes_a_private_snapshot():
    model = load_fixture("gpt2_small4")
    toks = Reference("gpt2_small4").tokens
    kept, during = {}, {}

    def keep(x, hook):
        during[hook.name] = address(x)
        kept[hook.name] = (x, x[0, -1], x.T, x.reshape(-1))

    resid_pre = lambda n: n.endswith("hook_resid_pre")  # noqa: E731
    model.run_with_hooks(toks, fwd_hooks=[(resid_pre, keep)])
    # The same points watched, so the same kernels run: the values are bit-identical.
    _, cache = model.run_with_cache(toks, names_filter=resid_pre)
    # A pass with another shape reuses or reallocates the engine's buffers.
    model.run_with_cache(np.concatenate([toks, toks], axis=0))
    gc.collect()
    assert len(kept) == model.cfg.n_layers
    for name, (x, row, xt, flat) in kept.items():
        for arr in (x, row, xt, flat):
            assert not (during[name] <= address(arr) < during[name] + x.nbytes)
        want = cache[name]
        assert max_diff(x, want) == 0.0
        assert max_diff(row, want[0, -1]) == 0.0
        assert max_diff(xt, want.T) == 0.0
        # The snapshots alias one another, as the views did.
        x[0, -1, 0] = 7.0
        assert row[0] == 7.0 and flat[x.shape[1] * x.shape[2] - x.shape[2]] == 7.0
    # Writing to a snapshot does not reach the engine.
    assert max_diff(model(toks), cache_logits(model, toks)) == 0.0


def cache_logits(model, toks):
    return model.run_with_cache(toks, names_filter=[])[0]


def test_in_place_edit_and_returned_array_are_the_same_edit():
    model = load_fixture("llama_gqa")
    toks = Reference("llama_gqa").tokens

    def in_place(x, hook):
        x *= 0.5

    def returned(x, hook):
        return x * 0.5

    a = model.run_with_hooks(toks, fwd_hooks=[("blocks.1.hook_mlp_out", in_place)])
    b = model.run_with_hooks(toks, fwd_hooks=[("blocks.1.hook_mlp_out", returned)])
    clean = model(toks)
    assert max_diff(a, b) <= 1e-6 and max_diff(a, clean) > 1e-3


def test_predicate_hooks_fire_at_every_match_in_order():
    model = load_fixture("gpt2_small4")
    toks = Reference("gpt2_small4").tokens
    fired = []
    model.run_with_hooks(
        toks,
        fwd_hooks=[(lambda n: n.endswith("hook_pattern"), lambda x, h: fired.append((h.name, h.layer(), x.shape)))],
        return_type=None,
    )
    n, heads, p = model.cfg.n_layers, model.cfg.n_heads, toks.shape[1]
    assert fired == [(f"blocks.{l}.attn.hook_pattern", l, (1, heads, p, p)) for l in range(n)]


def test_hook_object_and_hook_dict():
    model = load_fixture("gpt2_tiny")
    names = list(model.hook_dict)
    assert names[0] == "hook_embed" and names[1] == "hook_pos_embed"
    assert "blocks.1.attn.hook_result" in names  # opt-in points exist, as in TL
    hp = model.hook_dict["blocks.1.attn.hook_z"]
    assert hp.name == "blocks.1.attn.hook_z" and hp.layer() == 1
    assert model.hook_dict["ln_final.hook_scale"].layer() is None
    assert "blocks.0.attn.o.hook_in" in model.hook_aliases("blocks.0.attn.hook_z")


def test_an_exception_in_a_hook_propagates_with_type_traceback_and_hook_name():
    model = load_fixture("gpt2_tiny")
    toks = Reference("gpt2_tiny").tokens
    calls = []

    def broken_hook(x, hook):
        calls.append(hook.name)
        raise ZeroDivisionError("inside the hook")

    with pytest.raises(ZeroDivisionError, match="inside the hook") as info:
        model.run_with_hooks(
            toks,
            fwd_hooks=[("blocks.0.hook_resid_pre", broken_hook), ("blocks.1.hook_resid_pre", broken_hook)],
        )
    # The pass stopped at the first failure.
    assert calls == ["blocks.0.hook_resid_pre"]
    assert any("blocks.0.hook_resid_pre" in n for n in getattr(info.value, "__notes__", []))
    assert "broken_hook" in [f.name for f in info.traceback]
    # The model still works afterwards.
    assert model(toks).shape == (2, 9, 450)


def test_a_returned_array_of_the_wrong_shape_is_a_hook_shape_error():
    model = load_fixture("gpt2_tiny")
    toks = Reference("gpt2_tiny").tokens
    with pytest.raises(hooklens.HookShapeError) as info:
        model.run_with_hooks(toks, fwd_hooks=[("blocks.0.attn.hook_z", lambda z, h: z[:, :, 0])])
    msg = str(info.value)
    assert "blocks.0.attn.hook_z" in msg and "[2, 9, 3, 12]" in msg and "[2, 9, 12]" in msg


def test_hooks_and_loss_together():
    ref = Reference("gpt2_small4")
    model = load_fixture("gpt2_small4")
    loss = model.run_with_hooks(ref.tokens, fwd_hooks=[], return_type="loss")
    assert abs(loss - float(ref.tensors["loss"][0])) <= TOL
    with pytest.raises(hooklens.UnsupportedError, match="forward passes only"):
        model.run_with_hooks(ref.tokens, bwd_hooks=[("hook_embed", print)])


def test_a_hook_named_by_a_tl4_alias_sees_the_tl2_name():
    model = load_fixture("gpt2_tiny")
    toks = Reference("gpt2_tiny").tokens
    names = []
    model.run_with_hooks(toks, fwd_hooks=[("blocks.1.attn.o.hook_in", lambda x, h: names.append(h.name))])
    assert names == ["blocks.1.attn.hook_z"]


def test_a_pass_inside_a_hook_runs_and_the_outer_pass_goes_on():
    ref = Reference("gpt2_small4")
    model = load_fixture("gpt2_small4")
    inner = []
    layer, head = int(ref.meta["zero_head_layer"]), int(ref.meta["zero_head_head"])

    def hook(z, h):
        inner.append(model(ref.tokens))  # a nested plain pass (it releases the GIL)
        z[:, :, head, :] = 0.0

    logits = model.run_with_hooks(ref.tokens, fwd_hooks=[(("z", layer), hook)])
    assert max_diff(inner[0], ref.tensors["logits"]) <= TOL
    assert max_diff(logits, ref.tensors["zero_head_logits"]) <= TOL
