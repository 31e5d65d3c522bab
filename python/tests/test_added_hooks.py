"""Hooks added to the model (TL's `add_hook`, `reset_hooks`, `with model.hooks(...)`): they run
in every pass and during `generate`, where the KV cache shows a hook only the new positions,
as TL's hooks see them with `use_past_kv_cache`."""

import numpy as np
import pytest

import hooklens
from conftest import FIXTURES

PROMPT = [5, 17, 9, 3, 40]


def fresh(name):
    """A model of its own (added hooks are per model object; the shared fixtures stay clean)."""
    return hooklens.HookedTransformer.load(str(FIXTURES / name))


def recorder(seen):
    def hook(act, hook):
        seen.append((hook.name, act.shape))

    return hook


def zero(act, hook):
    act[:] = 0.0


def test_hooks_context_runs_in_every_pass_and_ends_with_the_block():
    model = fresh("gpt2_tiny")
    tokens = np.array([PROMPT])
    seen = []
    name = "blocks.0.hook_resid_pre"
    with model.hooks(fwd_hooks=[(name, recorder(seen))]) as m:
        assert m is model
        model(tokens)
        model.run_with_hooks(tokens, fwd_hooks=[(name, recorder(seen))])
        model.run_with_cache(tokens, names_filter=name)
    assert [s[0] for s in seen] == [name] * 4  # twice in run_with_hooks: added, then its own
    model(tokens)
    assert len(seen) == 4, "the hooks are gone after the block"


def test_an_added_edit_changes_forward_and_the_cache_as_run_with_hooks_does():
    model = fresh("gpt2_tiny")
    tokens = np.array([PROMPT])
    name = "blocks.1.hook_resid_pre"
    expected = model.run_with_hooks(tokens, fwd_hooks=[(name, zero)])
    plain = model(tokens)
    assert not np.allclose(expected, plain)
    with model.hooks(fwd_hooks=[(name, zero)]):
        np.testing.assert_array_equal(model(tokens), expected)
        logits, cache = model.run_with_cache(tokens)
    # Caching every point runs the unfused kernels: the same values to float rounding.
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=0)
    assert not cache[name].any(), "the cache holds the edited value"
    np.testing.assert_array_equal(model(tokens), plain)


def test_generate_runs_added_hooks_on_the_new_positions_with_the_kv_cache():
    model = fresh("gpt2_tiny")
    cfg = model.cfg
    seen = []
    names = ["blocks.0.hook_resid_pre", "blocks.0.attn.hook_pattern"]
    with model.hooks(fwd_hooks=[(n, recorder(seen)) for n in names]):
        model.generate(PROMPT, max_new_tokens=4, stop_at_eos=False)
    p, h, d = len(PROMPT), cfg.n_heads, cfg.d_model
    assert seen[:2] == [(names[0], (1, p, d)), (names[1], (1, h, p, p))]
    for i in range(1, 4):  # one new position per pass, keys over every position so far
        assert seen[2 * i : 2 * i + 2] == [(names[0], (1, 1, d)), (names[1], (1, h, 1, p + i))]
    assert len(seen) == 8
    seen.clear()
    with model.hooks(fwd_hooks=[(names[0], recorder(seen))]):
        model.generate(PROMPT, max_new_tokens=3, stop_at_eos=False, use_past_kv_cache=False)
    assert [s[1] for s in seen] == [(1, p + i, d) for i in range(3)], "recomputation: whole passes"


def test_a_steering_hook_in_generate_equals_recomputation_and_changes_the_output():
    model = fresh("llama_gqa")
    vector = np.where(np.arange(model.cfg.d_model) % 3 == 0, 4.0, -2.0).astype(np.float32)

    def steer(act, hook):
        act += vector

    def run(**kw):
        return model.generate(PROMPT, max_new_tokens=20, stop_at_eos=False, **kw)[0].tolist()

    plain = run()
    with model.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", steer)]):
        cached, recomputed = run(), run(use_past_kv_cache=False)
    assert cached == recomputed
    assert cached != plain
    assert run() == plain


def test_add_hook_reset_hooks_and_permanent_hooks():
    model = fresh("gpt2_tiny")
    tokens = np.array([PROMPT])
    seen = []
    model.add_hook("blocks.0.hook_resid_pre", recorder(seen))
    model.add_hook(("resid_post", 1), recorder(seen), is_permanent=True)
    model(tokens)
    assert [s[0] for s in seen] == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post"]
    model.reset_hooks()
    model(tokens)
    assert [s[0] for s in seen[2:]] == ["blocks.1.hook_resid_post"], "the permanent one stays"
    model.reset_hooks(including_permanent=True)
    model(tokens)
    assert len(seen) == 3
    # Inside a block, add_hook belongs to the block.
    with model.hooks():
        model.add_hook(lambda n: n.endswith("hook_embed"), recorder(seen))
        model(tokens)
    model(tokens)
    assert [s[0] for s in seen[3:]] == ["hook_embed"]


def test_bad_added_hooks_raise_clearly():
    model = fresh("gpt2_tiny")
    with pytest.raises(hooklens.UnknownHookError, match="did you mean"):
        model.add_hook("blocks.0.hook_nothing", zero)
    with pytest.raises(hooklens.InputError, match="function"):
        model.add_hook("blocks.0.hook_resid_pre", 3)
    with pytest.raises(hooklens.UnsupportedError):
        model.add_hook("blocks.0.hook_resid_pre", zero, dir="bwd")
    with pytest.raises(hooklens.UnknownHookError):
        model.hooks(fwd_hooks=[("blocks.9.hook_resid_pre", zero)])
    model.add_hook("blocks.0.hook_resid_pre", zero)
    with pytest.raises(hooklens.InputError, match="reset_hooks"):
        model.ablate_heads(PROMPT, target=3)
    model.reset_hooks()
    model.ablate_heads(PROMPT, target=3)


def test_an_exception_in_a_hook_during_generate_is_raised_and_nothing_is_left_behind():
    model = fresh("gpt2_tiny")

    def boom(act, hook):
        if act.shape[1] == 1:  # the first pass over a generated token
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", boom)]):
            model.generate(PROMPT, max_new_tokens=3, stop_at_eos=False)
    assert len(model.generate(PROMPT, max_new_tokens=3, stop_at_eos=False)[0]) == len(PROMPT) + 3
