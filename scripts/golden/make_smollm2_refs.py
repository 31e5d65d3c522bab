#!/usr/bin/env python3
"""Reference next-token probabilities for the default model, SmolLM2-135M-Instruct Q4_1 GGUF,
computed by HF transformers loading the same GGUF file (it dequantises to float32).

Writes tests/fixtures/smollm2/reference.json:
  {"model_sha256", "transformers_version", "torch_version",
   "prompts": [{"text", "ids", "top": [{"id", "prob", "logit"}] (last position, top 10),
                "loss"}]}
`ids` are HF's tokenizer ids for the text; transformers 4.57 prepends <|im_start|> (id 1) for
this GGUF although it says add_bos_token=false. hooklens' default (prepend BOS, BOS = id 1)
produces the same ids; the Rust test checks that too.

Run: /path/to/venv/bin/python scripts/golden/make_smollm2_refs.py [--home DIR]
"""
import argparse
import hashlib
import json
import os
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "The Eiffel Tower is in the city of",
    "The Colosseum is in the city of",
    "The capital of Germany is",
    "def add(a, b):\n    return",
    "1, 2, 3, 4,",
    "Water boils at a temperature of",
    "My favourite colour is",
]


def main():
    ap = argparse.ArgumentParser()
    default_home = os.environ.get("HOOKLENS_HOME") or str(Path.home() / ".cache" / "hooklens")
    ap.add_argument("--home", default=default_home)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests/fixtures/smollm2/reference.json"))
    args = ap.parse_args()
    path = Path(args.home) / NAME
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.home, gguf_file=NAME)
    model = AutoModelForCausalLM.from_pretrained(args.home, gguf_file=NAME, torch_dtype=torch.float32)
    model.eval()
    out = {
        "model_sha256": sha,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "prompts": [],
    }
    for text in PROMPTS:
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            t = torch.tensor([ids])
            res = model(t, labels=t)
        logits = res.logits[0, -1].float()
        probs = torch.softmax(logits.double(), -1)
        top = torch.topk(logits, 10)
        out["prompts"].append({
            "text": text,
            "ids": ids,
            "top": [
                {"id": int(i), "prob": float(probs[i]), "logit": float(logits[i]),
                 "token": tok.decode([int(i)])}
                for i in top.indices
            ],
            "loss": float(res.loss),
        })
        print(f"{text!r}: ids {ids[:4]}... top {tok.decode([int(top.indices[0])])!r} "
              f"p={float(probs[top.indices[0]]):.4f} loss={float(res.loss):.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
