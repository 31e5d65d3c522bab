#!/usr/bin/env python3
"""HF transformers greedy generation references for hooklens' `generate` (issue 17).

Writes tests/fixtures/generate/refs.json:
  {"transformers_version", "torch_version",
   "random": [{"fixture", "prompt": [ids], "max_new", "new_tokens": [ids]}],
   "smollm2": [{"text", "ids", "max_new", "new_tokens"}], "smollm2_eos"}
- random: the random-weight checkpoints of tests/fixtures (HF `from_pretrained`, float32),
  prompts = prefixes of their reference tokens, `generate(do_sample=False)` with no
  end-of-sequence token (every run has max_new tokens);
- smollm2: SmolLM2-135M-Instruct Q4_1 loaded from its GGUF (`gguf_file=`, dequantised to
  float32), prompts tokenized by HF (which prepends <|im_start|>, id 1, as hooklens' BOS), 30
  new tokens, greedy, stopping at the model's end-of-sequence token as HF does by default.

Run: /work/refvenv/bin/python scripts/golden/make_generate_refs.py [--home DIR]
"""
import argparse
import json
import os
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "The Eiffel Tower is in the city of",
    "def add(a, b):\n    return",
    "Once upon a time, there was a",
]
RANDOM = [("gpt2_tiny", [3, 6], 20), ("gpt2_small4", [4, 10], 24), ("llama_gqa", [2, 7], 30),
          ("llama_odd", [5], 30)]


def greedy(model, ids, max_new, eos):
    out = model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False,
                         eos_token_id=eos, pad_token_id=0, attention_mask=torch.ones(1, len(ids),
                                                                                      dtype=torch.long))
    return out[0, len(ids):].tolist()


def random_refs():
    refs = []
    for name, lengths, max_new in RANDOM:
        model = AutoModelForCausalLM.from_pretrained(str(FIX / name), dtype=torch.float32).eval()
        model.generation_config.eos_token_id = None
        tokens = load_file(str(FIX / name / "reference.safetensors"))["tokens"][0].tolist()
        for n in lengths:
            new = greedy(model, tokens[:n], max_new, None)
            assert len(new) == max_new
            refs.append({"fixture": name, "prompt": tokens[:n], "max_new": max_new,
                         "new_tokens": new})
            print(name, n, new[:8])
    return refs


def smollm2_refs(home):
    path = Path(home) / GGUF
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                 dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    refs = []
    for text in PROMPTS:
        ids = tok(text)["input_ids"]
        new = greedy(model, ids, 30, eos)
        refs.append({"text": text, "ids": ids, "max_new": 30, "new_tokens": new})
        print(repr(text), ids[:3], repr(tok.decode(new)))
    return refs, eos


def main():
    ap = argparse.ArgumentParser()
    default_home = os.environ.get("HOOKLENS_HOME") or str(Path.home() / ".cache" / "hooklens")
    ap.add_argument("--home", default=default_home)
    args = ap.parse_args()
    with torch.no_grad():
        rnd = random_refs()
        smol, eos = smollm2_refs(args.home)
    doc = {"transformers_version": transformers.__version__, "torch_version": torch.__version__,
           "random": rnd, "smollm2": smol, "smollm2_eos": eos}
    out = FIX / "generate" / "refs.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
