"""ablate_heads / patch / trace against loops of Python hooks (independent of the sweep
engine) and against the HF patching reference for SmolLM2."""

import json

import numpy as np
import pytest

from conftest import FIXTURES, Reference, load_fixture, log_softmax


@pytest.fixture(scope="module")
def small():
    model = load_fixture("gpt2_small4")
    toks = Reference("gpt2_small4").tokens  # [1, 20]
    return model, toks


def logprob(logits, target):
    return float(log_softmax(logits[0, -1])[target])


def zero_head(head):
    def hook(z, _hook):
        z[:, :, head, :] = 0.0

    return hook


def test_ablate_heads_equals_a_loop_of_python_zero_head_hooks(small):
    model, toks = small
    target = int(model(toks)[0, -1].argmax())
    grid, report = model.ablate_heads(toks, target=target, metric="logprob")
    n, h = model.cfg.n_layers, model.cfg.n_heads
    assert grid.shape == (n, h)
    clean = logprob(model(toks), target)
    assert report["clean"] == pytest.approx(clean, abs=1e-4)
    for l in range(n):
        for head in range(h):
            logits = model.run_with_hooks(toks, fwd_hooks=[(("z", l), zero_head(head))])
            assert grid[l, head] == pytest.approx(logprob(logits, target) - clean, abs=2e-4)
    assert np.abs(grid).max() > 1e-3  # some head matters
    assert len(report["results"]) == n * h
    row = report["results"][h + 2]
    assert (row["layer"], row["head"]) == (1, 2) and row["delta"] == pytest.approx(grid[1, 2])
    assert report["tokens"] == toks[0].tolist() and report["metric"]["kind"] == "log_prob"
    assert set(report["stats"]) >= {"variants", "passes", "seconds", "gflop", "peak_arena_bytes"}
    assert report["stats"]["variants"] == n * h


def test_ablating_attn_and_mlp_layers(small):
    model, toks = small
    target = int(model(toks)[0, -1].argmax())
    grid, _ = model.ablate_heads(toks, target=target, what="mlp")
    assert grid.shape == (model.cfg.n_layers,)
    for l in range(model.cfg.n_layers):
        logits = model.run_with_hooks(toks, fwd_hooks=[(("mlp_out", l), lambda x, h: np.zeros_like(x))])
        assert grid[l] == pytest.approx(logprob(logits, target) - logprob(model(toks), target), abs=2e-4)


def corrupted_of(toks, pos, new_id):
    out = toks.copy()
    out[0, pos] = new_id
    return out


@pytest.mark.parametrize("site, hook_name", [("resid_pre", "hook_resid_pre"), ("mlp_out", "hook_mlp_out")])
def test_patch_equals_a_loop_of_python_patching_hooks(small, site, hook_name):
    model, clean = small
    corrupted = corrupted_of(clean, 5, (int(clean[0, 5]) + 7) % model.cfg.d_vocab)
    target = int(model(clean)[0, -1].argmax())
    against = int(np.argsort(model(corrupted)[0, -1])[-2])
    grid, report = model.patch(clean, corrupted, target=target, against=against, site=site)
    n, p = model.cfg.n_layers, clean.shape[1]
    assert grid.shape == (n, p)

    def diff(logits):
        return float(logits[0, -1, target] - logits[0, -1, against])

    _, cache = model.run_with_cache(clean)
    c, k = diff(model(clean)), diff(model(corrupted))
    assert abs(c - k) > 0.05 and report["clean"] == pytest.approx(c, abs=1e-4)
    assert report["corrupted"] == pytest.approx(k, abs=1e-4)
    for l in range(n):
        name = f"blocks.{l}.{hook_name}"
        for pos in range(p):

            def patch(x, hook, pos=pos):
                x[:, pos] = cache[hook.name][:, pos]

            patched = diff(model.run_with_hooks(corrupted, fwd_hooks=[(name, patch)]))
            assert grid[l, pos] == pytest.approx((patched - k) / (c - k), abs=1e-3), (l, pos)


def test_patch_by_head_shapes(small):
    model, clean = small
    corrupted = corrupted_of(clean, 5, (int(clean[0, 5]) + 7) % model.cfg.d_vocab)
    target = int(model(clean)[0, -1].argmax())
    g, _ = model.patch(clean, corrupted, target=target, site="z")
    assert g.shape == (model.cfg.n_layers, model.cfg.n_heads)
    g, _ = model.patch(clean, corrupted, target=target, site="z_by_pos")
    assert g.shape == (model.cfg.n_layers, model.cfg.n_heads, clean.shape[1])
    # Before the first differing position, patching changes nothing.
    assert np.all(g[:, :, :5] == 0.0)


def test_patch_on_smollm2_matches_hf_reference(smollm2):
    ref = json.loads((FIXTURES / "smollm2" / "patch_resid_pre.json").read_text())
    grid, report = smollm2.patch(ref["clean"], ref["corrupted"], target=" Paris", against=" Rome")
    assert report["tokens"] == ref["clean_ids"] and report["corrupted_tokens"] == ref["corrupted_ids"]
    c, k = ref["clean_value"], ref["corrupted_value"]
    assert report["clean"] == pytest.approx(c, abs=2e-3) and report["corrupted"] == pytest.approx(k, abs=2e-3)
    values = grid * (report["clean"] - report["corrupted"]) + report["corrupted"]
    assert np.abs(values - np.array(ref["values"])).max() < 2e-3


def test_trace_restores_fully_at_the_end_and_not_before_the_subject(small):
    model, toks = small
    target = int(model(toks)[0, -1].argmax())
    grid, report = model.trace(toks, subject=[2, 3], target=target, samples=3, seed=1)
    n, p = model.cfg.n_layers, toks.shape[1]
    assert grid.shape == (n, p)
    assert report["corrupted"] != pytest.approx(report["clean"])
    # Positions before the subject are untouched by the noise: restoring them changes nothing.
    assert np.abs(grid[:, :2]).max() < 1e-6
    # The last block's output at the last position carries everything the logits read.
    assert grid[n - 1, p - 1] == pytest.approx(1.0, abs=1e-5)
    again, _ = model.trace(toks, subject=[2, 3], target=target, samples=3, seed=1)
    assert np.array_equal(grid, again)
    other, rep2 = model.trace(toks, subject=[2, 3], target=target, samples=3, seed=2)
    assert rep2["corrupted"] != report["corrupted"]


def test_trace_finds_a_text_subject(smollm2):
    toks = smollm2.to_tokens("The Eiffel Tower is in the city of")
    grid, report = smollm2.trace(toks, subject="Eiffel Tower", target=" Paris", samples=1, kind="resid")
    assert grid.shape == (30, toks.shape[1])
    # BOS and "The" precede the subject: restoring them changes nothing but float rounding
    # (the batched sweep pass and the corrupted run group their rows differently in the GEMM,
    # whose blocking follows the CPU's cache sizes). 1e-6 held on the Zen 3 machine; the
    # AVX-512 Xeon gives 1.4e-6 (1.1e-6 with the AVX2 path forced), so the bound is 1e-5.
    assert np.abs(grid[:, :2]).max() < 1e-5
    assert report["metric"]["kind"] == "prob"
