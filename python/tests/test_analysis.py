"""TL's weight processing, the weights under TL names, generation and cache files, against
references made independently of the code under test: TransformerLens 2.18's processed model
(tests/fixtures/processed/, scripts/golden/make_processed_refs.py), TL's unprocessed weights
(tests/fixtures/analysis/), the checkpoints' own safetensors, and HF transformers' greedy
`generate` (tests/fixtures/generate/refs.json)."""

import json

import numpy as np
import pytest

import hooklens
from conftest import FIXTURES, TOL, load_fixture, max_diff, read_safetensors

PROCESSED = ["gpt2_tiny", "llama_gqa"]
TL_ON = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True)
_processed = {}


def processed_model(name):
    """A fixture loaded with all four of TL's processing steps (once per session)."""
    if name not in _processed:
        _processed[name] = hooklens.HookedTransformer.load(str(FIXTURES / name), **TL_ON)
    return _processed[name]


def weights_of(tensors):
    """The `w.<TL name>` tensors of a reference file, by TL name."""
    return {k[2:]: v for k, v in tensors.items() if k.startswith("w.")}


# ---- weight processing ------------------------------------------------------------------


@pytest.mark.parametrize("name", PROCESSED)
def test_processed_model_hooks_and_logits_equal_tl_from_pretrained(name):
    ref, _ = read_safetensors(FIXTURES / "processed" / f"{name}.safetensors")
    model = processed_model(name)
    hooks = [k for k in ref if "hook_" in k]
    logits, cache = model.run_with_cache(ref["tokens"], names_filter=hooks)
    assert len(hooks) >= 38
    for hook in hooks:
        d = max_diff(cache[hook], ref[hook])
        assert d <= TOL, f"{name} {hook}: {d}"
    assert max_diff(logits, ref["logits"]) <= TOL


@pytest.mark.parametrize("name", PROCESSED)
def test_processed_weights_in_tl_names_equal_tl(name):
    ref, _ = read_safetensors(FIXTURES / "processed" / f"{name}.safetensors")
    model = processed_model(name)
    want = weights_of(ref)
    assert len(want) >= 16
    for w, value in want.items():
        got = model.tl_weight(w)
        assert got.dtype == np.float32
        assert max_diff(got, value) <= 1e-5, f"{name} {w}"
        if "." not in w:  # a stacked or global name: the property too
            assert max_diff(getattr(model, w), value) <= 1e-5, f"{name} .{w}"


@pytest.mark.parametrize("name", PROCESSED)
def test_default_load_and_no_processing_give_tls_unprocessed_weights(name):
    ref, _ = read_safetensors(FIXTURES / "analysis" / f"{name}.safetensors")
    want = weights_of(ref)
    plain = load_fixture(name)  # load() with the defaults: no processing
    none = hooklens.HookedTransformer.from_pretrained_no_processing(str(FIXTURES / name))
    for w, value in want.items():
        assert max_diff(plain.tl_weight(w), value) <= 1e-6, f"{name} {w}"
        assert max_diff(none.tl_weight(w), value) <= 1e-6, f"{name} {w} (no_processing)"
    # Processing changes the weights (TL's processed W_U differs from the checkpoint's).
    assert max_diff(processed_model(name).W_U, want["W_U"]) > 1e-3


def test_each_processing_keyword_is_its_own_step():
    path = str(FIXTURES / "gpt2_tiny")
    plain = load_fixture("gpt2_tiny")
    unembed = hooklens.HookedTransformer.from_pretrained(path, center_unembed=True)
    w_u = unembed.W_U
    assert np.abs(w_u.mean(axis=1)).max() < 1e-5  # centred over the vocabulary
    assert max_diff(w_u, plain.W_U) > 1e-3
    assert max_diff(unembed.W_Q, plain.W_Q) == 0.0  # nothing else changed


# ---- weights under TL names -------------------------------------------------------------


def test_gpt2_weights_equal_the_checkpoints_conv1d_tensors_reshaped():
    st, _ = read_safetensors(FIXTURES / "gpt2_tiny" / "model.safetensors")
    model = load_fixture("gpt2_tiny")
    cfg = model.cfg
    d, h, dh = cfg.d_model, cfg.n_heads, cfg.d_head
    qkv = [st[f"transformer.h.{l}.attn.c_attn.weight"] for l in range(cfg.n_layers)]  # [d, 3d]
    qkv_b = [st[f"transformer.h.{l}.attn.c_attn.bias"] for l in range(cfg.n_layers)]  # [3d]

    def heads(w, i):  # [d, 3d] -> part i as [n_heads, d_model, d_head]
        return w[:, i * d : (i + 1) * d].reshape(d, h, dh).transpose(1, 0, 2)

    for i, name in enumerate(["W_Q", "W_K", "W_V"]):
        want = np.stack([heads(w, i) for w in qkv])  # [n_layers, n_heads, d_model, d_head]
        assert getattr(model, name).shape == (cfg.n_layers, h, d, dh)
        assert max_diff(getattr(model, name), want) == 0.0, name
        want_b = np.stack([b[i * d : (i + 1) * d].reshape(h, dh) for b in qkv_b])
        assert max_diff(getattr(model, "b_" + name[-1]), want_b) == 0.0
    w_o = np.stack(
        [st[f"transformer.h.{l}.attn.c_proj.weight"].reshape(h, dh, d) for l in range(cfg.n_layers)]
    )
    assert max_diff(model.W_O, w_o) == 0.0
    assert max_diff(model.W_E, st["transformer.wte.weight"]) == 0.0
    assert max_diff(model.W_pos, st["transformer.wpe.weight"]) == 0.0
    assert max_diff(model.W_U, st["transformer.wte.weight"].T) == 0.0  # tied
    assert max_diff(model.W_in[1], st["transformer.h.1.mlp.c_fc.weight"]) == 0.0
    # OV of a layer is W_V @ W_O per head, multiplied out.
    ov = np.einsum("hde,hef->hdf", heads(qkv[0], 2).astype(np.float64), w_o[0])
    assert max_diff(model.tl_weight("blocks.0.attn.OV"), ov) <= 1e-5


def test_weights_a_model_lacks_raise_cleanly():
    llama, gpt2 = load_fixture("llama_gqa"), load_fixture("gpt2_tiny")
    assert not hasattr(llama, "W_pos")  # rotary
    with pytest.raises(AttributeError, match="rotary"):
        llama.W_pos
    with pytest.raises(AttributeError, match="not gated"):
        gpt2.W_gate
    with pytest.raises(hooklens.InputError, match="rotary"):
        llama.tl_weight("W_pos")
    with pytest.raises(hooklens.InputError, match="unknown weight"):
        gpt2.tl_weight("W_nope")
    with pytest.raises(hooklens.InputError, match="unknown weight"):
        gpt2.tl_weight("blocks.9.attn.W_Q")
    with pytest.raises(hooklens.InputError, match="RMSNorm has no bias"):
        llama.tl_weight("blocks.0.ln1.b")
    # A bias the model lacks is zeros, as TL (llama_gqa has no query bias).
    assert not llama.b_Q.any() and llama.b_Q.shape == (2, 6, 8)
    # Grouped keys: W_K repeated per query head, _W_K per key/value head.
    k = llama.tl_weight("blocks.0.attn._W_K")
    assert k.shape == (2, 48, 8) and llama.W_K.shape == (2, 6, 48, 8)
    assert np.array_equal(llama.W_K[0, 2], k[0]) and np.array_equal(llama.W_K[0, 5], k[1])


# ---- generation -------------------------------------------------------------------------


def generate_refs():
    return json.loads((FIXTURES / "generate" / "refs.json").read_text())


@pytest.mark.parametrize("kv", [True, False])
def test_greedy_generate_equals_hf_on_the_random_checkpoints(kv):
    for r in generate_refs()["random"]:
        model = load_fixture(r["fixture"])
        out = model.generate(
            np.array(r["prompt"]), max_new_tokens=r["max_new"], stop_at_eos=False, use_past_kv_cache=kv
        )
        assert out.dtype == np.int64 and out.shape == (1, len(r["prompt"]) + r["max_new"])
        assert out[0].tolist() == r["prompt"] + r["new_tokens"], r["fixture"]


def test_greedy_generate_equals_hf_on_smollm2(smollm2):
    refs = generate_refs()
    for r in refs["smollm2"]:
        assert smollm2.to_tokens(r["text"])[0].tolist() == r["ids"]
        tokens = smollm2.generate(r["text"], max_new_tokens=r["max_new"], return_type="tokens")
        new = tokens[0, len(r["ids"]) :].tolist()
        assert new == r["new_tokens"], r["text"]
        if new[-1] == refs["smollm2_eos"]:
            assert len(new) <= r["max_new"]  # stopped at the end-of-sequence token, kept
        # A text in is a text out: the prompt and the new tokens, without the BOS.
        text = smollm2.generate(r["text"], max_new_tokens=r["max_new"])
        assert text == smollm2.to_string(tokens[0, 1:])
        assert text.startswith(r["text"])


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    model = load_fixture("gpt2_small4")
    kw = dict(max_new_tokens=30, temperature=1.0, top_k=50, top_p=0.95, stop_at_eos=False)
    prompt = [449, 10, 20]
    a = model.generate(prompt, seed=3, **kw)
    b = model.generate(prompt, seed=3, **kw)
    c = model.generate(prompt, seed=4, **kw)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # do_sample=False is greedy whatever the temperature.
    greedy = model.generate(prompt, max_new_tokens=30, stop_at_eos=False)
    forced = model.generate(prompt, seed=3, do_sample=False, **kw)
    assert np.array_equal(greedy, forced)


def test_generate_return_types_stop_text_and_verbose(capsys):
    model = load_fixture("gpt2_tiny")
    r = generate_refs()["random"][0]
    ids = np.array([r["prompt"]])  # [1, pos]
    text = model.generate(ids, max_new_tokens=r["max_new"], stop_at_eos=False, return_type="str")
    assert isinstance(text, str)
    assert text == model.to_string(np.array(r["prompt"][1:] + r["new_tokens"]))  # BOS left out
    # A stop text ends generation once the new text contains it (and is kept).
    full = model.generate(ids, max_new_tokens=r["max_new"], stop_at_eos=False)
    new_text = model.to_string(full[0, len(r["prompt"]) :])
    stop = new_text[len(new_text) // 2 : len(new_text) // 2 + 2]
    stopped = model.generate(ids, max_new_tokens=r["max_new"], stop_at_eos=False, stop=stop)
    assert stopped.shape[1] < full.shape[1] and np.array_equal(stopped[0], full[0, : stopped.shape[1]])
    assert stop in model.to_string(stopped[0, len(r["prompt"]) :])
    capsys.readouterr()
    model.generate(ids, max_new_tokens=5, stop_at_eos=False, verbose=True)
    printed = capsys.readouterr().out
    assert printed.rstrip("\n") == model.to_string(full[0, len(r["prompt"]) : len(r["prompt"]) + 5])


def test_generate_rejects_bad_arguments():
    model = load_fixture("gpt2_tiny")
    with pytest.raises(hooklens.InputError, match="return_type"):
        model.generate("a", return_type="logits")
    with pytest.raises(hooklens.InputError, match="one prompt"):
        model.generate(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(hooklens.InputError, match="context"):
        model.generate("a", max_new_tokens=model.cfg.n_ctx)
    with pytest.raises(hooklens.InputError, match="temperature"):
        model.generate("a", temperature=-1.0)
    with pytest.raises(hooklens.InputError, match="do_sample"):
        model.generate("a", do_sample=True)
    with pytest.raises(hooklens.TokenError):
        model.generate([model.cfg.d_vocab])


# ---- cache files ------------------------------------------------------------------------


def test_saved_cache_loads_back_equal(tmp_path):
    model = load_fixture("gpt2_tiny")
    prompts = ["hello world", "hello earth"]  # 8 tokens each
    tokens = model.to_tokens(prompts)
    _, cache = model.run_with_cache(prompts)
    assert np.array_equal(cache.tokens, tokens) and cache.prompts == prompts
    path = tmp_path / "cache.safetensors"
    cache.save(str(path))
    back = hooklens.load_cache(str(path), model)
    assert back.keys() == cache.keys()
    for name in cache:
        assert back[name].dtype == np.float32
        assert np.array_equal(back[name], cache[name]), name
    assert np.array_equal(back.tokens, tokens) and back.prompts == prompts
    assert np.array_equal(back["z", 1], cache["blocks.1.attn.hook_z"])
    # The file is plain safetensors: the tokens and a hook value, read by our own reader.
    st, meta = read_safetensors(path)
    assert meta["format"] == "hooklens-cache-1" and st["tokens"].tolist() == tokens.tolist()
    assert np.array_equal(st["blocks.0.hook_resid_post"], cache["blocks.0.hook_resid_post"])


def test_saved_cache_keeps_in_place_edits_and_a_filter(tmp_path):
    model = load_fixture("gpt2_tiny")
    _, cache = model.run_with_cache(np.array([[1, 2, 3]]), names_filter=["blocks.0.attn.hook_z"])
    cache["blocks.0.attn.hook_z"][...] = 7.0
    path = tmp_path / "z.safetensors"
    cache.save(path)
    back = model.load_cache(path)
    assert back.keys() == ["blocks.0.attn.hook_z"] and back.prompts == []
    assert (back["z", 0] == 7.0).all() and back.tokens.tolist() == [[1, 2, 3]]


def test_bad_cache_files_raise_cache_file_error(tmp_path):
    model = load_fixture("gpt2_tiny")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(hooklens.CacheFileError, match="not a safetensors file"):
        model.load_cache(garbage)
    with pytest.raises(hooklens.CacheFileError, match="not a hooklens activation cache"):
        model.load_cache(FIXTURES / "gpt2_tiny" / "model.safetensors")
    with pytest.raises(hooklens.CacheFileError):
        model.load_cache(tmp_path / "missing.safetensors")
    assert issubclass(hooklens.CacheFileError, hooklens.HookLensError)
    # A residual-stream pass without tokens= has no tokens to save.
    resid = np.zeros((1, 3, model.cfg.d_model), dtype=np.float32)
    _, cache = model.run_with_cache(resid, start_at_layer=1)
    assert cache.tokens is None
    with pytest.raises(hooklens.InputError, match="no tokens"):
        cache.save(tmp_path / "r.safetensors")
