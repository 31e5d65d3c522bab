"""Ragged batches in the package: texts of different lengths padded as TL's `to_tokens`, and
TL's `attention_mask=` keyword, against TransformerLens 2.18's
`run_with_cache(tokens, attention_mask=mask)` on the fixture weights
(scripts/golden/make_padding_refs.py writes tests/fixtures/padding/: three prompts of 7, 4
and 5 tokens, padded left and right)."""

import json

import numpy as np
import pytest

import hooklens
from conftest import FIXTURES, TOL, load_fixture, max_diff, read_safetensors

NAMES = ["gpt2_tiny", "llama_gqa"]
SIDES = ["left", "right"]
_refs = {}


def ref_of(name):
    """The padding reference of a fixture (tensors only), read once."""
    if name not in _refs:
        _refs[name] = read_safetensors(FIXTURES / "padding" / f"{name}.safetensors")[0]
    return _refs[name]


def prompts(ref):
    """The reference's prompts as id lists (stored as float32)."""
    out, i = [], 0
    while f"prompt.{i}" in ref:
        out.append([int(v) for v in ref[f"prompt.{i}"]])
        i += 1
    return out


def ids(ref, side):
    return ref[f"{side}.tokens"].astype(np.int64)  # [batch, pos]


def mask(ref, side):
    return ref[f"{side}.attention_mask"].astype(np.int64)  # [batch, pos]


def hook_names(ref, side):
    return [k[len(side) + 1 :] for k in ref if k.startswith(f"{side}.") and "hook_" in k]


def texts_ref():
    """TL's own text-list padding on gpt2_tiny: (tensors, texts)."""
    if "texts" not in _refs:
        tensors, meta = read_safetensors(FIXTURES / "padding" / "gpt2_tiny_texts.safetensors")
        assert int(meta["pad_id"]) == 449  # the fixture's EOS (TL's pad when none is set)
        _refs["texts"] = (tensors, json.loads(meta["texts"]))
    return _refs["texts"]


def real_mask(toks, side):
    """Where a text list's padded ids are real: the BOS-started run (pad id 449 = BOS)."""
    lengths = [int(n) for n in (toks != 449).sum(1) + 1]
    m = np.zeros(toks.shape, dtype=bool)
    for b, n in enumerate(lengths):
        if side == "right":
            m[b, :n] = True
        else:
            m[b, toks.shape[1] - n :] = True
    return m


def at_real(act, m, hook):
    """The values of `act` at real positions (queries and keys for a pattern)."""
    if hook.endswith(("hook_pattern", "hook_attn_scores")):
        return [act[b][:, m[b]][:, :, m[b]] for b in range(len(m))]
    return [act[b][m[b]] for b in range(len(m))]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("side", SIDES)
def test_attention_mask_keyword_gives_tls_padded_run(name, side):
    ref, model = ref_of(name), load_fixture(name)
    names = hook_names(ref, side)
    assert len(names) > 20
    logits, cache = model.run_with_cache(ids(ref, side), names_filter=names, attention_mask=mask(ref, side))
    for hook in names:
        d = max_diff(cache[hook], ref[f"{side}.{hook}"])
        assert d <= TOL, f"{name} {side}: {hook} differs from TL by {d}"
    assert max_diff(logits, ref[f"{side}.logits"]) <= TOL


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("side", SIDES)
def test_loss_skips_pads_as_tls_masked_loss(name, side):
    ref, model = ref_of(name), load_fixture(name)
    m = mask(ref, side)
    loss = model(ids(ref, side), return_type="loss", attention_mask=m)
    assert abs(loss - float(ref[f"{side}.loss"][0])) <= TOL
    per_token = model(ids(ref, side), return_type="loss", loss_per_token=True, attention_mask=m)
    assert max_diff(per_token, ref[f"{side}.loss_per_token"]) <= TOL
    # Zero wherever a position or its successor is a pad; not zero elsewhere.
    pair_real = (m[:, :-1] * m[:, 1:]).astype(bool)
    assert np.all(per_token[~pair_real] == 0) and np.all(per_token[pair_real] != 0)
    # Without the mask the pads count: a different loss.
    assert abs(model(ids(ref, side), return_type="loss") - loss) > 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_left_pad_queries_have_zero_pattern_rows_and_last_logits_are_each_prompts(name):
    ref, model = ref_of(name), load_fixture(name)
    logits, cache = model.run_with_cache(
        ids(ref, "left"), names_filter="blocks.0.attn.hook_pattern", attention_mask=mask(ref, "left")
    )
    pattern = cache["blocks.0.attn.hook_pattern"]  # [batch, head, q, k]
    for b, p in enumerate(prompts(ref)):
        pads = pattern.shape[2] - len(p)
        assert pads == 0 or np.all(pattern[b, :, :pads, :] == 0)
        real = pattern[b, :, pads:, pads:]
        assert max_diff(real, ref[f"single.{b}.blocks.0.attn.hook_pattern"][0]) <= TOL
        assert np.allclose(real.sum(-1), 1.0, atol=1e-5)
        single = ref[f"single.{b}.logits"][0]  # [pos, d_vocab]
        assert max_diff(logits[b, -1], single[-1]) <= TOL
        right = model(ids(ref, "right"), attention_mask=mask(ref, "right"))
        assert max_diff(right[b, len(p) - 1], single[-1]) <= TOL


@pytest.mark.parametrize("side", SIDES)
def test_to_tokens_pads_texts_as_tl(side):
    ref, texts = texts_ref()
    model = load_fixture("gpt2_tiny")
    got = model.to_tokens(texts, padding_side=side)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, ref[f"{side}.tokens"])
    if side == "right":
        np.testing.assert_array_equal(model.to_tokens(texts), got)
        np.testing.assert_array_equal(model.to_tokens(texts, padding_side=None), got)
    no_bos = model.to_tokens(texts, prepend_bos=False, padding_side=side)
    assert no_bos.shape == (3, got.shape[1] - 1)
    for b, text in enumerate(texts):
        alone = model.to_tokens(text, prepend_bos=False)[0]
        row = no_bos[b, : len(alone)] if side == "right" else no_bos[b, no_bos.shape[1] - len(alone) :]
        np.testing.assert_array_equal(row, alone)


def test_left_padded_text_lists_equal_tls_run_at_every_position():
    ref, texts = texts_ref()
    model = load_fixture("gpt2_tiny")
    names = hook_names(ref, "left")
    logits, cache = model.run_with_cache(texts, names_filter=names, padding_side="left")
    for hook in names:
        d = max_diff(cache[hook], ref[f"left.{hook}"])
        assert d <= TOL, f"left: {hook} differs from TL by {d}"
    np.testing.assert_array_equal(cache.tokens, ref["left.tokens"])
    assert max_diff(logits, ref["left.logits"]) <= TOL
    assert max_diff(model(texts, padding_side="left"), ref["left.logits"]) <= TOL
    loss = model.forward(texts, return_type="loss", padding_side="left")
    assert abs(loss - float(ref["left.loss"][0])) <= TOL
    per_token = model(texts, return_type="loss", loss_per_token=True, padding_side="left")
    assert max_diff(per_token, ref["left.loss_per_token"]) <= TOL


def test_right_padded_text_lists_equal_tls_run_at_real_positions_and_skip_pads_in_the_loss():
    # TL masks no right-padded text list, so only its real positions are comparable; hooklens
    # masks the pads (the values TL gives with attention_mask, tested above).
    ref, texts = texts_ref()
    model = load_fixture("gpt2_tiny")
    names = hook_names(ref, "right")
    m = real_mask(ref["right.tokens"], "right")
    logits, cache = model.run_with_cache(texts, names_filter=names)
    for hook in names:
        for b, (got, want) in enumerate(zip(at_real(cache[hook], m, hook), at_real(ref[f"right.{hook}"], m, hook))):
            d = max_diff(got, want)
            assert d <= TOL, f"right: {hook} row {b} differs from TL by {d}"
    assert max_diff(logits[m], ref["right.logits"][m]) <= TOL
    per_token = model(texts, return_type="loss", loss_per_token=True)
    pairs = m[:, :-1] & m[:, 1:]
    assert np.all(per_token[~pairs] == 0)
    assert max_diff(per_token[pairs], ref["right.loss_per_token"][pairs]) <= TOL
    loss = model(texts, return_type="loss")
    assert abs(loss - float(ref["right.loss_per_token"][pairs].mean())) <= TOL
    assert abs(loss - float(ref["right.loss"][0])) > 0.1  # TL's counts the pads


@pytest.mark.parametrize("side", SIDES)
def test_attention_mask_keyword_equals_text_list_padding(side):
    ref, texts = texts_ref()
    model = load_fixture("gpt2_tiny")
    toks = ref[f"{side}.tokens"]
    m = real_mask(toks, side).astype(np.int64)
    by_mask = model(toks, attention_mask=m, return_type="both")
    by_text = model(texts, padding_side=side, return_type="both")
    assert max_diff(by_mask[0], by_text[0]) == 0.0 and by_mask[1] == by_text[1]
    _, c1 = model.run_with_cache(toks, names_filter=("z", 1), attention_mask=m)
    _, c2 = model.run_with_cache(texts, names_filter=("z", 1), padding_side=side)
    assert max_diff(c1["z", 1], c2["z", 1]) == 0.0


@pytest.mark.parametrize("side", SIDES)
def test_hooks_see_the_padded_tensors(side):
    ref, texts = texts_ref()
    model = load_fixture("gpt2_tiny")
    m = real_mask(ref[f"{side}.tokens"], side)
    seen = {}

    def keep(act, hook):
        seen[hook.name] = act.copy()

    masks = []
    hooks = [
        ("blocks.1.hook_resid_post", keep),
        ("blocks.0.attn.hook_pattern", keep),
        ("blocks.0.hook_resid_pre", lambda act, hook: masks.append(hook.attention_mask)),
    ]
    model.run_with_hooks(texts, fwd_hooks=hooks, padding_side=side)
    # The mask is hooklens' (TL's hooks have none): 1 real, 0 pad, as TL's attention_mask.
    np.testing.assert_array_equal(masks[0], m.astype(np.int64))
    assert model.hook_dict["blocks.0.hook_resid_pre"].attention_mask is None
    seq = m.shape[1]
    assert seen["blocks.1.hook_resid_post"].shape[:2] == (3, seq)
    assert seen["blocks.0.attn.hook_pattern"].shape[2:] == (seq, seq)
    for hook in ("blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern"):
        for got, want in zip(at_real(seen[hook], m, hook), at_real(ref[f"{side}.{hook}"], m, hook)):
            assert max_diff(got, want) <= TOL
    # A hook's edit at the pads leaves the real positions alone (they never read them).
    def poison_pads(resid, hook):
        resid[~m] = 1e6

    out = model.run_with_hooks(texts, fwd_hooks=[("blocks.0.hook_resid_pre", poison_pads)], padding_side=side)
    assert max_diff(out[m], ref[f"{side}.logits"][m]) <= TOL


def test_equal_lengths_have_no_pads_and_an_all_ones_mask_changes_nothing():
    model = load_fixture("gpt2_tiny")
    texts = ["Hi", "Ha"]
    toks = model.to_tokens(texts, padding_side="left")
    np.testing.assert_array_equal(toks, np.stack([model.to_tokens(t)[0] for t in texts]))
    assert 449 not in toks[:, 1:]
    plain = model(toks)
    assert max_diff(model(texts, padding_side="left"), plain) == 0.0
    masks = []
    model.run_with_hooks(toks, fwd_hooks=[("hook_embed", lambda a, h: masks.append(h.attention_mask))])
    assert masks == [None]
    assert max_diff(model(toks, attention_mask=np.ones(toks.shape, dtype=bool)), plain) == 0.0
    one_row = model(toks[0], attention_mask=np.ones(toks.shape[1], dtype=np.int32))
    assert max_diff(one_row, plain[:1]) <= TOL


def test_bad_masks_and_sides_are_input_errors():
    ref, model = ref_of("gpt2_tiny"), load_fixture("gpt2_tiny")
    toks = ids(ref, "left")
    good = mask(ref, "left")
    cases = {
        "the tokens' shape": good[:, 1:],
        "an integer array": good.astype(np.float32),
        "holds 2": good * 2,
        "pads between real positions": np.array([[1, 0, 1, 1, 1, 1, 1]] * 3),
        "one side": np.stack([good[0], good[1], mask(ref, "right")[2]]),
        "no real": np.array([[1] * 7, [0] * 7, [1] * 7]),
    }
    for want, bad in cases.items():
        with pytest.raises(hooklens.InputError, match=want):
            model(toks, attention_mask=bad)
    with pytest.raises(hooklens.InputError, match="padding side `middle`"):
        model.to_tokens(["a", "bc"], padding_side="middle")
    with pytest.raises(hooklens.InputError, match="padding side `up`"):
        model(["a", "bc"], padding_side="up")
    with pytest.raises(hooklens.InputError, match="needs tokens="):
        model(np.zeros((1, 2, 64), dtype=np.float32), start_at_layer=1, attention_mask=np.ones((1, 2)))
