#!/usr/bin/env python3
"""References for TransformerLens' opt-in hook points (hook_attn_in, hook_q_input /
hook_k_input / hook_v_input, hook_mlp_in) and for edits at them.

Reads the checkpoints and tokens that make_fixtures.py already wrote (gpt2_tiny, llama_gqa),
builds TransformerLens 2.18 models from them with no weight processing and the opt-in flags
set, and writes tests/fixtures/opt_in/<fixture>.safetensors:

- `split.<hook name>`: every hook of `run_with_cache` with use_split_qkv_input and
  use_hook_mlp_in on (ln1 then fires per q / k / v input with per-head shapes; TL's cache keeps
  the last, the value input's);
- `attn_in.<hook name>` (GPT-2 only; TL refuses use_attn_in with grouped-query attention):
  the same with use_attn_in and use_hook_mlp_in on;
- `delta` [d_model]: a fixed random vector the edits add;
- `edit_q_input.logits` / `edit_q_input.blocks.0.attn.hook_q`: blocks.0.hook_q_input[:, :, 1] +=
  delta; `edit_k_input.logits`: blocks.1.hook_k_input[:, :, 0] += delta; `edit_mlp_in.logits`:
  blocks.0.hook_mlp_in += delta; `edit_ln1_split.logits`: blocks.1.ln1.hook_normalized +=
  delta with split inputs (the hook fires once per q / k / v input); `edit_attn_in.logits`
  (GPT-2): blocks.1.hook_attn_in[:, :, 2] += delta; each with TL's run_with_hooks.

Usage: /work/refvenv/bin/python scripts/golden/make_opt_in_refs.py [--fixtures tests/fixtures]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import GPT2LMHeadModel, LlamaForCausalLM  # noqa: E402

import make_fixtures as mf  # noqa: E402  (sets one torch thread and deterministic algorithms)


def tokens_of(fixture: Path) -> torch.Tensor:
    with safe_open(str(fixture / "reference.safetensors"), "pt") as f:
        return f.get_tensor("tokens")


def tl_model(arch: str, fixture: Path, **flags):
    if arch == "gpt2":
        hf = GPT2LMHeadModel.from_pretrained(str(fixture), torch_dtype=torch.float32)
        cfg = mf.gpt2_tl_cfg(hf.config)
        convert = mf.convert_gpt2_weights
    else:
        hf = LlamaForCausalLM.from_pretrained(str(fixture), torch_dtype=torch.float32)
        cfg = mf.llama_tl_cfg(hf.config)
        convert = mf.convert_llama_weights
    for k, v in flags.items():
        setattr(cfg, k, v)
    return mf.load_tl(cfg, convert(hf, cfg))


def cache_of(model, tokens, prefix: str, out: dict) -> None:
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    for name, act in cache.items():
        out[f"{prefix}.{name}"] = act.detach().to(torch.float32).contiguous()
    out[f"{prefix}.logits"] = logits.to(torch.float32)


def head_edit(delta: torch.Tensor, head: int | None):
    def fn(x, hook):
        if head is None:
            x[:] += delta
        else:
            x[:, :, head, :] += delta
        return x

    return fn


def edited(model, tokens, hooks, keep: str | None = None):
    got = {}

    def grab(x, hook):
        got["kept"] = x.detach().clone()
        return x

    fwd = list(hooks) + ([(keep, grab)] if keep else [])
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=fwd).to(torch.float32)
    return logits, got.get("kept")


def make(fixtures: Path, name: str, arch: str, seed: int) -> None:
    d = fixtures / name
    tokens = tokens_of(d)
    out: dict[str, torch.Tensor] = {"tokens": tokens}
    split = tl_model(arch, d, use_split_qkv_input=True, use_hook_mlp_in=True)
    cache_of(split, tokens, "split", out)
    d_model = split.cfg.d_model
    delta = 0.5 * torch.randn(d_model, generator=torch.Generator().manual_seed(seed))
    out["delta"] = delta

    logits, q = edited(split, tokens, [("blocks.0.hook_q_input", head_edit(delta, 1))],
                       keep="blocks.0.attn.hook_q")
    out["edit_q_input.logits"] = logits
    out["edit_q_input.blocks.0.attn.hook_q"] = q
    logits, _ = edited(split, tokens, [("blocks.1.hook_k_input", head_edit(delta, 0))])
    out["edit_k_input.logits"] = logits
    logits, _ = edited(split, tokens, [("blocks.0.hook_mlp_in", head_edit(delta, None))])
    out["edit_mlp_in.logits"] = logits
    # With split inputs, ln1 runs (and its hook fires) once per q / k / v input.
    fired = []

    def ln1_edit(x, hook):
        fired.append(tuple(x.shape))
        x[:] += delta
        return x

    logits, _ = edited(split, tokens, [("blocks.1.ln1.hook_normalized", ln1_edit)])
    assert len(fired) == 3, fired
    out["edit_ln1_split.logits"] = logits
    for key in ("edit_q_input.logits", "edit_k_input.logits", "edit_mlp_in.logits",
                "edit_ln1_split.logits"):
        assert not torch.allclose(out[key], out["split.logits"], atol=1e-3), key
    # The flags alone change no value: the clean logits are the plain model's.
    plain = tl_model(arch, d)
    with torch.no_grad():
        assert torch.allclose(plain(tokens), out["split.logits"], atol=1e-5)

    if arch == "gpt2":
        attn_in = tl_model(arch, d, use_attn_in=True, use_hook_mlp_in=True)
        cache_of(attn_in, tokens, "attn_in", out)
        logits, _ = edited(attn_in, tokens, [("blocks.1.hook_attn_in", head_edit(delta, 2))])
        out["edit_attn_in.logits"] = logits
        assert not torch.allclose(logits, out["attn_in.logits"], atol=1e-3)

    meta = {
        "fixture": name,
        **mf.VERSIONS,
        "split_flags": "use_split_qkv_input=True, use_hook_mlp_in=True, use_attn_result=True",
        "attn_in_flags": "use_attn_in=True, use_hook_mlp_in=True, use_attn_result=True" if arch == "gpt2" else "none",
        "edit_q_input": "blocks.0.hook_q_input[:, :, 1, :] += delta",
        "edit_k_input": "blocks.1.hook_k_input[:, :, 0, :] += delta",
        "edit_mlp_in": "blocks.0.hook_mlp_in += delta",
        "edit_ln1_split": "blocks.1.ln1.hook_normalized += delta (fires 3 times: q, k, v inputs)",
        "edit_attn_in": "blocks.1.hook_attn_in[:, :, 2, :] += delta" if arch == "gpt2" else "none",
    }
    (fixtures / "opt_in").mkdir(exist_ok=True)
    path = fixtures / "opt_in" / f"{name}.safetensors"
    mf.write_reference(path, out, meta)
    print(f"{name}: {len(out)} tensors, {path.stat().st_size / 1e3:.0f} kB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", default=str(mf.REPO / "tests" / "fixtures"))
    args = ap.parse_args()
    fixtures = Path(args.fixtures)
    print("versions:", mf.VERSIONS)
    make(fixtures, "gpt2_tiny", "gpt2", seed=11)
    make(fixtures, "llama_gqa", "llama", seed=12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
