"""ActivationCache: TL's short forms, aliases, names_filter forms."""

import numpy as np
import pytest

import hooklens
from conftest import Reference, load_fixture


@pytest.fixture(scope="module")
def cached():
    model = load_fixture("gpt2_small4")
    toks = Reference("gpt2_small4").tokens
    return model, model.run_with_cache(toks)[1]


def test_short_forms_name_the_same_arrays_as_full_names(cached):
    model, cache = cached
    n = model.cfg.n_layers
    assert cache["z", 1] is cache["blocks.1.attn.hook_z"]
    assert cache[("z", 1)] is cache["blocks.1.attn.hook_z"]
    assert cache["pattern", 0, "attn"] is cache["blocks.0.attn.hook_pattern"]
    assert cache["attn", 0] is cache["blocks.0.attn.hook_pattern"]
    assert cache["attn_scores", 2] is cache["blocks.2.attn.hook_attn_scores"]
    assert cache["scale", 1, "ln1"] is cache["blocks.1.ln1.hook_scale"]
    assert cache["scale"] is cache["ln_final.hook_scale"]
    assert cache["resid_pre", -1] is cache[f"blocks.{n - 1}.hook_resid_pre"]
    assert cache["embed"] is cache["hook_embed"]
    assert cache["z1"] is cache["blocks.1.attn.hook_z"]


def test_tl4_aliases_index_the_same_point(cached):
    _, cache = cached
    assert cache["blocks.0.hook_out"] is cache["blocks.0.hook_resid_post"]
    assert cache["blocks.0.attn.o.hook_in"] is cache["blocks.0.attn.hook_z"]


def test_keys_values_items_and_membership(cached):
    model, cache = cached
    keys = cache.keys()
    assert len(cache) == len(keys) == 4 + 17 * model.cfg.n_layers  # GPT-2: TL's default set
    assert list(cache) == keys
    assert [k for k, _ in cache.items()] == keys
    assert all(isinstance(v, np.ndarray) for v in cache.values())
    assert "blocks.0.attn.hook_z" in cache and ("z", 0) in cache
    assert "blocks.0.attn.hook_result" not in cache  # opt-in: not in the default set
    assert "blocks.0.attn.hook_nope" not in cache
    assert set(cache.cache_dict) == set(keys)


def test_an_uncached_point_and_an_unknown_name_raise(cached):
    _, cache = cached
    with pytest.raises(hooklens.InputError, match="widen names_filter"):
        cache["blocks.0.attn.hook_result"]
    with pytest.raises(hooklens.UnknownHookError, match="did you mean"):
        cache["blocks.0.attn.hook_zz"]
    with pytest.raises(hooklens.InputError, match="layer 99 is out of range"):
        cache["z", 99]


@pytest.mark.parametrize(
    "names_filter, expect",
    [
        ("blocks.1.hook_resid_post", ["blocks.1.hook_resid_post"]),
        (["hook_embed", ("z", 0)], ["hook_embed", "blocks.0.attn.hook_z"]),
        (lambda n: n.endswith("hook_v"), ["blocks.0.attn.hook_v", "blocks.1.attn.hook_v", "blocks.2.attn.hook_v"]),
        ([], []),
    ],
)
def test_names_filter_forms(names_filter, expect):
    model = load_fixture("gpt2_small4")
    toks = Reference("gpt2_small4").tokens
    _, cache = model.run_with_cache(toks, names_filter=names_filter)
    assert cache.keys() == expect


def test_a_predicate_filter_can_select_opt_in_points():
    model = load_fixture("gpt2_small4")
    ref = Reference("gpt2_small4")
    _, cache = model.run_with_cache(ref.tokens, names_filter=lambda n: n.endswith("hook_result"))
    assert cache.keys() == [f"blocks.{l}.attn.hook_result" for l in range(3)]
    d = np.abs(cache["result", 2] - ref.tensors["blocks.2.attn.hook_result"]).max()
    assert d <= 1e-4
