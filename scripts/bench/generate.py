#!/usr/bin/env python3
"""Generation benchmark (issue 17): tokens/s at batch 1 of `hooklens generate` (KV cache,
greedy) vs HF transformers `generate(do_sample=False)` (its KV cache), same machine, same
thread count, the default SmolLM2-135M GGUF (HF dequantises it to float32, hooklens too), prompts
of 16 and 512 tokens, 128 new tokens with the end-of-sequence token ignored. Each side's time
covers the prompt pass and all new tokens (the model load is excluded); the best of --repeats
runs is kept (the sides interleaved). hooklens runs twice: as it ships (small batches read the
GGUF's quantised rows) and with HOOKLENS_QUANT_GEMV=off (every product on the packed f32
weights). Also checks that all generate the same tokens.

Run with the reference venv's python after `cargo build --release`, on a quiet machine:
  python scripts/bench/generate.py [--threads 2] [--repeats 3] [--out docs/bench-generate.md]
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("HOOKLENS_HOME") or Path.home() / ".cache/hooklens")
BIN = ROOT / "target/release/hooklens"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def prompt_ids(n):
    # Deterministic token ids (BOS then ordinary vocabulary ids), no tokenizer involved.
    return [1] + [(1000 + 37 * i) % 40000 + 100 for i in range(n - 1)]


def hooklens_run(ids, new, threads, quant="on"):
    """One `hooklens generate`; quant="off" keeps every product on the packed f32 GEMM
    (HOOKLENS_QUANT_GEMV), "on" lets small batches read the file's quantised rows."""
    env = dict(os.environ, HOOKLENS_QUANT_GEMV=quant)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "g.json"
        cmd = [str(BIN), "--model", str(HOME / GGUF), "--threads", str(threads), "generate",
               "--tokens", ",".join(map(str, ids)), "--max-new", str(new), "--ignore-eos",
               "--json", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        secs = float(re.search(r"new tokens in ([0-9.]+)s", r.stderr).group(1))
        return secs, json.loads(out.read_text())["new_tokens"]


def hf_run(model, ids, new):
    x = torch.tensor([ids])
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new,
                             min_new_tokens=new, do_sample=False, pad_token_id=0)
    return time.perf_counter() - start, out[0, len(ids):].tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(str(HOME), gguf_file=GGUF, dtype=torch.float32).eval()
    rows = ["| prompt | new | hooklens tok/s | hooklens f32 products tok/s | HF tok/s | ratio | "
            "ratio f32 | same tokens |", "|---|---|---|---|---|---|---|---|"]
    for n in (16, 512):
        ids = prompt_ids(n)
        runs = {"hl": [], "hl_f32": [], "hf": []}
        for _ in range(args.repeats):  # the three interleaved, so a drift hits all alike
            runs["hl"].append(hooklens_run(ids, args.new, args.threads, "on"))
            runs["hl_f32"].append(hooklens_run(ids, args.new, args.threads, "off"))
            runs["hf"].append(hf_run(model, ids, args.new))
        best = {k: min(v, key=lambda r: r[0]) for k, v in runs.items()}
        a, a32, b = (args.new / best[k][0] for k in ("hl", "hl_f32", "hf"))
        same = best["hl"][1] == best["hf"][1] and best["hl_f32"][1] == best["hf"][1]
        rows.append(f"| {n} | {args.new} | {a:.1f} | {a32:.1f} | {b:.1f} | {a / b:.2f}x | "
                    f"{a32 / b:.2f}x | {same} |")
        print(rows[-1], flush=True)
    text = f"Generation, batch 1, {args.threads} threads, {GGUF}\n\n" + "\n".join(rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
