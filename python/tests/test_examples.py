"""The seed's TransformerLens examples, written against this package (numpy instead of torch:
`.copy()` for `.clone()`, `@` for matmul)."""

from functools import partial

import numpy as np
import pytest

from conftest import Reference, load_fixture, max_diff


def test_store_activations_with_a_hook(smollm2):
    stored = {}

    def store_hook(activation, hook):
        stored[hook.name] = activation.copy()
        return activation  # returning the view itself keeps the in-place value

    logits = smollm2.run_with_hooks(
        "The cat sat",
        fwd_hooks=[("blocks.5.hook_resid_post", store_hook), ("blocks.5.attn.hook_pattern", store_hook)],
    )
    names = ["blocks.5.hook_resid_post", "blocks.5.attn.hook_pattern"]
    clean, cache = smollm2.run_with_cache("The cat sat", names_filter=names)
    p = smollm2.to_tokens("The cat sat").shape[1]
    assert stored["blocks.5.hook_resid_post"].shape == (1, p, 576)
    assert stored["blocks.5.attn.hook_pattern"].shape == (1, 9, p, p)
    for n in names:
        assert max_diff(stored[n], cache[n]) == 0.0
    assert max_diff(logits, clean) == 0.0


def zero_head_hook(activation, hook, head_idx):
    activation[:, :, head_idx, :] = 0
    return activation


def test_zero_ablate_a_head_matches_the_builtin_ablation(smollm2):
    toks = smollm2.to_tokens("The Eiffel Tower is in the city of")
    paris = smollm2.to_single_token(" Paris")
    clean = smollm2(toks)
    ablated = smollm2.run_with_hooks(toks, fwd_hooks=[("blocks.3.attn.hook_z", partial(zero_head_hook, head_idx=5))])
    assert max_diff(clean, ablated) > 1e-3

    def lp(logits):
        x = logits[0, -1].astype(np.float64)
        return x[paris] - x.max() - np.log(np.exp(x - x.max()).sum())

    grid, _ = smollm2.ablate_heads(toks, target=" Paris", metric="logprob")
    assert grid.shape == (30, 9)
    assert grid[3, 5] == pytest.approx(lp(ablated) - lp(clean), abs=1e-3)


def patch_hook(activation, hook, patch_cache, pos=None):
    patch_value = patch_cache[hook.name]
    if pos is not None:
        activation[:, pos] = patch_value[:, pos]
    else:
        activation[:] = patch_value
    return activation


def test_patch_from_a_cache():
    model = load_fixture("gpt2_tiny")
    clean = model.to_tokens("Hello world")
    corrupted = model.to_tokens("Jello world")
    assert clean.shape == corrupted.shape
    _, clean_cache = model.run_with_cache(clean)
    # Patching the whole last residual stream gives back the clean run exactly.
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    patched = model.run_with_hooks(corrupted, fwd_hooks=[(last, partial(patch_hook, patch_cache=clean_cache))])
    assert max_diff(patched, model(clean)) < 1e-5
    assert max_diff(model(corrupted), model(clean)) > 1e-2
    # Per position, it is one cell of model.patch (recovery of the logit of clean's top token).
    target = int(model(clean)[0, -1].argmax())
    grid, report = model.patch(clean, corrupted, target=target, metric="logprob", site="resid_pre")
    pos = clean.shape[1] - 1
    out = model.run_with_hooks(
        corrupted, fwd_hooks=[("blocks.1.hook_resid_pre", partial(patch_hook, patch_cache=clean_cache, pos=pos))]
    )
    x = out[0, -1].astype(np.float64)
    value = x[target] - x.max() - np.log(np.exp(x - x.max()).sum())
    c, k = report["clean"], report["corrupted"]
    assert grid[1, pos] == pytest.approx((value - k) / (c - k), abs=1e-3)


def test_head_importance_by_loss():
    model = load_fixture("gpt2_small4")
    toks = Reference("gpt2_small4").tokens

    def measure_importance(layer, head):
        clean_loss = model(toks, return_type="loss")
        ablated_loss = model.run_with_hooks(
            toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", partial(zero_head_hook, head_idx=head))], return_type="loss"
        )
        return ablated_loss - clean_loss

    grid, _ = model.ablate_heads(toks, metric="loss")
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            assert grid[layer, head] == pytest.approx(measure_importance(layer, head), abs=1e-4)
    ranking = np.argsort(-grid, axis=None)
    assert grid.flat[ranking[0]] == grid.max()


def extract_w_o(model, toks, layer):
    """W_O[layer] `[n_heads, d_head, d_model]`, read with hooks: z set to basis vectors, the
    per-head result (z_h W_O[h], no bias) read back. (model.W_O lands with the analysis issue.)"""
    d_head = model.cfg.d_head
    got = {}

    def basis(z, hook):
        z[:] = 0
        for i in range(d_head):
            z[0, i, :, i] = 1.0

    def read(result, hook):
        got["r"] = result[0, :d_head].copy()  # [d_head, n_heads, d_model]

    model.run_with_hooks(toks, fwd_hooks=[(("z", layer), basis), (("result", layer), read)], return_type=None)
    return got["r"].transpose(1, 0, 2)


def extract_w_u(model, toks):
    """The unembedding as the final norm's output sees it `[d_model, d_vocab]` (for RMSNorm
    `diag(w_ln_final) W_U`): `ln_final.hook_normalized` set to the identity."""
    d = model.cfg.d_model
    eye = np.eye(d, dtype=np.float32)[None]
    return model.run_with_hooks(toks[:, :d], fwd_hooks=[("ln_final.hook_normalized", lambda x, h: eye)])[0]


def test_direct_logit_attribution_from_cache_z():
    model = load_fixture("llama_gqa")  # RMSNorm, no biases: the residual is a sum of parts
    cfg = model.cfg
    toks = (np.arange(cfg.d_model) * 7 % cfg.d_vocab)[None]
    w_u = extract_w_u(model, toks)
    prompt = Reference("llama_gqa").tokens[:1]
    logits, cache = model.run_with_cache(prompt)
    scale = cache["ln_final.hook_scale"]  # [1, pos, 1]

    def head_direct_effect(layer, head):
        head_output = cache["z", layer][:, :, head, :]  # (batch, seq, d_head)
        head_contrib = head_output @ w_o[layer][head]  # (batch, seq, d_model)
        return (head_contrib / scale) @ w_u  # (batch, seq, vocab)

    w_o = [extract_w_o(model, prompt, l) for l in range(cfg.n_layers)]
    total = (cache["hook_embed"] / scale) @ w_u
    for layer in range(cfg.n_layers):
        total += (cache["mlp_out", layer] / scale) @ w_u
        for head in range(cfg.n_heads):
            total += head_direct_effect(layer, head)
    assert max_diff(total, logits) < 1e-3
    one = head_direct_effect(1, 2)
    assert np.abs(one).max() > 1e-2
