"""to_tokens / to_str_tokens / to_string / to_single_token against the HF tokenizer's
outputs recorded in tests/fixtures (tokenizer_cases.json, smollm2/reference.json)."""

import json

import numpy as np
import pytest

from conftest import FIXTURES, load_fixture

CASES = json.loads((FIXTURES / "tokenizer_cases.json").read_text())
BOS = 449  # gpt2_tiny's <|endoftext|>


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:20] for c in CASES])
def test_tokens_and_str_tokens_match_hf(case):
    model = load_fixture("gpt2_tiny")
    toks = model.to_tokens(case["text"], prepend_bos=False)
    assert toks.dtype == np.int64 and toks.shape == (1, len(case["ids"]))
    assert toks[0].tolist() == case["ids"]
    assert model.to_tokens(case["text"])[0].tolist() == [BOS] + case["ids"]
    assert model.to_str_tokens(case["text"], prepend_bos=False) == case["str_tokens"]
    assert model.to_str_tokens(np.array(case["ids"])) == case["str_tokens"]


def test_to_string_and_batches():
    model = load_fixture("gpt2_tiny")
    ids = model.to_tokens("Hello world", prepend_bos=False)
    assert model.to_string(ids[0]) == "Hello world"
    assert model.to_string(ids) == ["Hello world"]
    batch = model.to_tokens(["Hello world", "Hello world"])
    assert batch.shape == (2, 1 + len(ids[0]))
    assert model.to_str_tokens(batch) == [model.to_str_tokens("Hello world")] * 2


def test_smollm2_tokens_and_top_prediction_match_hf(smollm2):
    ref = json.loads((FIXTURES / "smollm2" / "reference.json").read_text())
    for prompt in ref["prompts"]:
        toks = smollm2.to_tokens(prompt["text"])
        assert toks[0].tolist() == prompt["ids"]
        logits = smollm2(toks)[0, -1].astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        for top in prompt["top"][:5]:
            assert abs(probs[top["id"]] - top["prob"]) <= 1e-3, (prompt["text"], top)
    assert smollm2.to_single_token(" Paris") == 7042
    cfg = smollm2.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab) == (30, 9, 576, 64, 49152)
    assert cfg.n_key_value_heads == 3 and cfg.normalization_type == "RMS" and cfg.device == "cpu"
