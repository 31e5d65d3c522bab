#!/usr/bin/env python3
"""References for ragged batches: TransformerLens `run_with_cache` on a padded batch with an
explicit `attention_mask`, for both padding sides.

Reads the checkpoints and tokens that make_fixtures.py already wrote (gpt2_tiny, llama_gqa),
builds TransformerLens 2.18 models from them with no weight processing, and writes
tests/fixtures/padding/<fixture>.safetensors:

- `prompt.<i>`: the token ids of prompt i (three prompts of different lengths, cut from the
  fixture's tokens); `pad_id` [1]: the id written at pad positions;
- for side in (left, right): `<side>.tokens` and `<side>.attention_mask` [batch, pos],
  `<side>.<hook name>` for every hook of `run_with_cache(tokens, attention_mask=mask)`,
  `<side>.logits`, `<side>.loss` (TL's loss with the mask: pads skipped) and
  `<side>.loss_per_token` (TL's per-token loss, zero where the mask skips);
- `single.<i>.<hook name>` / `single.<i>.logits`: each prompt run alone (no mask).

and tests/fixtures/padding/gpt2_tiny_texts.safetensors: TL's own text-list padding, with the
fixture's tokenizer, of the texts in its metadata (`texts`, JSON): for side in (left, right),
`<side>.tokens` (`to_tokens(texts, padding_side=side)`, int64), and `<side>.<hook name>` (the
hooks of block 0, the embeddings, `ln_final` and every `hook_resid_post`),
`<side>.logits`, `<side>.loss`, `<side>.loss_per_token` of `run_with_cache(texts,
padding_side=side)` / `model(texts, return_type="loss", padding_side=side)`, the mask TL
builds itself (for left padding only: a right-padded text list has none in TL, so its
loss counts the pads).

TL offsets learned and rotary positions by the mask (`utils.get_offset_position_ids`), so a
real position holds the same values as the prompt alone (the script asserts it for the logits).
Ids and masks are stored as float32 (exact below 2^24), except `tokens` (int64, the left-padded
batch), which the tests' reference reader expects in every file.

Usage: /work/refvenv/bin/python scripts/golden/make_padding_refs.py [--fixtures tests/fixtures] [--texts-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import make_fixtures as mf  # noqa: E402  (sets one torch thread and deterministic algorithms)
from make_opt_in_refs import tl_model, tokens_of  # noqa: E402


def prompts_of(tokens: torch.Tensor) -> list[torch.Tensor]:
    """Three prompts of lengths 7, 4 and 5 (ragged in both orders)."""
    return [tokens[0, :7].clone(), tokens[1, :4].clone(), tokens[1, 3:8].clone()]


def padded(prompts: list[torch.Tensor], side: str, pad_id: int):
    n = max(len(p) for p in prompts)
    toks = torch.full((len(prompts), n), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(prompts), n), dtype=torch.int64)
    for b, p in enumerate(prompts):
        start = n - len(p) if side == "left" else 0
        toks[b, start:start + len(p)] = p
        mask[b, start:start + len(p)] = 1
    return toks, mask


def run(model, tokens, mask, prefix: str, out: dict) -> None:
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, attention_mask=mask)
        loss = model.loss_fn(logits, tokens, attention_mask=mask)
        per_token = model.loss_fn(logits, tokens, attention_mask=mask, per_token=True)
    for name, act in cache.items():
        out[f"{prefix}.{name}"] = act.detach().to(torch.float32).contiguous()
    out[f"{prefix}.logits"] = logits.to(torch.float32).contiguous()
    if mask is not None:
        out[f"{prefix}.loss"] = loss.reshape(1).to(torch.float32)
        out[f"{prefix}.loss_per_token"] = per_token.to(torch.float32).contiguous()


def make(fixtures: Path, name: str, arch: str, pad_id: int) -> None:
    d = fixtures / name
    model = tl_model(arch, d)
    prompts = prompts_of(tokens_of(d))
    out: dict[str, torch.Tensor] = {"pad_id": torch.tensor([float(pad_id)])}
    for i, p in enumerate(prompts):
        out[f"prompt.{i}"] = p.to(torch.float32)
        with torch.no_grad():
            logits, cache = model.run_with_cache(p[None])
        out[f"single.{i}.logits"] = logits.to(torch.float32).contiguous()
        for hook in ("blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post"):
            out[f"single.{i}.{hook}"] = cache[hook].to(torch.float32).contiguous()
    for side in ("left", "right"):
        toks, mask = padded(prompts, side, pad_id)
        out[f"{side}.tokens"] = toks.to(torch.float32)
        out[f"{side}.attention_mask"] = mask.to(torch.float32)
        if side == "left":
            out["tokens"] = toks
        run(model, toks, mask, side, out)
        for b, p in enumerate(prompts):
            real = mask[b].bool()
            got = out[f"{side}.logits"][b, real]
            want = out[f"single.{b}.logits"][0]
            assert torch.allclose(got, want, atol=1e-4), (name, side, b)
    meta = {
        "fixture": name,
        **mf.VERSIONS,
        "prompts": "tokens[0, :7], tokens[1, :4], tokens[1, 3:8] of the fixture's reference",
        "run": "run_with_cache(tokens, attention_mask=mask), no weight processing",
    }
    (fixtures / "padding").mkdir(exist_ok=True)
    path = fixtures / "padding" / f"{name}.safetensors"
    mf.write_reference(path, out, meta)
    print(f"{name}: {len(out)} tensors, {path.stat().st_size / 1e3:.0f} kB")


TEXTS = ["Hello world, this is a test", "Hi", "The cat sat on"]


def make_texts(fixtures: Path) -> None:
    """TL's text-list padding on gpt2_tiny, with its tokenizer (see the module docstring)."""
    from transformers import AutoTokenizer

    d = fixtures / "gpt2_tiny"
    model = tl_model("gpt2", d)
    model.set_tokenizer(AutoTokenizer.from_pretrained(str(d)))
    out: dict[str, torch.Tensor] = {}
    for side in ("left", "right"):
        toks = model.to_tokens(TEXTS, padding_side=side)
        out[f"{side}.tokens"] = toks.to(torch.int64)
        if side == "left":
            out["tokens"] = toks.to(torch.int64)
        with torch.no_grad():
            logits, cache = model.run_with_cache(TEXTS, padding_side=side)
            loss = model(TEXTS, return_type="loss", padding_side=side)
            per_token = model(TEXTS, return_type="loss", loss_per_token=True, padding_side=side)
        for name, act in cache.items():
            if name.startswith(("blocks.0.", "hook_", "ln_final.")) or name.endswith("resid_post"):
                out[f"{side}.{name}"] = act.detach().to(torch.float32).contiguous()
        out[f"{side}.logits"] = logits.to(torch.float32).contiguous()
        out[f"{side}.loss"] = loss.reshape(1).to(torch.float32)
        out[f"{side}.loss_per_token"] = per_token.to(torch.float32).contiguous()
    meta = {
        "fixture": "gpt2_tiny",
        **mf.VERSIONS,
        "texts": json.dumps(TEXTS),
        "pad_id": str(model.tokenizer.pad_token_id),
        "run": "run_with_cache(texts, padding_side=side), no weight processing",
    }
    path = fixtures / "padding" / "gpt2_tiny_texts.safetensors"
    mf.write_reference(path, out, meta)
    print(f"gpt2_tiny texts: {len(out)} tensors, {path.stat().st_size / 1e3:.0f} kB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", default=str(mf.REPO / "tests" / "fixtures"))
    ap.add_argument("--texts-only", action="store_true", help="write gpt2_tiny_texts only")
    args = ap.parse_args()
    fixtures = Path(args.fixtures)
    print("versions:", mf.VERSIONS)
    if not args.texts_only:
        make(fixtures, "gpt2_tiny", "gpt2", pad_id=449)
        make(fixtures, "llama_gqa", "llama", pad_id=0)
    make_texts(fixtures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
