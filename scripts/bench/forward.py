#!/usr/bin/env python3
"""Side-by-side forward-pass benchmark: HF transformers vs TransformerLens 2.x vs hooklens,
same machine, same thread count, same weights, in one run. Shapes (batch x tokens):
1x16, 8x128, 144x16. Full logits everywhere (what HF and TL compute). Writes Markdown.

Run with the reference venv's python after `cargo build --release`:
  python scripts/bench/forward.py [--threads 2] [--reps 5] [--out docs/bench-forward.md]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
from make_fixtures import gpt2_tl_cfg, llama_tl_cfg, load_tl  # noqa: E402
from transformer_lens.pretrained.weight_conversions import (  # noqa: E402
    convert_gpt2_weights, convert_llama_weights)

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("HOOKLENS_HOME") or Path.home() / ".cache/hooklens")
SHAPES = [(1, 16), (8, 128), (144, 16)]


def median(reps, f):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def tokens(batch, seq, vocab):
    return torch.tensor([[(b * 131 + i * 7919 + 17) % vocab for i in range(seq)] for b in range(batch)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "docs/bench-forward.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    from transformers import AutoModelForCausalLM, GPT2LMHeadModel
    gpt2_dir = HOME / "bench/gpt2-small-random"
    subprocess.run([sys.executable, str(ROOT / "scripts/bench/make_gpt2_small_random.py"), str(gpt2_dir)], check=True)
    smol = HOME / "SmolLM2-135M-Instruct.Q4_1.gguf"
    shapes = ",".join(f"{b}x{p}" for b, p in SHAPES)
    # hooklens first, before torch has run anything in this process: torch's idle OpenMP
    # threads spin for a while after each op and would steal the cores from the subprocess.
    ours = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("GPT-2 small shape", gpt2_dir), ("SmolLM2-135M", smol)):
            out = Path(tmp) / "bench.json"
            subprocess.run([str(ROOT / "target/release/hooklens"), "--model", str(path), "--threads", str(args.threads),
                            "bench", "--shapes", shapes, "--reps", str(args.reps), "--json", str(out)],
                           check=True, capture_output=True)
            ours[name] = json.loads(out.read_text())["results"]
    models = []
    hf = GPT2LMHeadModel.from_pretrained(gpt2_dir, dtype=torch.float32).eval()
    cfg = gpt2_tl_cfg(hf.config)
    cfg.use_attn_result = False
    models.append(("GPT-2 small shape", hf, load_tl(cfg, convert_gpt2_weights(hf, cfg)).eval(), 50257))
    hf = AutoModelForCausalLM.from_pretrained(smol.parent, gguf_file=smol.name, dtype=torch.float32).eval()
    cfg = llama_tl_cfg(hf.config)
    cfg.use_attn_result = False
    models.append(("SmolLM2-135M", hf, load_tl(cfg, convert_llama_weights(hf, cfg)).eval(), 49152))
    lines = [
        "# Forward-pass benchmarks: hooklens vs HF transformers vs TransformerLens",
        "",
        f"Machine: {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}; "
        f"{args.threads} threads for every contender (torch {torch.__version__}). Median of {args.reps} runs,",
        "full logits at every position, f32. Produced by `python scripts/bench/forward.py` (reference venv)",
        "after `cargo build --release`; hook columns come from `hooklens bench` in the same run.",
        "",
        "| model | shape | HF ms | TL ms | hooklens ms | tokens/s (hooklens) | vs HF | vs TL | read-only hook at every slot |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, hf, tl, vocab in models:
        for (b, p), o in zip(SHAPES, ours[name]):
            t = tokens(b, p, vocab)
            t_hf = median(args.reps, lambda: hf(t))
            t_tl = median(args.reps, lambda: tl(t))
            row = (f"| {name} | {b}x{p} | {t_hf * 1e3:.1f} | {t_tl * 1e3:.1f} | {o['forward_s'] * 1e3:.1f} | "
                   f"{o['tokens_per_s']:.0f} | {t_hf / o['forward_s']:.2f}x | {t_tl / o['forward_s']:.2f}x | "
                   f"{o['read_all_hooks_ratio']:.3f}x |")
            print(row, file=sys.stderr)
            lines.append(row)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
