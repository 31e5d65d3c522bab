"""Bad names, paths, shapes, tokens and options raise Python exceptions with the engine's
message; nothing panics."""

import ctypes.util

import numpy as np
import pytest

import hooklens
from conftest import FIXTURES, Reference, load_fixture


def test_the_exception_classes_form_one_hierarchy():
    for cls in (
        hooklens.UnknownHookError,
        hooklens.HookShapeError,
        hooklens.TokenError,
        hooklens.ModelLoadError,
        hooklens.UnsupportedError,
        hooklens.InputError,
    ):
        assert issubclass(cls, hooklens.HookLensError) and issubclass(cls, Exception)


def test_unknown_hook_names_suggest_the_nearest():
    model = load_fixture("gpt2_tiny")
    toks = Reference("gpt2_tiny").tokens
    with pytest.raises(hooklens.UnknownHookError) as info:
        model.run_with_hooks(toks, fwd_hooks=[("blocks.0.attn.hook_patern", lambda x, h: None)])
    assert "unknown hook point `blocks.0.attn.hook_patern`" in str(info.value)
    assert "blocks.0.attn.hook_pattern" in str(info.value)
    with pytest.raises(hooklens.UnknownHookError, match="did you mean"):
        model.run_with_cache(toks, names_filter=["blocks.0.hook_resid_pr"])
    with pytest.raises(hooklens.UnknownHookError, match=r"\('scale', 1, \"ln1\"\)|ln1"):
        model.run_with_cache(toks, names_filter=[("scale", 1)])


def test_out_of_range_tokens_and_long_sequences():
    model = load_fixture("gpt2_tiny")  # vocab 450, n_ctx 32
    with pytest.raises(hooklens.TokenError, match="token id 450 at batch 0, position 1 is outside the vocabulary"):
        model(np.array([[1, 450, 2]]))
    with pytest.raises(hooklens.TokenError, match="longer than the model's context of 32"):
        model(np.zeros((1, 33), dtype=np.int64))
    with pytest.raises(hooklens.InputError, match="not a valid id"):
        model(np.array([[1, -3]]))
    with pytest.raises(hooklens.InputError, match="must be integers"):
        model(np.array([["a", "b"]]))


def test_bad_options():
    model = load_fixture("gpt2_tiny")
    with pytest.raises(hooklens.InputError, match="return_type"):
        model(np.array([[1, 2]]), return_type="probs")
    with pytest.raises(hooklens.InputError, match="start_at_layer"):
        model(np.array([[1, 2]]), start_at_layer=1)
    with pytest.raises(TypeError, match='unexpected keyword argument "prepend"'):
        model(np.array([[1, 2]]), prepend=False)
    with pytest.raises(hooklens.InputError, match="residual input must have shape"):
        model(np.zeros((1, 2, 5), dtype=np.float32), start_at_layer=1)


def test_bad_paths_names_and_devices():
    with pytest.raises(hooklens.ModelLoadError, match="no such file"):
        hooklens.HookedTransformer.load(str(FIXTURES / "missing.gguf"))
    with pytest.raises(hooklens.InputError, match="not a known model name"):
        hooklens.HookedTransformer.load("not-a-model")
    if ctypes.util.find_library("cuda") is None:
        # No CUDA driver (every CI machine): the error names what is missing.
        with pytest.raises(hooklens.UnsupportedError, match="CUDA is not usable here: missing libcuda"):
            hooklens.HookedTransformer.load(str(FIXTURES / "gpt2_tiny"), device="cuda")
    with pytest.raises(hooklens.InputError, match="unknown device"):
        hooklens.HookedTransformer.load(str(FIXTURES / "gpt2_tiny"), device="tpu")
    with pytest.raises(hooklens.InputError, match="expected an HF checkpoint directory or a .gguf"):
        hooklens.HookedTransformer.load(str(FIXTURES / "tokenizer.json"))


def test_a_truncated_gguf_is_a_load_error(tmp_path):
    whole = (FIXTURES / "gguf" / "synthetic.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(hooklens.ModelLoadError, match="cut.gguf"):
        hooklens.HookedTransformer.load(str(cut))


def test_a_model_without_tokenizer_says_so_for_text():
    model = load_fixture("llama_gqa")
    with pytest.raises(hooklens.InputError, match="no tokenizer"):
        model.to_tokens("hello")
    assert model(np.array([1, 2, 3])).shape == (1, 3, model.cfg.d_vocab)


def test_set_num_threads_refuses_zero():
    with pytest.raises(hooklens.InputError):
        hooklens.set_num_threads(0)
