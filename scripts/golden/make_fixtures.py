#!/usr/bin/env python3
"""Generate hooklens' golden test fixtures (tokenizer, random-weight checkpoints, references).

Everything is computed on CPU in float32 with fixed seeds, so re-running this script
reproduces the same bytes. References come from TransformerLens 2.18 `HookedTransformer`
built from a hand-written `HookedTransformerConfig` with NO weight processing (no fold_ln,
no centering, no value-bias folding), and are cross-checked against HF transformers.

Usage (see scripts/golden/README.md):
    /work/refvenv/bin/python scripts/golden/make_fixtures.py [--out tests/fixtures]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402
from importlib.metadata import version as pkg_version  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Tokenizer,
    GPT2TokenizerFast,
    LlamaConfig,
    LlamaForCausalLM,
)
from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402
from transformer_lens.pretrained.weight_conversions import (  # noqa: E402
    convert_gpt2_weights,
    convert_llama_weights,
)

torch.set_num_threads(1)  # bitwise reproducibility across machines with different core counts
torch.use_deterministic_algorithms(True)

REPO = Path(__file__).resolve().parents[2]
EOT = "<|endoftext|>"
TOKENIZER_VOCAB_SIZE = 450  # 256 byte tokens + merges + <|endoftext|> (last id = 449)
TOL_LOGITS = 1e-4  # TL vs HF logits, hard assert
TOL_HOOKS = 1e-4  # TL hooks vs HF internals, hard assert (TL's own tests use 1e-4 .. 1e-3)

TL_VERSION = pkg_version("transformer_lens")
VERSIONS = {
    "transformer_lens_version": TL_VERSION,
    "torch_version": torch.__version__,
    "transformers_version": transformers.__version__,
    "tokenizers_version": pkg_version("tokenizers"),
}

# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------

CORPUS = [
    """The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a
single step. It was the best of times, it was the worst of times, it was the age of wisdom,
it was the age of foolishness. The old lighthouse keeper climbed the stairs every evening,
counting each of the 127 steps as the sea wind rattled the windows.""",
    """In 1969, the first humans walked on the Moon. The mission lasted 8 days, 3 hours and
18 minutes; the crew returned safely on July 24th. Engineers had tested the lander for
more than 2,000 hours before launch. "We choose to go to the Moon," the president said,
"not because it is easy, but because it is hard." Nobody forgot that day.""",
    """def attention(query, key, value):
    scores = query @ key.T / math.sqrt(d_head)
    return softmax(scores) @ value

Transformers process tokens in parallel. Each layer reads the residual stream, writes
its output back, and the next layer builds on it. Interpretability researchers study
which heads attend to which positions, and why the model predicts the next token.""",
    """She said: "Don't worry -- we'll be there by 5:30 p.m.!" He wasn't sure; they'd
missed the train twice (once in March, once in April). The café on the corner sells
crème brûlée, croissants and naïve little cakes for €3.50 each. Prices: $12.99, £7, ¥500.""",
    """Rain fell softly on the garden while the children played indoors. They built towers
of wooden blocks, drew maps of imaginary islands, and argued about whether dragons could
swim. Later, their grandmother told them stories about the mountains where she grew up,
where winters were long and the rivers froze solid.""",
    """Tokyo (東京) is the capital of Japan (日本). Many visitors enjoy sushi 🍣 and ramen 🍜.
Numbers like 3.14159, 2.71828 and 1.41421 appear everywhere in mathematics and physics.
    Indented lines, tabs\tand\ttabs, and multiple   spaces   also   appear   in   text.""",
]

TOKENIZER_CASES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing spaces  ",
    "multiple   spaces    between     words",
    "line one\nline two\n\nline four\n",
    "tabs\tand\ttabs\t\tdouble",
    "Punctuation!? (parens), [brackets]; {braces}: 'quotes' \"double\" -- dashes...",
    "Digits: 0 1 12 123 1234 12345 3.14159 2,000,000",
    "It's, don't, we'll, they're, I've, she'd, I'm",
    "café naïve crème brûlée",
    "日本語のテキスト 東京",
    "emoji 🍣🍜 and 👍🏽 plus ✨",
    "Text before <|endoftext|> text after",
    "<|endoftext|>",
    "",
    " ",
    "\n",
    "MiXeD CaSe aNd ALLCAPS WORDS",
    "def f(x):\n    return x ** 2  # comment",
]


def build_tokenizer(out_dir: Path) -> GPT2TokenizerFast:
    """Train a tiny GPT-2-style byte-level BPE; <|endoftext|> is in the model vocab as the LAST id
    and also registered as a special added token, exactly like the real GPT-2 tokenizer.json."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB_SIZE - 1,
        min_frequency=2,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    assert tok.get_vocab_size() == TOKENIZER_VOCAB_SIZE - 1, tok.get_vocab_size()

    # Append <|endoftext|> to the BPE model vocab with the last id, then mark it special.
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    eot_id = len(vocab)
    assert sorted(vocab.values()) == list(range(eot_id))
    vocab[EOT] = eot_id
    spec["added_tokens"] = [
        {
            "id": eot_id,
            "content": EOT,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": True,
            "special": True,
        }
    ]
    tok = Tokenizer.from_str(json.dumps(spec))
    assert tok.token_to_id(EOT) == eot_id == TOKENIZER_VOCAB_SIZE - 1

    fast = GPT2TokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=EOT,
        add_prefix_space=False,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))  # tokenizer.json + vocab.json + merges.txt + configs
    for f in ("tokenizer.json", "vocab.json", "merges.txt"):
        assert (out_dir / f).exists(), f"save_pretrained did not write {f}"
    return fast


def check_and_dump_tokenizer(tok_dir: Path, out_json: Path) -> dict:
    fast = GPT2TokenizerFast.from_pretrained(str(tok_dir))
    slow = GPT2Tokenizer(
        vocab_file=str(tok_dir / "vocab.json"),
        merges_file=str(tok_dir / "merges.txt"),
        unk_token=EOT,
        bos_token=EOT,
        eos_token=EOT,
    )
    # vocab.json must contain <|endoftext|> itself (not only in added_tokens)
    vocab_json = json.loads((tok_dir / "vocab.json").read_text(encoding="utf-8"))
    eot_id = vocab_json[EOT]
    assert eot_id == len(vocab_json) - 1 == len(fast) - 1 == slow.convert_tokens_to_ids(EOT)

    # TL's to_str_tokens on token ids == tokenizer.batch_decode(ids, clean_up_tokenization_spaces=False)
    tl_cfg = HookedTransformerConfig(
        n_layers=1, d_model=4, n_ctx=8, d_head=4, n_heads=1, d_mlp=4, d_vocab=len(fast),
        act_fn="gelu_new", normalization_type="LN", device="cpu",
    )
    tl_model = HookedTransformer(tl_cfg)
    tl_model.set_tokenizer(AutoTokenizer.from_pretrained(str(tok_dir)))

    cases = []
    for text in TOKENIZER_CASES + CORPUS:
        ids_fast = fast.encode(text, add_special_tokens=False)
        ids_slow = slow.encode(text, add_special_tokens=False)
        assert ids_fast == ids_slow, f"slow/fast mismatch on {text!r}: {ids_fast} vs {ids_slow}"
        if text not in TOKENIZER_CASES:
            continue
        str_tokens = [fast.decode([i], clean_up_tokenization_spaces=False) for i in ids_fast]
        if ids_fast:
            tl_str = tl_model.to_str_tokens(torch.tensor(ids_fast, dtype=torch.long))
            assert tl_str == str_tokens, (text, tl_str, str_tokens)
        assert fast.decode(ids_fast, clean_up_tokenization_spaces=False) == text
        cases.append({"text": text, "ids": ids_fast, "str_tokens": str_tokens})
    out_json.write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"tokenizer: vocab {len(fast)}, <|endoftext|> id {eot_id}, {len(cases)} cases, slow == fast")
    return {"vocab_size": len(fast), "eot_id": eot_id}


# --------------------------------------------------------------------------------------------
# Weight randomisation
# --------------------------------------------------------------------------------------------

NORM_MARKERS = ("ln_", "layernorm", "norm.")


def randomize_(model: torch.nn.Module, seed: int, std: float = 0.2) -> None:
    """Deterministic, non-trivial weights: matrices ~ N(0, std), norm weights ~ 1 + 0.2 N,
    norm biases / linear biases ~ 0.1 N. Tied parameters are visited once."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            is_norm = any(m in name for m in NORM_MARKERS) or name.endswith("norm.weight")
            if is_norm and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(std * noise)


# --------------------------------------------------------------------------------------------
# TL helpers
# --------------------------------------------------------------------------------------------


def load_tl(cfg: HookedTransformerConfig, sd: dict) -> HookedTransformer:
    model = HookedTransformer(cfg)
    sd = {k: v.detach().clone().to(torch.float32) for k, v in sd.items()}
    expected = {k: v.clone() for k, v in sd.items()}
    model.load_and_process_state_dict(
        sd,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    model.eval()
    # Every converted weight must have landed unchanged, and every parameter must be covered.
    msd = model.state_dict()
    for k, v in expected.items():
        assert k in msd, f"converted key {k} not in TL model"
        assert torch.equal(msd[k], v), f"TL processed/changed {k}"
    params = {n for n, _ in model.named_parameters()}
    missing = params - set(expected)
    # GPT-2 has no unembedding bias: TL's fill_missing_keys sets b_U to zeros.
    if "unembed.b_U" in missing and not msd["unembed.b_U"].any():
        missing.discard("unembed.b_U")
    assert not missing, f"TL params not set from the checkpoint: {sorted(missing)}"
    return model


def firing_order(model: HookedTransformer, tokens: torch.Tensor):
    order: list[str] = []

    def rec(x, hook):
        order.append(hook.name)
        return x

    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(lambda n: True, rec)], return_type=None)
    # TL quirk: TransformerBlock calls self.ln1 three times (on query_input, key_input and
    # value_input), so ln1.hook_scale / ln1.hook_normalized fire 3x per layer; the cache keeps the
    # last (value) call. Return first-firing order plus the multiplicities.
    counts: dict[str, int] = {}
    first: list[str] = []
    for n in order:
        if n not in counts:
            first.append(n)
        counts[n] = counts.get(n, 0) + 1
    return first, {n: c for n, c in counts.items() if c != 1}


def tl_references(model: HookedTransformer, tokens: torch.Tensor, zl: int, zh: int):
    out: dict[str, torch.Tensor] = {"tokens": tokens.to(torch.int64)}
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        for name, act in cache.items():
            out[name] = act.detach().to(torch.float32).contiguous()
        out["logits"] = logits.to(torch.float32)

        loss = model(tokens, return_type="loss")
        out["loss"] = loss.reshape(1).to(torch.float32)
        out["loss_per_token"] = model(tokens, return_type="loss", loss_per_token=True).to(torch.float32)

        def zero_head(z, hook):
            z[:, :, zh, :] = 0.0
            return z

        out["zero_head_logits"] = model.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.{zl}.attn.hook_z", zero_head)]
        ).to(torch.float32)

        def patch(x, hook):
            x[:, 2, :] += 0.5
            return x

        out["patch_resid_logits"] = model.run_with_hooks(
            tokens, fwd_hooks=[("blocks.1.hook_resid_pre", patch)]
        ).to(torch.float32)

        out["stop1_resid"] = model(tokens, stop_at_layer=1).to(torch.float32)
    # sanity: stop_at_layer=1 output is the residual after block 0
    assert torch.equal(out["stop1_resid"], out["blocks.0.hook_resid_post"])
    assert torch.equal(out["stop1_resid"], out["blocks.1.hook_resid_pre"])
    assert not torch.allclose(out["zero_head_logits"], out["logits"])
    assert not torch.allclose(out["patch_resid_logits"], out["logits"])
    return out


class HFCapture:
    """Forward hooks on HF submodules: records inputs / outputs by key."""

    def __init__(self):
        self.vals: dict[str, torch.Tensor] = {}
        self.handles = []

    def out(self, module, key):
        def fn(mod, args, output):
            self.vals[key] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        self.handles.append(module.register_forward_hook(fn))

    def inp(self, module, key):
        def fn(mod, args):
            self.vals[key] = args[0].detach().clone()

        self.handles.append(module.register_forward_pre_hook(fn))

    def remove(self):
        for h in self.handles:
            h.remove()


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.double() - b.double()).abs().max().item()


def report_diffs(tag: str, diffs: dict[str, float], tol: float) -> dict[str, float]:
    fam: dict[str, float] = {}
    for k, v in diffs.items():
        f = k.split(".", 2)[-1] if k.startswith("blocks.") else k
        fam[f] = max(fam.get(f, 0.0), v)
    print(f"  [{tag}] TL vs HF max |diff| per hook family:")
    for f, v in fam.items():
        print(f"      {f:28s} {v:.3e}{'   <-- over tolerance' if v > tol else ''}")
    bad = {f: v for f, v in fam.items() if v > tol}
    assert not bad, f"{tag}: TL and HF disagree beyond {tol}: {bad}"
    return fam


def softmax_stats(out: dict) -> str:
    pats = [v for k, v in out.items() if k.endswith("hook_pattern")]
    mx = torch.stack([p.max(-1).values.mean() for p in pats]).mean().item()
    return f"mean max-attention {mx:.3f}"


ST_DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16"}


def write_reference(path: Path, tensors: dict, meta: dict) -> None:
    """Write a safetensors file byte-deterministically. (safetensors.save_file goes through a Rust
    HashMap for __metadata__, so its header key order, and thus the bytes, change run to run.)
    Tensors are laid out in sorted-name order; the header JSON has sorted keys."""
    meta = {k: str(v) for k, v in meta.items()}
    header: dict = {"__metadata__": meta}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.numpy().tobytes(order="C")
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for raw in blobs:
            f.write(raw)
    # round-trip check with the official reader
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert f.metadata() == meta
        assert sorted(f.keys()) == sorted(tensors)
        for name in tensors:
            assert torch.equal(f.get_tensor(name), tensors[name].detach().cpu()), name


# --------------------------------------------------------------------------------------------
# GPT-2
# --------------------------------------------------------------------------------------------


def gpt2_tl_cfg(hf_cfg: GPT2Config) -> HookedTransformerConfig:
    return HookedTransformerConfig(
        d_model=hf_cfg.n_embd,
        d_head=hf_cfg.n_embd // hf_cfg.n_head,
        n_heads=hf_cfg.n_head,
        d_mlp=hf_cfg.n_inner or 4 * hf_cfg.n_embd,
        n_layers=hf_cfg.n_layer,
        n_ctx=hf_cfg.n_positions,
        d_vocab=hf_cfg.vocab_size,
        eps=hf_cfg.layer_norm_epsilon,
        act_fn="gelu_new",
        normalization_type="LN",
        positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel",
        use_attn_result=True,
        default_prepend_bos=True,
        device="cpu",
        dtype=torch.float32,
        seed=None,
    )


def gpt2_hf_compare(hf: GPT2LMHeadModel, ref: dict, tokens: torch.Tensor, cfg) -> dict:
    cap = HFCapture()
    for l, blk in enumerate(hf.transformer.h):
        cap.out(blk.ln_1, f"blocks.{l}.ln1.hook_normalized")
        cap.out(blk.attn.c_attn, f"{l}.qkv")
        cap.inp(blk.attn.c_proj, f"{l}.z")
        cap.out(blk.attn, f"blocks.{l}.hook_attn_out")
        cap.out(blk.ln_2, f"blocks.{l}.ln2.hook_normalized")
        cap.out(blk.mlp.c_fc, f"blocks.{l}.mlp.hook_pre")
        cap.inp(blk.mlp.c_proj, f"blocks.{l}.mlp.hook_post")
        cap.out(blk.mlp, f"blocks.{l}.hook_mlp_out")
    with torch.no_grad():
        o = hf(tokens, output_hidden_states=True, output_attentions=True, labels=tokens)
    cap.remove()
    b, p = tokens.shape
    H, dh = cfg.n_heads, cfg.d_head
    d = {}
    for l in range(cfg.n_layers):
        q, k, v = cap.vals.pop(f"{l}.qkv").split(cfg.d_model, dim=-1)
        for nm, t in (("q", q), ("k", k), ("v", v)):
            d[f"blocks.{l}.attn.hook_{nm}"] = maxdiff(ref[f"blocks.{l}.attn.hook_{nm}"], t.reshape(b, p, H, dh))
        d[f"blocks.{l}.attn.hook_z"] = maxdiff(ref[f"blocks.{l}.attn.hook_z"], cap.vals.pop(f"{l}.z").reshape(b, p, H, dh))
        d[f"blocks.{l}.attn.hook_pattern"] = maxdiff(ref[f"blocks.{l}.attn.hook_pattern"], o.attentions[l])
        d[f"blocks.{l}.hook_resid_pre"] = maxdiff(ref[f"blocks.{l}.hook_resid_pre"], o.hidden_states[l])
    for k, v in cap.vals.items():
        d[k] = maxdiff(ref[k], v)
    d["ln_final.hook_normalized"] = maxdiff(ref["ln_final.hook_normalized"], o.hidden_states[-1])
    d["logits"] = maxdiff(ref["logits"], o.logits)
    d["loss"] = maxdiff(ref["loss"], o.loss.reshape(1))
    return d, o.logits.to(torch.float32)


def hf_interventions(hf, layers, o_proj_of, tokens, ref, zl: int, zh: int, d_head: int) -> dict:
    """Re-run the two interventions on the HF model (pre-hooks on the output projection input and
    on block 1's input) and compare with TL's zero_head_logits / patch_resid_logits."""
    def zero(mod, args):
        args[0][..., zh * d_head:(zh + 1) * d_head] = 0.0

    def patch(mod, args, kwargs):
        hs = args[0] if args else kwargs["hidden_states"]
        hs[:, 2, :] += 0.5

    d = {}
    with torch.no_grad():
        h = o_proj_of(zl).register_forward_pre_hook(zero)
        d["zero_head_logits"] = maxdiff(ref["zero_head_logits"], hf(tokens).logits)
        h.remove()
        h = layers[1].register_forward_pre_hook(patch, with_kwargs=True)
        d["patch_resid_logits"] = maxdiff(ref["patch_resid_logits"], hf(tokens).logits)
        h.remove()
        d["logits(after)"] = maxdiff(ref["logits"], hf(tokens).logits)  # hooks really removed
    return d


def make_gpt2(out_root: Path, tok_dir: Path, tok_info: dict, name: str, *, n_layer, n_embd, n_head,
              n_positions, batch, seq, seed, save_f16=False) -> dict:
    print(f"== {name}")
    d = out_root / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    vocab = tok_info["vocab_size"]
    eot = tok_info["eot_id"]
    hf_cfg = GPT2Config(
        vocab_size=vocab, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        n_inner=None, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, initializer_range=0.2, bos_token_id=eot, eos_token_id=eot,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(hf_cfg)
    randomize_(hf, seed)
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr(), "lm_head not tied"
    if save_f16:
        hf = hf.half()
    hf.save_pretrained(str(d), safe_serialization=True)
    for f in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tok_dir / f, d / f)

    # Reload from disk in float32 (for f16: the references are f32 math on the f16-rounded weights)
    hf = GPT2LMHeadModel.from_pretrained(str(d), torch_dtype=torch.float32, attn_implementation="eager")
    hf.eval()
    cfg = gpt2_tl_cfg(hf.config)
    tl = load_tl(cfg, convert_gpt2_weights(hf, cfg))

    g = torch.Generator().manual_seed(seed + 1000)
    tokens = torch.randint(0, vocab - 1, (batch, seq), generator=g, dtype=torch.long)
    tokens[:, 0] = eot  # BOS = <|endoftext|>

    zl, zh = n_layer - 1, 1
    ref = tl_references(tl, tokens, zl, zh)
    diffs, hf_logits = gpt2_hf_compare(hf, ref, tokens, cfg)
    diffs.update(hf_interventions(hf, hf.transformer.h, lambda l: hf.transformer.h[l].attn.c_proj, tokens, ref,
                                  zl, zh, cfg.d_head))
    ref["hf_logits"] = hf_logits
    fam = report_diffs(name, diffs, TOL_HOOKS)
    ld = maxdiff(ref["logits"], ref["hf_logits"])
    assert ld <= TOL_LOGITS, f"{name}: TL vs HF logits differ by {ld}"
    print(f"  {name}: max |TL - HF| logits = {ld:.3e}; loss {ref['loss'].item():.4f}; {softmax_stats(ref)}")

    order, multi = firing_order(tl, tokens)
    cached = [k for k in ref if "hook_" in k]
    assert sorted(order) == sorted(cached), (set(order) ^ set(cached))
    meta = base_meta(name, "gpt2", cfg, tokens, zl, zh, order, ld)
    meta["hook_fire_counts_not_1"] = json.dumps(multi)
    meta.update({"bos_token_id": eot, "checkpoint_dtype": "float16" if save_f16 else "float32"})
    write_reference(d / "reference.safetensors", ref, meta)
    return summarize(name, d, ref, meta, order, fam)


# --------------------------------------------------------------------------------------------
# Llama
# --------------------------------------------------------------------------------------------


def llama_tl_cfg(c: LlamaConfig) -> HookedTransformerConfig:
    d_head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return HookedTransformerConfig(
        d_model=c.hidden_size,
        d_head=d_head,
        n_heads=c.num_attention_heads,
        n_key_value_heads=c.num_key_value_heads,
        d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers,
        n_ctx=c.max_position_embeddings,
        d_vocab=c.vocab_size,
        eps=c.rms_norm_eps,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=d_head,
        rotary_base=c.rope_theta,
        rotary_adjacent_pairs=False,
        gated_mlp=True,
        final_rms=True,
        original_architecture="LlamaForCausalLM",
        use_attn_result=True,
        default_prepend_bos=False,
        device="cpu",
        dtype=torch.float32,
        seed=None,
    )


def llama_hf_compare(hf: LlamaForCausalLM, tl: HookedTransformer, ref: dict, tokens: torch.Tensor, cfg) -> dict:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    cap = HFCapture()
    for l, blk in enumerate(hf.model.layers):
        cap.out(blk.input_layernorm, f"{l}.ln1_out")
        cap.out(blk.self_attn.q_proj, f"{l}.q")
        cap.out(blk.self_attn.k_proj, f"{l}.k")
        cap.out(blk.self_attn.v_proj, f"{l}.v")
        cap.inp(blk.self_attn.o_proj, f"{l}.z")
        cap.out(blk.self_attn, f"blocks.{l}.hook_attn_out")
        cap.out(blk.post_attention_layernorm, f"{l}.ln2_out")
        cap.out(blk.mlp.gate_proj, f"blocks.{l}.mlp.hook_pre")
        cap.out(blk.mlp.up_proj, f"blocks.{l}.mlp.hook_pre_linear")
        cap.inp(blk.mlp.down_proj, f"blocks.{l}.mlp.hook_post")
        cap.out(blk.mlp, f"blocks.{l}.hook_mlp_out")
    with torch.no_grad():
        o = hf(tokens, output_hidden_states=True, output_attentions=True, labels=tokens)
    cap.remove()
    b, p = tokens.shape
    H, K, dh = cfg.n_heads, cfg.n_key_value_heads, cfg.d_head
    pos_ids = torch.arange(p)[None].expand(b, p)
    d = {}
    with torch.no_grad():
        for l in range(cfg.n_layers):
            q = cap.vals.pop(f"{l}.q").reshape(b, p, H, dh)
            k = cap.vals.pop(f"{l}.k").reshape(b, p, K, dh)
            v = cap.vals.pop(f"{l}.v").reshape(b, p, K, dh)
            d[f"blocks.{l}.attn.hook_q"] = maxdiff(ref[f"blocks.{l}.attn.hook_q"], q)
            d[f"blocks.{l}.attn.hook_k"] = maxdiff(ref[f"blocks.{l}.attn.hook_k"], k)
            d[f"blocks.{l}.attn.hook_v"] = maxdiff(ref[f"blocks.{l}.attn.hook_v"], v)
            cos, sin = hf.model.rotary_emb(v, pos_ids)
            rq, rk = apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
            d[f"blocks.{l}.attn.hook_rot_q"] = maxdiff(ref[f"blocks.{l}.attn.hook_rot_q"], rq.transpose(1, 2))
            d[f"blocks.{l}.attn.hook_rot_k"] = maxdiff(ref[f"blocks.{l}.attn.hook_rot_k"], rk.transpose(1, 2))
            d[f"blocks.{l}.attn.hook_pattern"] = maxdiff(ref[f"blocks.{l}.attn.hook_pattern"], o.attentions[l])
            d[f"blocks.{l}.attn.hook_z"] = maxdiff(ref[f"blocks.{l}.attn.hook_z"], cap.vals.pop(f"{l}.z").reshape(b, p, H, dh))
            d[f"blocks.{l}.hook_resid_pre"] = maxdiff(ref[f"blocks.{l}.hook_resid_pre"], o.hidden_states[l])
            # TL RMSNorm hook_normalized is BEFORE the weight; HF norm output is after.
            w1 = tl.blocks[l].ln1.w
            w2 = tl.blocks[l].ln2.w
            d[f"blocks.{l}.ln1.hook_normalized"] = maxdiff(ref[f"blocks.{l}.ln1.hook_normalized"] * w1, cap.vals.pop(f"{l}.ln1_out"))
            d[f"blocks.{l}.ln2.hook_normalized"] = maxdiff(ref[f"blocks.{l}.ln2.hook_normalized"] * w2, cap.vals.pop(f"{l}.ln2_out"))
        for k, v in cap.vals.items():
            d[k] = maxdiff(ref[k], v)
        d["ln_final.hook_normalized"] = maxdiff(ref["ln_final.hook_normalized"] * tl.ln_final.w, o.hidden_states[-1])
    d["logits"] = maxdiff(ref["logits"], o.logits)
    d["loss"] = maxdiff(ref["loss"], o.loss.reshape(1))
    return d, o.logits.to(torch.float32)


def make_llama(out_root: Path, name: str, *, hidden, layers, heads, kv_heads, inter, vocab, max_pos,
               rope_theta, tie, batch, seq, seed) -> dict:
    print(f"== {name}")
    d = out_root / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    hf_cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=hidden // heads,
        max_position_embeddings=max_pos, rope_theta=float(rope_theta), rms_norm_eps=1e-5,
        tie_word_embeddings=tie, hidden_act="silu", attention_bias=False, mlp_bias=False,
        initializer_range=0.2, bos_token_id=None, eos_token_id=None, pad_token_id=None,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    hf = LlamaForCausalLM(hf_cfg)
    randomize_(hf, seed)
    if tie:
        assert hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()
    hf.save_pretrained(str(d), safe_serialization=True)
    hf = LlamaForCausalLM.from_pretrained(str(d), torch_dtype=torch.float32, attn_implementation="eager")
    hf.eval()
    cfg = llama_tl_cfg(hf.config)
    tl = load_tl(cfg, convert_llama_weights(hf, cfg))

    g = torch.Generator().manual_seed(seed + 1000)
    tokens = torch.randint(0, vocab, (batch, seq), generator=g, dtype=torch.long)

    zl, zh = layers - 1, 1
    ref = tl_references(tl, tokens, zl, zh)
    diffs, hf_logits = llama_hf_compare(hf, tl, ref, tokens, cfg)
    diffs.update(hf_interventions(hf, hf.model.layers, lambda l: hf.model.layers[l].self_attn.o_proj, tokens, ref,
                                  zl, zh, cfg.d_head))
    ref["hf_logits"] = hf_logits
    fam = report_diffs(name, diffs, TOL_HOOKS)
    ld = maxdiff(ref["logits"], ref["hf_logits"])
    assert ld <= TOL_LOGITS, f"{name}: TL vs HF logits differ by {ld}"
    print(f"  {name}: max |TL - HF| logits = {ld:.3e}; loss {ref['loss'].item():.4f}; {softmax_stats(ref)}")

    order, multi = firing_order(tl, tokens)
    cached = [k for k in ref if "hook_" in k]
    assert sorted(order) == sorted(cached), (set(order) ^ set(cached))
    meta = base_meta(name, "llama", cfg, tokens, zl, zh, order, ld)
    meta["hook_fire_counts_not_1"] = json.dumps(multi)
    meta.update({"bos_token_id": "none", "checkpoint_dtype": "float32"})
    write_reference(d / "reference.safetensors", ref, meta)
    return summarize(name, d, ref, meta, order, fam)


# --------------------------------------------------------------------------------------------
# Metadata / manifest
# --------------------------------------------------------------------------------------------


def base_meta(name, arch, cfg, tokens, zl, zh, order, logit_diff) -> dict:
    tl_cfg = {
        k: getattr(cfg, k)
        for k in (
            "n_layers", "d_model", "n_heads", "d_head", "n_key_value_heads", "d_mlp", "d_vocab",
            "n_ctx", "eps", "act_fn", "normalization_type", "positional_embedding_type",
            "rotary_dim", "rotary_base", "rotary_adjacent_pairs", "gated_mlp", "final_rms",
            "use_attn_result", "original_architecture",
        )
    }
    return {
        "fixture": name,
        "arch": arch,
        **VERSIONS,
        "tl_cfg": json.dumps(tl_cfg, sort_keys=True),
        "weight_processing": "none (fold_ln=False, center_writing_weights=False, center_unembed=False, "
        "fold_value_biases=False, refactor_factored_attn_matrices=False)",
        "prepend_bos": "false (tokens passed directly)",
        "batch": tokens.shape[0],
        "seq_len": tokens.shape[1],
        "zero_head_layer": zl,
        "zero_head_head": zh,
        "zero_head_hook": f"blocks.{zl}.attn.hook_z",
        "patch_resid_hook": "blocks.1.hook_resid_pre",
        "patch_resid_pos": 2,
        "patch_resid_delta": 0.5,
        "hook_order": json.dumps(order),
        "max_abs_diff_logits_tl_hf": f"{logit_diff:.3e}",
        "attn_scores_mask_value": "-inf",
    }


def summarize(name, d: Path, ref: dict, meta: dict, order: list, fam: dict) -> dict:
    files = {f.name: f.stat().st_size for f in sorted(d.iterdir())}
    return {
        "dir": name,
        "files": files,
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in ref.items()},
        "metadata": {k: v for k, v in meta.items() if k != "hook_order"},
        "hook_order": order,
        "tl_vs_hf_max_abs_diff": {k: float(f"{v:.3e}") for k, v in fam.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("versions:", VERSIONS)
    if TL_VERSION != "2.18.0":
        print(f"WARNING: expected transformer_lens 2.18.0, found {TL_VERSION}", file=sys.stderr)

    # save_pretrained writes tokenizer.json, vocab.json, merges.txt, tokenizer_config.json,
    # special_tokens_map.json into a scratch dir; the three model files are kept at the top of
    # tests/fixtures and all five are copied into each GPT-2 checkpoint dir.
    tmp_tok = out / ".tok_tmp"
    if tmp_tok.exists():
        shutil.rmtree(tmp_tok)
    build_tokenizer(tmp_tok)
    tok_info = check_and_dump_tokenizer(tmp_tok, out / "tokenizer_cases.json")
    for f in ("tokenizer.json", "vocab.json", "merges.txt"):
        shutil.copy(tmp_tok / f, out / f)
    manifest = {
        "versions": VERSIONS,
        "tokenizer": {**tok_info, "files": ["tokenizer.json", "vocab.json", "merges.txt"],
                      "cases": "tokenizer_cases.json"},
        "fixtures": [],
    }

    manifest["fixtures"].append(make_gpt2(out, tmp_tok, tok_info, "gpt2_tiny", n_layer=2, n_embd=36, n_head=3,
                                          n_positions=32, batch=2, seq=9, seed=1))
    manifest["fixtures"].append(make_gpt2(out, tmp_tok, tok_info, "gpt2_small4", n_layer=3, n_embd=64, n_head=4,
                                          n_positions=48, batch=1, seq=20, seed=2))
    manifest["fixtures"].append(make_gpt2(out, tmp_tok, tok_info, "gpt2_tiny_f16", n_layer=2, n_embd=36, n_head=3,
                                          n_positions=32, batch=2, seq=6, seed=3, save_f16=True))
    shutil.rmtree(tmp_tok)
    manifest["fixtures"].append(make_llama(out, "llama_gqa", hidden=48, layers=2, heads=6, kv_heads=2, inter=80,
                                           vocab=300, max_pos=64, rope_theta=10000, tie=False, batch=2, seq=10,
                                           seed=4))
    manifest["fixtures"].append(make_llama(out, "llama_odd", hidden=60, layers=2, heads=5, kv_heads=1, inter=96,
                                           vocab=300, max_pos=64, rope_theta=100000, tie=True, batch=1, seq=13,
                                           seed=5))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"total fixture size: {total / 1e6:.2f} MB")
    assert total < 6_000_000, "fixtures exceed the 6 MB budget"
    return 0


if __name__ == "__main__":
    sys.exit(main())
